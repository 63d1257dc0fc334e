using CookieProxy.Host.Diagnostics.Logging;
using Microsoft.Extensions.Logging;

namespace CookieProxy.Tests.Host;

public class LoggingTests
{
    [Fact]
    public void PlainLinesStartWithTheProgramAndSayWarningsAndErrors()
    {
        var text = new StringWriter();
        using (var logs = new ConsoleLogProvider(text, LogFormat.Plain, LogLevel.Information))
        {
            ILogger log = logs.CreateLogger("CookieProxy.Host.Capture");
            HostLog.Protecting(log, "198.18.0.1:80", "127.0.0.1:8080", "");
            HostLog.FanoutFlowLimits(log, 2);
            HostLog.StartFailed(log, "cannot capture on 'x'");
            HostLog.FlowValidated(log, 0, "flow", 1460, 7, true, true); // Debug: below the level, never formatted
        }
        string[] lines = text.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length);
        Assert.Equal("cookieproxy: protecting 198.18.0.1:80 -> 127.0.0.1:8080", lines[0]);
        Assert.StartsWith("cookieproxy: warning: --fanout flow", lines[1]);
        Assert.Equal("cookieproxy: error: cannot capture on 'x'", lines[2]);
    }

    [Fact]
    public void UnderSystemdEachEventIsOneLineWithItsPriorityCategoryAndEventId()
    {
        var text = new StringWriter();
        using (var logs = new ConsoleLogProvider(text, LogFormat.Systemd, LogLevel.Debug))
        {
            ILogger log = logs.CreateLogger("CookieProxy.Host.Capture");
            HostLog.Protecting(log, "198.18.0.1:80", "127.0.0.1:8080", "");
            HostLog.CaptureFaulted(log, 1, new InvalidOperationException("bad\nframe"));
            HostLog.FlowValidated(log, 0, "flow", 1460, 7, true, true);
        }
        string[] lines = text.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal(3, lines.Length);
        Assert.Equal("<6>Capture[1002]: protecting 198.18.0.1:80 -> 127.0.0.1:8080", lines[0]);
        Assert.StartsWith("<3>Capture[2003]: capture thread 1 failed | System.InvalidOperationException: bad | frame", lines[1]);
        Assert.StartsWith("<7>Capture[2004]: [0] flow flow validated", lines[2]);
    }

    [Fact]
    public void TheEventIdsAreUnique()
    {
        var ids = typeof(HostLog).GetMethods()
            .Select(m => m.GetCustomAttributes(typeof(LoggerMessageAttribute), false).OfType<LoggerMessageAttribute>().FirstOrDefault())
            .Where(a => a is not null)
            .Select(a => a!.EventId)
            .ToList();
        Assert.NotEmpty(ids);
        Assert.Equal(ids.Count, ids.Distinct().Count());
    }
}
