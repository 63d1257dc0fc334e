using System.Text;
using System.Text.Json;
using CookieProxy.Diagnostics;
using CookieProxy.Host.Control;
using Spectre.Console;

namespace CookieProxy.Tests.Control;

/// <summary>What `cookieproxy stats` and `cookieproxy top` print from the control socket's replies.</summary>
public class StatsAndTopViewTests
{
    private readonly FakeProxy _proxy = new();

    private JsonElement Result(ControlHandler handler, string command)
    {
        using JsonDocument doc = JsonDocument.Parse(handler.Handle(Encoding.UTF8.GetBytes(command)));
        return doc.RootElement.GetProperty("result").Clone();
    }

    private ControlHandler HandlerWithASecondOfTraffic()
    {
        var handler = new ControlHandler(_proxy.View, null);
        long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        _proxy.Advance(now - 1000);
        handler.Tick();
        Thread.Sleep(550);
        _proxy.Syns(0, 5000, source: "198.18.1.9");
        _proxy.Syns(1, 1000, listener: 1, source: "2001:db8:7::1");
        _proxy.Drops(0, DropReason.CookieInvalid, 300);
        _proxy.Drops(1, DropReason.TcpBadChecksum, 20);
        _proxy.Counters[1][Counter.FlowsActive] = 17;
        _proxy.Advance(now);
        return handler;
    }

    [Fact]
    public void StatsPrintsTotalsAndRatesLikePfctlWithOnlyTheDropReasonsThatHappened()
    {
        string text = StatsView.Render(Result(HandlerWithASecondOfTraffic(), "stats"));
        string[] lines = text.Split('\n');

        Assert.StartsWith("cookieproxy ", lines[0]);
        Assert.Contains("rates over the last", lines[0]);
        string syn = Assert.Single(lines, l => l.StartsWith("  syn received ", StringComparison.Ordinal));
        Assert.Contains("6,000", syn);
        Assert.EndsWith("/s", syn.TrimEnd());
        Assert.Contains(lines, l => l.StartsWith("  flows active", StringComparison.Ordinal) && l.TrimEnd().EndsWith("17", StringComparison.Ordinal));
        Assert.Contains(lines, l => l.StartsWith("    CookieInvalid", StringComparison.Ordinal) && l.Contains("300"));
        Assert.Contains(lines, l => l.StartsWith("    TcpBadChecksum", StringComparison.Ordinal));
        Assert.DoesNotContain(lines, l => l.Contains("NoFlow"));
        Assert.Contains(lines, l => l.Contains("198.18.0.1:80 -> 127.0.0.1:8080"));
        Assert.Contains(lines, l => l.StartsWith("Threads", StringComparison.Ordinal));
    }

    [Fact]
    public void StatsBeforeTheFirstTickSaysThereAreNoRatesYet()
    {
        string text = StatsView.Render(Result(new ControlHandler(_proxy.View, null), "stats"));
        Assert.Contains("no rates yet", text.Split('\n')[0]);
    }

    [Fact]
    public void TopShowsTheListenersTheDropsAndTheHeavySourcesInOneFrame()
    {
        JsonElement top = Result(HandlerWithASecondOfTraffic(), "top");
        var writer = new StringWriter();
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Ansi = AnsiSupport.No,
            ColorSystem = ColorSystemSupport.NoColors,
            Interactive = InteractionSupport.No,
            Out = new AnsiConsoleOutput(writer),
        });
        console.Profile.Width = 160;

        console.Write(TopView.Build(top, "/run/cookieproxy/cookieproxy.sock"));
        string screen = writer.ToString();

        Assert.Contains("Listeners", screen);
        Assert.Contains("198.18.0.1:80", screen);
        Assert.Contains("[2001:db8::1]:443", screen);
        Assert.Contains("CookieInvalid", screen);
        Assert.Contains("TcpBadChecksum", screen);
        Assert.Contains("198.18.1.0/24", screen);
        Assert.Contains("2001:db8:7::/48", screen);
        Assert.Contains("Top sources", screen);
        Assert.DoesNotContain("limiter", screen.Split('\n').First(l => l.Contains("prefix")));
    }
}
