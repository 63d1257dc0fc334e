using CookieProxy.Responder;
using Microsoft.Extensions.Logging;

namespace CookieProxy.Host.Capture;

/// <summary>The syncache's log events (helper net): ids 9100-9199.</summary>
internal static partial class SynCacheLog
{
    public static void Configured(ILogger logger, int entries)
    {
        if (entries > 0)
        {
            On(logger, entries, SynCacheConfig.For(entries).EnterCookiesPerSecond);
        }
        else
        {
            Off(logger);
        }
    }

    [LoggerMessage(9100, LogLevel.Information, "syncache: {Entries} entries per capture thread, SYN+ACK again after 1 s and 3 s; pure cookies above {Rate} SYN/s per thread")]
    private static partial void On(ILogger logger, int entries, int rate);

    [LoggerMessage(9103, LogLevel.Information, "syncache off (--syncache 0): pure cookies, no SYN+ACK retransmission")]
    private static partial void Off(ILogger logger);

    [LoggerMessage(9101, LogLevel.Information, "syncache: SYN flood: the XDP program answers SYNs with pure cookies")]
    public static partial void XdpFlood(ILogger logger);

    [LoggerMessage(9102, LogLevel.Information, "syncache: calm again: the XDP program passes SYNs up to be remembered")]
    public static partial void XdpCalm(ILogger logger);

    [LoggerMessage(9104, LogLevel.Information, "syncache: the XDP program passes SYNs up while they are few (remembered, SYN+ACK retransmitted) and answers them itself under a flood")]
    public static partial void XdpGateOn(ILogger logger);

    [LoggerMessage(9105, LogLevel.Warning, "syncache: cannot write the XDP program's pass-SYNs flag: {Reason}")]
    public static partial void XdpFlagFailed(ILogger logger, string reason);
}
