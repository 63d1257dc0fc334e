using System.Net;
using CookieProxy.Wire;

namespace CookieProxy.Responder;

/// <summary>The protected ip:port set, looked up for every captured frame without allocation.</summary>
public sealed class ProtectedEndpoints
{
    private readonly Dictionary<(IpAddr Address, ushort Port), int> _index = new();
    private readonly List<IPEndPoint> _endpoints = new();
    private readonly List<bool> _accepting = new();

    public int Count => _endpoints.Count;

    public IReadOnlyList<IPEndPoint> Endpoints => _endpoints;

    /// <summary>Adds an endpoint; returns its listener index. A non-accepting one (a listener a reload removed)
    /// still reaches its established flows but takes no new connection.</summary>
    public int Add(IPEndPoint endpoint, bool accepting = true)
    {
        var key = (IpAddr.FromIPAddress(endpoint.Address), (ushort)endpoint.Port);
        if (_index.ContainsKey(key))
        {
            throw new ArgumentException($"{endpoint} is already protected.", nameof(endpoint));
        }
        _index.Add(key, _endpoints.Count);
        _endpoints.Add(endpoint);
        _accepting.Add(accepting);
        return _endpoints.Count - 1;
    }

    /// <summary>Whether listener <paramref name="index"/> takes new connections.</summary>
    public bool Accepts(int index) => _accepting[index];

    /// <summary>The endpoints that take new connections.</summary>
    public IEnumerable<IPEndPoint> Accepting => _endpoints.Where((_, i) => _accepting[i]);

    /// <summary>The listener index of (address, port), or -1.</summary>
    public int Find(in IpAddr address, ushort port) => _index.TryGetValue((address, port), out int i) ? i : -1;
}
