using System.Net;
using System.Text.Json;
using CookieProxy.Diagnostics;
using CookieProxy.Limits;

namespace CookieProxy.Host.Control;

/// <summary>
/// The JSON the control socket answers with. <see cref="WriteStats"/> is the --stats-file document (the counters
/// at the top level under their <see cref="CounterTable"/> names, <c>drops</c>, <c>threads</c>, <c>per_thread</c>)
/// plus <c>rates</c> (per second over the last second or so), per-thread drops and rates, and the listeners.
/// </summary>
public static class ControlJson
{
    /// <summary>The counters of <paramref name="c"/> under their table names, then drops_total (the --stats-file keys).</summary>
    public static void WriteCounters(Utf8JsonWriter w, ProxyCounters c)
    {
        for (var k = (Counter)0; k < Counter.Count; k++)
        {
            w.WriteNumber(CounterTable.NameOf(k), c.Read(k));
        }
        w.WriteNumber("drops_total", c.TotalDrops);
    }

    /// <summary>An object of every drop reason's count (reason 0, "None", is not one).</summary>
    public static void WriteDrops(Utf8JsonWriter w, string name, ProxyCounters c)
    {
        w.WriteStartObject(name);
        for (var r = (DropReason)1; r < DropReason.Count; r++)
        {
            w.WriteNumber(CounterTable.NameOf(r), c.Drops(r));
        }
        w.WriteEndObject();
    }

    /// <summary>Per second since <paramref name="earlier"/>: every counter (gauges have no rate), drops_total and each drop reason.</summary>
    private static void WriteRates(Utf8JsonWriter w, ProxyCounters now, ProxyCounters? earlier, double seconds)
    {
        w.WriteStartObject("rates");
        if (earlier is null)
        {
            w.WriteEndObject();
            return;
        }
        w.WriteNumber("interval_s", Math.Round(seconds, 3));
        for (var k = (Counter)0; k < Counter.Count; k++)
        {
            if (CounterTable.Of(k).Kind == CounterKind.Counter)
            {
                w.WriteNumber(CounterTable.NameOf(k), Rate(now.Read(k), earlier.Read(k), seconds));
            }
        }
        w.WriteNumber("drops_total", Rate(now.TotalDrops, earlier.TotalDrops, seconds));
        w.WriteStartObject("drops");
        for (var r = (DropReason)1; r < DropReason.Count; r++)
        {
            w.WriteNumber(CounterTable.NameOf(r), Rate(now.Drops(r), earlier.Drops(r), seconds));
        }
        w.WriteEndObject();
        w.WriteEndObject();
    }

    private static double Rate(long now, long earlier, double seconds) => Math.Round(Math.Max(0, now - earlier) / seconds, 1);

    /// <summary>The <c>stats</c> reply; <paramref name="earlier"/> (about a second before) gives the rates.</summary>
    public static void WriteStats(Utf8JsonWriter w, StatsSnapshot now, StatsSnapshot? earlier)
    {
        double seconds = earlier is null ? 0 : now.SecondsSince(earlier);
        w.WriteStartObject();
        w.WriteNumber("uptime_s", Math.Round(now.UptimeSeconds, 3));
        WriteCounters(w, now.Total);
        WriteDrops(w, "drops", now.Total);
        w.WriteNumber("threads", now.PerThread.Count);
        w.WriteStartArray("per_thread");
        for (int i = 0; i < now.PerThread.Count; i++)
        {
            w.WriteStartObject();
            WriteCounters(w, now.PerThread[i]);
            WriteDrops(w, "drops", now.PerThread[i]);
            ProxyCounters? before = earlier is not null && earlier.PerThread.Count == now.PerThread.Count ? earlier.PerThread[i] : null;
            WriteRates(w, now.PerThread[i], before, seconds);
            w.WriteEndObject();
        }
        w.WriteEndArray();
        WriteRates(w, now.Total, earlier?.Total, seconds);
        WriteListeners(w, now, earlier);
        w.WriteString("version", ProxyView.Version);
        w.WriteNumber("unix_ms", now.UnixMs);
        w.WriteEndObject();
    }

    private static void WriteListeners(Utf8JsonWriter w, StatsSnapshot now, StatsSnapshot? earlier)
    {
        w.WriteStartArray("listeners");
        for (int i = 0; i < now.ListenerInfo.Count; i++)
        {
            ListenerInfo info = now.ListenerInfo[i];
            IPEndPoint ep = info.Listen;
            w.WriteStartObject();
            w.WriteString("listen", ep.ToString());
            w.WriteString("backend", info.Backend);
            for (var c = (ListenerCounter)0; c < ListenerCounter.Count; c++)
            {
                w.WriteNumber(ListenerCounterTable.NameOf(c), now.Listeners.Read(ep, c));
            }
            w.WriteNumber("flows_active", FlowsActive(now.Listeners, ep));
            w.WriteStartObject("rates");
            if (earlier is not null)
            {
                double seconds = now.SecondsSince(earlier);
                for (var c = (ListenerCounter)0; c < ListenerCounter.Count; c++)
                {
                    w.WriteNumber(ListenerCounterTable.NameOf(c), Rate(now.Listeners.Read(ep, c), earlier.Listeners.Read(ep, c), seconds));
                }
            }
            w.WriteEndObject();
            w.WriteEndObject();
        }
        w.WriteEndArray();
    }

    public static long FlowsActive(ListenerCounters l, IPEndPoint listener) =>
        Math.Max(0, l.Read(listener, ListenerCounter.FlowsCreated) - l.Read(listener, ListenerCounter.FlowsClosed));

    /// <summary>The <c>top</c> reply: rates per listener and per drop reason, and the top sources.</summary>
    public static void WriteTop(Utf8JsonWriter w, StatsSnapshot now, StatsSnapshot? earlier, TopSources sources)
    {
        double seconds = earlier is null ? 0 : now.SecondsSince(earlier);
        double PerSecond(Counter c) => earlier is null ? 0 : Rate(now.Total.Read(c), earlier.Total.Read(c), seconds);

        w.WriteStartObject();
        w.WriteString("version", ProxyView.Version);
        w.WriteNumber("unix_ms", now.UnixMs);
        w.WriteNumber("uptime_s", Math.Round(now.UptimeSeconds, 3));
        w.WriteNumber("interval_s", Math.Round(seconds, 3));
        w.WriteNumber("threads", now.PerThread.Count);

        w.WriteStartObject("totals");
        w.WriteNumber("syn_per_s", PerSecond(Counter.SynReceived));
        w.WriteNumber("synack_per_s", PerSecond(Counter.SynAckSent));
        w.WriteNumber("cookie_valid_per_s", PerSecond(Counter.CookieValid));
        w.WriteNumber("cookie_invalid_per_s", PerSecond(Counter.CookieInvalid));
        w.WriteNumber("frames_per_s", PerSecond(Counter.FramesReceived));
        w.WriteNumber("drops_per_s", earlier is null ? 0 : Rate(now.Total.TotalDrops, earlier.Total.TotalDrops, seconds));
        w.WriteNumber("flows_active", now.Total.Read(Counter.FlowsActive));
        w.WriteNumber("flows_created", now.Total.Read(Counter.FlowsCreated));
        w.WriteNumber("capture_dropped", now.Total.Read(Counter.CaptureDropped));
        w.WriteEndObject();

        w.WriteStartArray("listeners");
        foreach (ListenerInfo info in now.ListenerInfo)
        {
            IPEndPoint ep = info.Listen;
            double L(ListenerCounter c) => earlier is null ? 0 : Rate(now.Listeners.Read(ep, c), earlier.Listeners.Read(ep, c), seconds);
            w.WriteStartObject();
            w.WriteString("listen", ep.ToString());
            w.WriteString("backend", info.Backend);
            w.WriteNumber("syn_per_s", L(ListenerCounter.SynReceived));
            w.WriteNumber("syn_limited_per_s", L(ListenerCounter.SynRateLimited));
            w.WriteNumber("cookie_valid_per_s", L(ListenerCounter.CookieValid));
            w.WriteNumber("cookie_invalid_per_s", L(ListenerCounter.CookieInvalid));
            w.WriteNumber("flows_active", FlowsActive(now.Listeners, ep));
            w.WriteNumber("flows_created", now.Listeners.Read(ep, ListenerCounter.FlowsCreated));
            w.WriteEndObject();
        }
        w.WriteEndArray();

        w.WriteStartArray("drops");
        var drops = new List<(DropReason Reason, double Rate, long Total)>();
        for (var r = (DropReason)1; r < DropReason.Count; r++)
        {
            long total = now.Total.Drops(r);
            if (total > 0)
            {
                drops.Add((r, earlier is null ? 0 : Rate(total, earlier.Total.Drops(r), seconds), total));
            }
        }
        foreach ((DropReason reason, double rate, long total) in drops.OrderByDescending(d => d.Rate).ThenByDescending(d => d.Total))
        {
            w.WriteStartObject();
            w.WriteString("reason", CounterTable.NameOf(reason));
            w.WriteNumber("per_s", rate);
            w.WriteNumber("total", total);
            w.WriteEndObject();
        }
        w.WriteEndArray();

        w.WriteStartObject("sources");
        w.WriteNumber("window_s", Math.Round(sources.WindowSeconds, 3));
        w.WriteNumber("sample_every", sources.SampleEvery);
        w.WriteBoolean("limiter", sources.LimiterOn);
        w.WriteBoolean("recent", sources.Recent);
        w.WriteStartArray("top");
        foreach (TopSource s in sources.Sources)
        {
            w.WriteStartObject();
            w.WriteString("prefix", s.PrefixText);
            w.WriteNumber("syn_per_s", Math.Round(s.SynPerSecond, 1));
            w.WriteNumber("guaranteed_per_s", Math.Round(s.GuaranteedPerSecond, 1));
            if (s.Limit is SourceLimitState l)
            {
                w.WriteString("state", StateOf(l));
                w.WriteNumber("connections", l.Connections);
                w.WriteNumber("syn_tokens_used", Math.Round(l.SynTokensUsed, 1));
            }
            w.WriteEndObject();
        }
        w.WriteEndArray();
        w.WriteEndObject();

        w.WriteEndObject();
    }

    /// <summary>One word for a limiter state: the most severe that applies.</summary>
    public static string StateOf(SourceLimitState s) =>
        s.SynLimited ? "syn-limited" : s.ConnectionCapReached ? "conn-cap" : s.ConnectionRateLimited ? "conn-rate" : "ok";
}
