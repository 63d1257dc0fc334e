using CookieProxy.Host.Services;
using Microsoft.Extensions.Logging;

namespace CookieProxy.Host.Control;

/// <summary>
/// The control socket as a host service: bound in Open (a bad explicit path stops the start with exit 2), served
/// from Start on its own thread, removed in Stop. The default path (control.sock in --run-dir) being held by
/// another running instance is a warning, not an error: that instance keeps its socket and this one runs without.
/// `reload` goes through <see cref="HostLifetime.RequestReload"/>, i.e. exactly what SIGHUP does.
/// </summary>
internal sealed class ControlService : IHostService
{
    private static readonly TimeSpan ReloadTimeout = TimeSpan.FromSeconds(60);

    private readonly string _path;
    private readonly bool _explicitPath;
    private readonly ControlHandler _handler;
    private readonly ILogger _log;
    private ControlServer? _server;

    public ControlService(string path, bool explicitPath, ProxyView view, HostLifetime lifetime, ILogger log)
    {
        _path = path;
        _explicitPath = explicitPath;
        _log = log;
        _handler = new ControlHandler(view, () =>
        {
            ControlLog.ReloadRequested(log);
            Task<ReloadOutcome> reload = lifetime.RequestReload("control socket");
            return reload.Wait(ReloadTimeout) ? reload.Result : ReloadOutcome.Refused("the reload did not finish within 60 s");
        });
    }

    public string Name => "control socket";

    public void Open()
    {
        try
        {
            _server = ControlServer.Open(_path, _handler, m => ControlLog.Failed(_log, m));
        }
        catch (ControlSocketException e) when (!_explicitPath)
        {
            ControlLog.DefaultUnavailable(_log, e.Message);
        }
        catch (ControlSocketException e)
        {
            throw new HostStartException($"--control-socket {e.Message}", ExitCodes.Usage);
        }
    }

    public void Start()
    {
        if (_server is not null)
        {
            _server.Start();
            ControlLog.Listening(_log, _server.Path);
        }
    }

    public void Stop()
    {
        _server?.Dispose();
        _server = null;
    }

    public void Close() => Stop();
}
