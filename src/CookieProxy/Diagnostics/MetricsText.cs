using System.Globalization;
using System.Text;
using CookieProxy.Diagnostics;
using CookieProxy.Host.Control;

namespace CookieProxy.Host.Diagnostics;

/// <summary>
/// The Prometheus text exposition format (version 0.0.4) of one <see cref="StatsSnapshot"/>: every
/// <see cref="CounterTable"/> entry as <c>cookieproxy_NAME_total</c> (counter) or <c>cookieproxy_NAME</c>
/// (gauge), drops as <c>cookieproxy_drops_total{reason="..."}</c>, per-listener counters with a
/// <c>listener</c> label, and <c>cookieproxy_build_info{version="..."} 1</c>. Values come from the same
/// snapshot as <c>cookieproxy stats</c>, so the two agree; Prometheus computes the rates.
/// Written by hand rather than through prometheus-net: every value is already in the snapshot, and a client
/// library would hold a second copy of each counter to be set on every scrape.
/// </summary>
public static class MetricsText
{
    public const string ContentType = "text/plain; version=0.0.4; charset=utf-8";

    public const string Prefix = "cookieproxy_";

    /// <summary>The exposition name of a table counter.</summary>
    public static string NameOf(Counter c)
    {
        CounterInfo info = CounterTable.Of(c);
        return Prefix + info.Name + (info.Kind == CounterKind.Counter ? "_total" : "");
    }

    public static void Write(StringBuilder sb, StatsSnapshot s, string version)
    {
        var inv = CultureInfo.InvariantCulture;
        for (var c = (Counter)0; c < Counter.Count; c++)
        {
            CounterInfo info = CounterTable.Of(c);
            string name = NameOf(c);
            Header(sb, name, info.Help, info.Kind == CounterKind.Counter ? "counter" : "gauge");
            sb.Append(name).Append(' ').Append(s.Total.Read(c).ToString(inv)).Append('\n');
        }

        Header(sb, Prefix + "drops_total", "Frames not acted upon, by reason (see DropReason).", "counter");
        for (var r = (DropReason)1; r < DropReason.Count; r++)
        {
            sb.Append(Prefix).Append("drops_total{reason=\"").Append(CounterTable.NameOf(r)).Append("\"} ")
                .Append(s.Total.Drops(r).ToString(inv)).Append('\n');
        }

        for (var lc = (ListenerCounter)0; lc < ListenerCounter.Count; lc++)
        {
            string name = Prefix + "listener_" + ControlJson.ListenerCounterName(lc) + "_total";
            Header(sb, name, ListenerHelp(lc), "counter");
            foreach (ListenerInfo l in s.ListenerInfo)
            {
                sb.Append(name).Append("{listener=\"").Append(Escape(l.Listen.ToString())).Append("\"} ")
                    .Append(s.Listeners.Read(l.Listen, lc).ToString(inv)).Append('\n');
            }
        }
        Header(sb, Prefix + "listener_flows_active", "Flows of the listener in the flow tables now.", "gauge");
        foreach (ListenerInfo l in s.ListenerInfo)
        {
            sb.Append(Prefix).Append("listener_flows_active{listener=\"").Append(Escape(l.Listen.ToString())).Append("\"} ")
                .Append(ControlJson.FlowsActive(s.Listeners, l.Listen).ToString(inv)).Append('\n');
        }

        Header(sb, Prefix + "capture_threads", "Capture threads sharing the interface.", "gauge");
        sb.Append(Prefix).Append("capture_threads ").Append(s.PerThread.Count.ToString(inv)).Append('\n');
        Header(sb, Prefix + "uptime_seconds", "Seconds since the capture started.", "gauge");
        sb.Append(Prefix).Append("uptime_seconds ").Append(s.UptimeSeconds.ToString("0.###", inv)).Append('\n');
        Header(sb, Prefix + "build_info", "The running version (the value is always 1).", "gauge");
        sb.Append(Prefix).Append("build_info{version=\"").Append(Escape(version)).Append("\"} 1\n");
    }

    private static void Header(StringBuilder sb, string name, string help, string type)
    {
        sb.Append("# HELP ").Append(name).Append(' ').Append(EscapeHelp(help)).Append('\n');
        sb.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
    }

    private static string ListenerHelp(ListenerCounter c) => c switch
    {
        ListenerCounter.SynReceived => "SYNs to the listener with no flow that reached user space (the XDP program counts its own per CPU, in the totals only).",
        ListenerCounter.SynRateLimited => "SYNs to the listener refused by the per-source SYN budget.",
        ListenerCounter.CookieValid => "ACKs to the listener whose cookie validated.",
        ListenerCounter.CookieInvalid => "ACKs to the listener with no flow and no valid cookie.",
        ListenerCounter.FlowsCreated => "Flows of the listener created.",
        ListenerCounter.FlowsClosed => "Flows of the listener removed.",
        _ => throw new ArgumentOutOfRangeException(nameof(c), c, null),
    };

    /// <summary>A label value: backslash, double quote and newline escaped.</summary>
    public static string Escape(string value) =>
        value.Replace("\\", @"\\", StringComparison.Ordinal).Replace("\"", "\\\"", StringComparison.Ordinal).Replace("\n", @"\n", StringComparison.Ordinal);

    /// <summary>HELP text: backslash and newline escaped.</summary>
    private static string EscapeHelp(string value) =>
        value.Replace("\\", @"\\", StringComparison.Ordinal).Replace("\n", @"\n", StringComparison.Ordinal);
}
