using Microsoft.Extensions.Logging;

namespace CookieProxy.Host.Control;

/// <summary>The control socket's log events (7xxx; stable ids, see HostLog).</summary>
internal static partial class ControlLog
{
    [LoggerMessage(7001, LogLevel.Information, "control socket {Path} (cookieproxy stats, top, reload)")]
    public static partial void Listening(ILogger logger, string path);

    [LoggerMessage(7002, LogLevel.Warning, "no control socket: {Reason}; give this instance its own --control-socket PATH (or --control-socket off)")]
    public static partial void DefaultUnavailable(ILogger logger, string reason);

    [LoggerMessage(7003, LogLevel.Error, "{Message}")]
    public static partial void Failed(ILogger logger, string message);

    [LoggerMessage(7004, LogLevel.Information, "reload requested over the control socket")]
    public static partial void ReloadRequested(ILogger logger);
}
