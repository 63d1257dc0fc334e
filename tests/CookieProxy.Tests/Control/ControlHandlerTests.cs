using System.Text;
using System.Text.Json;
using CookieProxy.Diagnostics;
using CookieProxy.Host.Control;
using CookieProxy.Host.Services;
using CookieProxy.Host.Diagnostics;

namespace CookieProxy.Tests.Control;

public class ControlHandlerTests
{
    private readonly FakeProxy _proxy = new();

    private static JsonElement Reply(ControlHandler handler, string request)
    {
        ReadOnlyMemory<byte> reply = handler.Handle(Encoding.UTF8.GetBytes(request));
        Assert.Equal((byte)'\n', reply.Span[^1]);
        Assert.Equal(-1, reply.Span[..^1].IndexOf((byte)'\n'));    // one line
        using JsonDocument doc = JsonDocument.Parse(reply);
        return doc.RootElement.Clone();
    }

    private static JsonElement Result(ControlHandler handler, string request)
    {
        JsonElement reply = Reply(handler, request);
        Assert.True(reply.GetProperty("ok").GetBoolean(), reply.ToString());
        return reply.GetProperty("result");
    }

    [Fact]
    public void StatsHoldsEveryCounterAndDropReasonOfTheTableSummedOverTheThreadsAndEachThreadApart()
    {
        _proxy.Syns(0, 1000);
        _proxy.Syns(1, 250, listener: 1);
        _proxy.Drops(0, DropReason.CookieInvalid, 7);
        _proxy.Drops(1, DropReason.NoFlow, 2);
        var handler = new ControlHandler(_proxy.View, reload: null);

        JsonElement s = Result(handler, """{"command":"stats"}""");

        for (var c = (Counter)0; c < Counter.Count; c++)
        {
            Assert.True(s.TryGetProperty(CounterTable.NameOf(c), out _), CounterTable.NameOf(c));
        }
        for (var r = (DropReason)1; r < DropReason.Count; r++)
        {
            Assert.True(s.GetProperty("drops").TryGetProperty(CounterTable.NameOf(r), out _), CounterTable.NameOf(r));
        }
        Assert.Equal(1250, s.GetProperty("syn_received").GetInt64());
        Assert.Equal(9, s.GetProperty("drops_total").GetInt64());
        Assert.Equal(7, s.GetProperty("drops").GetProperty("CookieInvalid").GetInt64());
        Assert.Equal(2, s.GetProperty("threads").GetInt32());
        JsonElement[] threads = s.GetProperty("per_thread").EnumerateArray().ToArray();
        Assert.Equal(1000, threads[0].GetProperty("syn_received").GetInt64());
        Assert.Equal(2, threads[1].GetProperty("drops").GetProperty("NoFlow").GetInt64());
        JsonElement[] listeners = s.GetProperty("listeners").EnumerateArray().ToArray();
        Assert.Equal("198.18.0.1:80", listeners[0].GetProperty("listen").GetString());
        Assert.Equal(1000, listeners[0].GetProperty("syn_received").GetInt64());
        Assert.Equal(250, listeners[1].GetProperty("syn_received").GetInt64());
        Assert.Equal(ProxyView.Version, s.GetProperty("version").GetString());
    }

    [Fact]
    public void StatsUsesTheKeysOfTheStatsFile()
    {
        _proxy.Syns(0, 5);
        ProxyCounters[] perThread = [.. _proxy.Counters];
        string path = Path.Combine(Path.GetTempPath(), $"cp-stats-{Guid.NewGuid():N}.json");
        try
        {
            StatsReporter.WriteJson(path, StatsReporter.Sum(perThread), perThread, 1);
            using JsonDocument file = JsonDocument.Parse(File.ReadAllText(path));
            JsonElement s = Result(new ControlHandler(_proxy.View, null), "stats");
            foreach (JsonProperty p in file.RootElement.EnumerateObject())
            {
                Assert.True(s.TryGetProperty(p.Name, out JsonElement mine), $"stats lacks the stats-file key {p.Name}");
                if (p.Value.ValueKind == JsonValueKind.Number && p.Name != "uptime_s")
                {
                    Assert.Equal(p.Value.GetInt64(), mine.GetInt64());
                }
            }
            JsonElement fileThread = file.RootElement.GetProperty("per_thread")[0];
            foreach (JsonProperty p in fileThread.EnumerateObject())
            {
                Assert.True(s.GetProperty("per_thread")[0].TryGetProperty(p.Name, out _), $"per_thread lacks {p.Name}");
            }
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public void RatesArePerSecondAgainstTheSnapshotOfTheLastTick()
    {
        var handler = new ControlHandler(_proxy.View, null);
        JsonElement first = Result(handler, "stats");
        Assert.False(first.GetProperty("rates").TryGetProperty("syn_received", out _), "no rates before the first tick");

        handler.Tick();
        Thread.Sleep(600);
        _proxy.Syns(0, 600);
        _proxy.Drops(1, DropReason.TcpBadChecksum, 60);
        JsonElement s = Result(handler, "stats");

        JsonElement rates = s.GetProperty("rates");
        double interval = rates.GetProperty("interval_s").GetDouble();
        Assert.InRange(interval, 0.5, 30);
        Assert.Equal(600 / interval, rates.GetProperty("syn_received").GetDouble(), 0);
        Assert.Equal(60 / interval, rates.GetProperty("drops").GetProperty("TcpBadChecksum").GetDouble(), 0);
        Assert.Equal(60 / interval, rates.GetProperty("drops_total").GetDouble(), 0);
        Assert.False(rates.TryGetProperty("flows_active", out _), "a gauge has no rate");
        Assert.Equal(600 / interval, s.GetProperty("per_thread")[0].GetProperty("rates").GetProperty("syn_received").GetDouble(), 0);
        Assert.Equal(600 / interval, s.GetProperty("listeners")[0].GetProperty("rates").GetProperty("syn_received").GetDouble(), 0);
    }

    [Fact]
    public void TopNamesTheListenersTheDropsBusiestFirstAndTheHeavySources()
    {
        var handler = new ControlHandler(_proxy.View, null);
        long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        _proxy.Advance(now - 1000);
        handler.Tick();
        Thread.Sleep(600);
        _proxy.Syns(0, 300, source: "198.18.1.9");
        _proxy.Syns(1, 100, source: "198.18.1.77");
        _proxy.Syns(1, 50, listener: 1, source: "198.18.2.1");
        _proxy.Drops(0, DropReason.NoFlow, 5);
        _proxy.Drops(0, DropReason.CookieInvalid, 50);
        _proxy.Advance(now);

        JsonElement top = Result(handler, """{"command":"top","sources":5}""");

        JsonElement[] listeners = top.GetProperty("listeners").EnumerateArray().ToArray();
        Assert.Equal(2, listeners.Length);
        Assert.True(listeners[0].GetProperty("syn_per_s").GetDouble() > listeners[1].GetProperty("syn_per_s").GetDouble());
        Assert.Equal(["CookieInvalid", "NoFlow"], top.GetProperty("drops").EnumerateArray().Select(d => d.GetProperty("reason").GetString()));
        JsonElement[] sources = top.GetProperty("sources").GetProperty("top").EnumerateArray().ToArray();
        // Both threads saw 198.18.1.0/24: merged into one prefix, 400 samples over the one-second window.
        Assert.Equal("198.18.1.0/24", sources[0].GetProperty("prefix").GetString());
        Assert.Equal(400, sources[0].GetProperty("syn_per_s").GetDouble(), 0);
        Assert.Equal("198.18.2.0/24", sources[1].GetProperty("prefix").GetString());
        Assert.True(top.GetProperty("sources").GetProperty("recent").GetBoolean());
        Assert.False(top.GetProperty("sources").GetProperty("limiter").GetBoolean());
    }

    [Fact]
    public void TopShowsTheLimiterStateOfEachSourceAndThePrefixesTheLimiterHolds()
    {
        var limiter = new CookieProxy.Limits.SourceLimiter(new CookieProxy.Limits.SourceLimitConfig { SynsPerSecond = 10, SynBurst = 10, MaxConnectionsPerSource = 2 });
        var proxy = new FakeProxy(threads: 1, limiters: [limiter]);
        long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        proxy.Advance(now - 1000);
        proxy.Syns(0, 50, source: "198.18.1.9");
        for (int i = 0; i < 50; i++)
        {
            limiter.TryAcceptSyn(CookieProxy.Wire.IpAddr.FromIPAddress(System.Net.IPAddress.Parse("198.18.1.9")), now);
        }
        limiter.TryOpenConnection(CookieProxy.Wire.IpAddr.FromIPAddress(System.Net.IPAddress.Parse("198.18.3.3")), now);
        limiter.TryOpenConnection(CookieProxy.Wire.IpAddr.FromIPAddress(System.Net.IPAddress.Parse("198.18.3.3")), now);
        proxy.Advance(now);

        JsonElement top = Result(new ControlHandler(proxy.View, null), "top");

        JsonElement[] sources = top.GetProperty("sources").GetProperty("top").EnumerateArray().ToArray();
        Assert.True(top.GetProperty("sources").GetProperty("limiter").GetBoolean());
        Assert.Equal("198.18.1.9/32", sources[0].GetProperty("prefix").GetString());
        Assert.Equal("syn-limited", sources[0].GetProperty("state").GetString());
        JsonElement held = Assert.Single(sources, s => s.GetProperty("prefix").GetString() == "198.18.3.3/32");
        Assert.Equal("conn-cap", held.GetProperty("state").GetString());
        Assert.Equal(2, held.GetProperty("connections").GetInt32());
    }

    [Fact]
    public void AStaleSketchWindowShowsNothingRecentRatherThanAnOldFlood()
    {
        long now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        _proxy.Advance(now - 60_000);
        _proxy.Syns(0, 100);
        _proxy.Advance(now - 59_000);

        JsonElement sources = Result(new ControlHandler(_proxy.View, null), "top").GetProperty("sources");
        Assert.Empty(sources.GetProperty("top").EnumerateArray());
        Assert.False(sources.GetProperty("recent").GetBoolean());
    }

    [Fact]
    public void ReloadCallsTheHostsSeamAndPassesItsMessagesOn()
    {
        int calls = 0;
        var handler = new ControlHandler(_proxy.View, () =>
        {
            calls++;
            return new ReloadOutcome(false, ["cookieproxy.yaml:3: max-conn-per-source: 'x' is not a whole number"]);
        });

        JsonElement r = Result(handler, "reload");

        Assert.Equal(1, calls);
        Assert.False(r.GetProperty("applied").GetBoolean());
        Assert.Equal("cookieproxy.yaml:3: max-conn-per-source: 'x' is not a whole number", r.GetProperty("messages")[0].GetString());
    }

    [Fact]
    public void ReloadWithoutASeamIsAnErrorReplyNotACrash()
    {
        JsonElement r = Reply(new ControlHandler(_proxy.View, null), "reload");
        Assert.False(r.GetProperty("ok").GetBoolean());
        Assert.Contains("reload", r.GetProperty("error").GetString());
    }

    [Fact]
    public void VersionNamesTheVersionAndTheProcess()
    {
        JsonElement v = Result(new ControlHandler(_proxy.View, null), "version");
        Assert.Equal(ProxyView.Version, v.GetProperty("version").GetString());
        Assert.Equal(Environment.ProcessId, v.GetProperty("pid").GetInt32());
    }

    [Theory]
    [InlineData("")]
    [InlineData("   ")]
    [InlineData("shutdown")]
    [InlineData("{\"command\":")]
    [InlineData("{\"cmd\":\"stats\"}")]
    [InlineData("{\"command\":42}")]
    [InlineData("[\"stats\"]")]
    [InlineData("{\"command\":\"top\",\"sources\":1000}")]
    [InlineData("{\"command\":\"top\",\"sources\":\"x\"}")]
    [InlineData("{\"a\":{\"b\":{\"c\":{\"d\":{\"e\":1}}}}}")]
    [InlineData("\u00ff\u00fe garbage")]
    public void ABadRequestGetsAnErrorReplyNamingTheProblem(string request)
    {
        JsonElement r = Reply(new ControlHandler(_proxy.View, null), request);
        Assert.False(r.GetProperty("ok").GetBoolean());
        Assert.False(string.IsNullOrWhiteSpace(r.GetProperty("error").GetString()));
    }

    [Fact]
    public void ABareWordAndItsJsonFormAreTheSameRequest()
    {
        var handler = new ControlHandler(_proxy.View, null);
        Assert.Equal("help", Reply(handler, "HELP\r").GetProperty("command").GetString());
        Assert.Equal("help", Reply(handler, """{"command":"help"}""").GetProperty("command").GetString());
        Assert.Equal(ControlHandler.Commands, Result(handler, "help").GetProperty("commands").EnumerateArray().Select(c => c.GetString()));
    }
}
