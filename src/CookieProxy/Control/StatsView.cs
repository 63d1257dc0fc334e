using System.Globalization;
using System.Text;
using System.Text.Json;
using CookieProxy.Diagnostics;

namespace CookieProxy.Host.Control;

/// <summary>
/// <c>cookieproxy stats [--json]</c>: asks the running instance over the control socket and prints its counters
/// the way <c>pfctl -si</c> prints pf's: a table of totals and per-second rates, the current gauges, the drops
/// by reason, the listeners and the capture threads. <c>--json</c> prints the reply as it came (the --stats-file
/// document plus rates).
/// </summary>
public static class StatsView
{
    public static int Run(string socketPath, bool json, TextWriter output, TextWriter error)
    {
        JsonElement result;
        try
        {
            using ControlClient client = ControlClient.Connect(socketPath, TimeSpan.FromSeconds(3));
            result = client.Request("stats");
        }
        catch (ControlClientException e)
        {
            error.WriteLine($"cookieproxy: stats: {e.Message}");
            return 1;
        }
        output.Write(json ? JsonSerializer.Serialize(result, s_indented) + "\n" : Render(result));
        return 0;
    }

    private static readonly JsonSerializerOptions s_indented = new() { WriteIndented = true };

    /// <summary>The pfctl-style text of a <c>stats</c> reply.</summary>
    public static string Render(JsonElement s)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder(4096);
        JsonElement rates = s.TryGetProperty("rates", out JsonElement r) ? r : default;
        bool haveRates = rates.ValueKind == JsonValueKind.Object && rates.TryGetProperty("interval_s", out _);
        double uptime = Number(s, "uptime_s");
        var up = TimeSpan.FromSeconds(Math.Floor(uptime));
        sb.Append(inv, $"cookieproxy {Text(s, "version")}, up {(int)up.TotalDays} days {up:hh\\:mm\\:ss}, {Number(s, "threads")} capture thread(s)");
        sb.Append(haveRates
            ? string.Create(inv, $", rates over the last {Number(rates, "interval_s"):0.0} s\n")
            : ", no rates yet (ask again in a second)\n");

        const string Row = "  {0,-28}{1,18}{2,16}\n";
        sb.Append('\n').Append(inv, $"{"Counters",-30}{"Total",18}{"Rate",16}\n");
        for (var c = (Counter)0; c < Counter.Count; c++)
        {
            CounterInfo info = CounterTable.Of(c);
            if (info.Kind != CounterKind.Counter || !s.TryGetProperty(info.Name, out JsonElement v))
            {
                continue;
            }
            sb.AppendFormat(inv, Row, Label(info.Name), v.GetInt64().ToString("N0", inv), RateText(rates, info.Name, haveRates));
        }

        sb.Append('\n').Append(inv, $"{"Current",-30}{"Now",18}\n");
        for (var c = (Counter)0; c < Counter.Count; c++)
        {
            CounterInfo info = CounterTable.Of(c);
            if (info.Kind == CounterKind.Gauge && s.TryGetProperty(info.Name, out JsonElement v))
            {
                sb.AppendFormat(inv, Row, Label(info.Name), v.GetInt64().ToString("N0", inv), "");
            }
        }

        sb.Append('\n').Append(inv, $"{"Drops",-30}{"Total",18}{"Rate",16}\n");
        sb.AppendFormat(inv, Row, "all reasons", (s.TryGetProperty("drops_total", out JsonElement dt) ? dt.GetInt64() : 0).ToString("N0", inv),
            RateText(rates, "drops_total", haveRates));
        JsonElement dropRates = haveRates && rates.TryGetProperty("drops", out JsonElement dr) ? dr : default;
        if (s.TryGetProperty("drops", out JsonElement drops))
        {
            foreach (JsonProperty d in drops.EnumerateObject().Where(d => d.Value.GetInt64() > 0).OrderByDescending(d => d.Value.GetInt64()))
            {
                sb.AppendFormat(inv, Row, "  " + d.Name, d.Value.GetInt64().ToString("N0", inv), RateText(dropRates, d.Name, haveRates));
            }
        }

        if (s.TryGetProperty("listeners", out JsonElement listeners) && listeners.GetArrayLength() > 0)
        {
            sb.Append('\n').Append(inv, $"{"Listeners",-44}{"SYN/s",10}{"limited/s",11}{"valid/s",10}{"invalid/s",11}{"flows",9}\n");
            foreach (JsonElement l in listeners.EnumerateArray())
            {
                JsonElement lr = l.GetProperty("rates");
                bool lrOk = lr.TryGetProperty("syn_received", out _);
                string name = $"{Text(l, "listen")} -> {Text(l, "backend")}";
                sb.Append(inv, $"  {name,-42}{PerSecond(lr, "syn_received", lrOk),10}{PerSecond(lr, "syn_rate_limited", lrOk),11}"
                    + $"{PerSecond(lr, "cookie_valid", lrOk),10}{PerSecond(lr, "cookie_invalid", lrOk),11}{Number(l, "flows_active"),9}\n");
            }
        }

        if (s.TryGetProperty("per_thread", out JsonElement threads) && threads.GetArrayLength() > 1)
        {
            sb.Append('\n').Append(inv, $"{"Threads",-10}{"frames/s",12}{"SYN/s",12}{"SYN+ACK/s",12}{"drops/s",12}{"flows",10}{"dropped by kernel",19}\n");
            int i = 0;
            foreach (JsonElement t in threads.EnumerateArray())
            {
                JsonElement tr = t.GetProperty("rates");
                bool ok = tr.TryGetProperty("interval_s", out _);
                sb.Append(inv, $"  {i++,-8}{PerSecond(tr, "frames_received", ok),12}{PerSecond(tr, "syn_received", ok),12}{PerSecond(tr, "synack_sent", ok),12}"
                    + $"{PerSecond(tr, "drops_total", ok),12}{Number(t, "flows_active"),10}{Number(t, "capture_dropped"),19}\n");
            }
        }
        return sb.ToString();
    }

    /// <summary>"syn_received" → "syn received" (pfctl's lower-case words).</summary>
    private static string Label(string name) => name.Replace('_', ' ');

    private static string RateText(JsonElement rates, string name, bool have) =>
        have && rates.ValueKind == JsonValueKind.Object && rates.TryGetProperty(name, out JsonElement v)
            ? v.GetDouble().ToString("N1", CultureInfo.InvariantCulture) + "/s"
            : "";

    private static string PerSecond(JsonElement rates, string name, bool have) =>
        have && rates.TryGetProperty(name, out JsonElement v) ? v.GetDouble().ToString("N1", CultureInfo.InvariantCulture) : "-";

    private static double Number(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out JsonElement v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : 0;

    private static string Text(JsonElement e, string name) =>
        e.ValueKind == JsonValueKind.Object && e.TryGetProperty(name, out JsonElement v) ? v.ToString() : "";
}
