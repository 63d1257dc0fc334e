using System.Net;
using System.Net.Sockets;
using CookieProxy.Host.Control;
using CookieProxy.Host.Services;
using Microsoft.Extensions.Logging;

namespace CookieProxy.Host.Diagnostics;

/// <summary>--metrics-listen as a host service: bound in Open (a bad or taken address stops the start with exit 2),
/// served from Start, closed in Stop.</summary>
internal sealed class MetricsService : IHostService
{
    private readonly IPEndPoint _endpoint;
    private readonly ProxyView _view;
    private readonly ILogger _log;
    private MetricsServer? _server;

    public MetricsService(IPEndPoint endpoint, ProxyView view, ILogger log)
    {
        _endpoint = endpoint;
        _view = view;
        _log = log;
    }

    public string Name => "metrics";

    public void Open()
    {
        try
        {
            _server = MetricsServer.Open(_endpoint, _view);
        }
        catch (SocketException e)
        {
            throw new HostStartException($"--metrics-listen {_endpoint}: {e.Message}", ExitCodes.Usage);
        }
    }

    public void Start()
    {
        _server?.Start();
        if (_server is not null)
        {
            MetricsLog.Serving(_log, _server.LocalEndPoint.ToString());
        }
    }

    public void Stop()
    {
        _server?.Dispose();
        _server = null;
    }

    public void Close() => Stop();
}
