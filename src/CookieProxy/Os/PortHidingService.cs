using CookieProxy.Host.Cli;
using CookieProxy.Host.Services;

namespace CookieProxy.Host.Os;

/// <summary>--hide-port: installs the drop rule for the protected endpoints (<see cref="PortHider"/>) and removes it
/// on close, which <see cref="ProxyHost"/> runs on every exit path; `cookieproxy cleanup` covers SIGKILL.</summary>
public sealed class PortHidingService : IHostService
{
    private readonly string _interface;
    private readonly IReadOnlyList<ListenerOptions> _listeners;
    private PortHider? _hider;

    public PortHidingService(string interfaceName, IReadOnlyList<ListenerOptions> listeners)
    {
        _interface = interfaceName;
        _listeners = listeners;
    }

    public string Name => "port hiding";

    /// <summary>How the port is hidden ("nftables (ingress hook)"), once open.</summary>
    public string? Method => _hider?.Method;

    public void Open()
    {
        try
        {
            _hider = PortHider.Install(_interface, _listeners);
        }
        catch (InvalidOperationException e)
        {
            throw new HostStartException(e.Message);
        }
    }

    /// <summary>Reload: drop exactly these endpoints (the accepting listeners and the removed ones whose flows go on).</summary>
    public string? Update(IReadOnlyList<ListenerOptions> listeners) => _hider?.Update(listeners);

    public void Close()
    {
        _hider?.Dispose();
        _hider = null;
    }
}
