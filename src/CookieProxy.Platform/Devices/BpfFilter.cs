using System.Net;
using System.Net.Sockets;
using System.Text;

namespace CookieProxy.Platform;

/// <summary>
/// Builds the pcap filter (pcap-filter(7) syntax) that lets through only TCP towards the protected endpoints,
/// untagged or with one 802.1Q tag, IPv4 or IPv6. The same text feeds libpcap's live handle and, compiled
/// by <see cref="BpfProgram"/>, the classic BPF program attached to the AF_PACKET socket.
/// </summary>
public static class BpfFilter
{
    /// <summary>
    /// E.g. <c>(tcp and dst host 198.18.0.1 and dst port 80) or (vlan and tcp and dst host 198.18.0.1 and dst port 80)</c>.
    /// An unspecified address (0.0.0.0, ::) matches that port on every address of its family.
    /// </summary>
    /// <remarks>
    /// "vlan" shifts the offsets of everything after it in the whole expression, so the untagged
    /// alternative must come first and the tagged one last (pcap-filter(7), "vlan [vlan_id]").
    /// On Linux the kernel strips the tag before socket filters run; the untagged arm then matches
    /// and the backend re-inserts the tag from the ring metadata.
    /// </remarks>
    public static string ForProtectedEndpoints(IEnumerable<IPEndPoint> endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var clauses = new List<string>();
        foreach (IPEndPoint endpoint in endpoints)
        {
            string clause = Clause(endpoint);
            if (!clauses.Contains(clause))
            {
                clauses.Add(clause);
            }
        }
        if (clauses.Count == 0)
        {
            throw new ArgumentException("At least one protected endpoint is required.", nameof(endpoints));
        }

        string match = clauses.Count == 1
            ? "tcp and " + clauses[0]
            : "tcp and (" + string.Join(" or ", clauses.Select(c => "(" + c + ")")) + ")";
        return $"({match}) or (vlan and {match})";
    }

    /// <inheritdoc cref="ForProtectedEndpoints(IEnumerable{IPEndPoint})"/>
    public static string ForProtectedEndpoints(params IPEndPoint[] endpoints) =>
        ForProtectedEndpoints((IEnumerable<IPEndPoint>)endpoints);

    private static string Clause(IPEndPoint endpoint)
    {
        if (endpoint.Port is <= 0 or > 65535)
        {
            throw new ArgumentException($"Port {endpoint.Port} of {endpoint} is not a valid TCP port.", nameof(endpoint));
        }
        IPAddress address = endpoint.Address;
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }
        var text = new StringBuilder();
        if (address.Equals(IPAddress.Any))
        {
            text.Append("ip");
        }
        else if (address.Equals(IPAddress.IPv6Any))
        {
            text.Append("ip6");
        }
        else
        {
            if (address.AddressFamily == AddressFamily.InterNetworkV6 && address.ScopeId != 0)
            {
                // pcap-filter has no syntax for a zone; the interface already scopes the capture.
                address = new IPAddress(address.GetAddressBytes());
            }
            text.Append("dst host ").Append(address.ToString());
        }
        text.Append(" and dst port ").Append(endpoint.Port);
        return text.ToString();
    }

    /// <summary>Throws a <see cref="PacketDeviceException"/> with libpcap's message when the text does not compile.</summary>
    public static void Validate(string filter)
    {
        using BpfProgram program = BpfProgram.Compile(filter);
    }
}
