using System.Globalization;
using System.Text;
using System.Text.Json;
using CookieProxy.Diagnostics;

namespace CookieProxy.Host.Diagnostics;

/// <summary>
/// Prints the live counters line on stderr and (optionally) rewrites a JSON file, every interval and once
/// more at exit. Counters are per capture thread; they are summed here, on read, and the JSON also lists
/// each thread's share (an unbalanced fanout shows there).
/// </summary>
public sealed class StatsReporter : IDisposable
{
    private readonly Func<ProxyCounters[]> _snapshot;
    private readonly TextWriter _out;
    private readonly string? _file;
    private readonly TimeSpan _interval;
    private readonly Thread? _thread;
    private readonly ManualResetEventSlim _stop = new();
    private readonly long _startTicks = Environment.TickCount64;
    private ProxyCounters? _last;
    private long _lastTicks;

    /// <param name="snapshot">One fresh <see cref="ProxyCounters"/> per capture thread, in thread order.</param>
    public StatsReporter(Func<ProxyCounters[]> snapshot, TextWriter output, double intervalSeconds, string? jsonFile)
    {
        _snapshot = snapshot;
        _out = output;
        _file = jsonFile;
        _interval = TimeSpan.FromSeconds(intervalSeconds);
        _lastTicks = _startTicks;
        if (_file is not null)
        {
            // Written at once: the file's appearance tells scripts the capture is open.
            ProxyCounters[] perThread = snapshot();
            WriteJson(_file, Sum(perThread), perThread, 0);
        }
        if (intervalSeconds > 0)
        {
            _thread = new Thread(Run) { IsBackground = true, Name = "cookieproxy-stats" };
            _thread.Start();
        }
    }

    private void Run()
    {
        while (!_stop.Wait(_interval))
        {
            Report(final: false);
        }
    }

    public void Report(bool final)
    {
        ProxyCounters[] perThread = _snapshot();
        ProxyCounters now = Sum(perThread);
        long ticks = Environment.TickCount64;
        double seconds = Math.Max(0.001, (ticks - _lastTicks) / 1000.0);
        _out.WriteLine(FormatLine(now, _last, seconds, final));
        _out.Flush();
        _last = now;
        _lastTicks = ticks;
        if (_file is not null)
        {
            WriteJson(_file, now, perThread, (ticks - _startTicks) / 1000.0);
        }
    }

    public static ProxyCounters Sum(IEnumerable<ProxyCounters> perThread)
    {
        var total = new ProxyCounters();
        foreach (ProxyCounters c in perThread)
        {
            c.AddTo(total);
        }
        return total;
    }

    public static string FormatLine(ProxyCounters c, ProxyCounters? previous, double seconds, bool final)
    {
        var sb = new StringBuilder(256);
        var inv = CultureInfo.InvariantCulture;
        sb.Append(final ? "cookieproxy final:" : "cookieproxy:");
        sb.Append(inv, $" syn={c.TotalSynReceived} synack={c.TotalSynAckSent}");
        if (previous is not null)
        {
            sb.Append(inv, $" ({(c.TotalSynAckSent - previous.TotalSynAckSent) / seconds:F0}/s)");
        }
        if (c.XdpSynAckSent != 0 || c.XdpSynPassed != 0)
        {
            sb.Append(inv, $" xdp_synack={c.XdpSynAckSent} xdp_passed={c.XdpSynPassed}");
        }
        sb.Append(inv, $" ack_valid={c.CookieValid} ack_invalid={c.CookieInvalid} flows={c.FlowsActive} created={c.FlowsCreated}");
        sb.Append(inv, $" rst={c.RstSent} to_backend={c.BytesToBackend} to_client={c.BytesToClient} retrans={c.Retransmits}");
        if (c.CaptureDropped != 0)
        {
            sb.Append(inv, $" capture_dropped={c.CaptureDropped}");
        }
        long drops = c.TotalDrops;
        sb.Append(inv, $" drops={drops}");
        if (drops > 0)
        {
            sb.Append(" [");
            bool first = true;
            for (var r = (DropReason)1; r < DropReason.Count; r++)
            {
                long n = c.Drops(r);
                if (n != 0)
                {
                    sb.Append(first ? "" : " ").Append(inv, $"{r}={n}");
                    first = false;
                }
            }
            sb.Append(']');
        }
        return sb.ToString();
    }

    public static void WriteJson(string path, ProxyCounters c, IReadOnlyList<ProxyCounters> perThread, double uptimeSeconds)
    {
        string tmp = path + ".tmp";
        using (var stream = File.Create(tmp))
        using (var w = new Utf8JsonWriter(stream, new JsonWriterOptions { Indented = true }))
        {
            w.WriteStartObject();
            w.WriteNumber("uptime_s", Math.Round(uptimeSeconds, 3));
            w.WriteNumber("frames_received", c.FramesReceived);
            w.WriteNumber("syn_received", c.TotalSynReceived);
            w.WriteNumber("synack_sent", c.TotalSynAckSent);
            w.WriteNumber("xdp_synack_sent", c.XdpSynAckSent);
            w.WriteNumber("xdp_syn_passed", c.XdpSynPassed);
            w.WriteNumber("xdp_internal_errors", c.XdpInternalErrors);
            w.WriteNumber("cookie_valid", c.CookieValid);
            w.WriteNumber("cookie_invalid", c.CookieInvalid);
            w.WriteNumber("cookie_retransmit", c.CookieRetransmit);
            w.WriteNumber("rst_sent", c.RstSent);
            w.WriteNumber("flows_created", c.FlowsCreated);
            w.WriteNumber("flows_closed", c.FlowsClosed);
            w.WriteNumber("flows_active", c.FlowsActive);
            w.WriteNumber("backend_connect_failed", c.BackendConnectFailed);
            w.WriteNumber("bytes_to_backend", c.BytesToBackend);
            w.WriteNumber("bytes_to_client", c.BytesToClient);
            w.WriteNumber("segments_to_client", c.SegmentsToClient);
            w.WriteNumber("retransmits", c.Retransmits);
            w.WriteNumber("capture_dropped", c.CaptureDropped);
            w.WriteNumber("ring_buffers_created", c.RingBuffersCreated);
            w.WriteNumber("ring_buffers_in_use", c.RingBuffersInUse);
            w.WriteNumber("ring_buffers_pooled", c.RingBuffersPooled);
            w.WriteNumber("drops_total", c.TotalDrops);
            w.WriteStartObject("drops");
            for (var r = (DropReason)1; r < DropReason.Count; r++)
            {
                w.WriteNumber(r.ToString(), c.Drops(r));
            }
            w.WriteEndObject();
            w.WriteNumber("threads", perThread.Count);
            w.WriteStartArray("per_thread");
            foreach (ProxyCounters t in perThread)
            {
                w.WriteStartObject();
                w.WriteNumber("frames_received", t.FramesReceived);
                w.WriteNumber("syn_received", t.SynReceived);
                w.WriteNumber("synack_sent", t.SynAckSent);
                w.WriteNumber("cookie_valid", t.CookieValid);
                w.WriteNumber("flows_created", t.FlowsCreated);
                w.WriteNumber("flows_active", t.FlowsActive);
                w.WriteNumber("capture_dropped", t.CaptureDropped);
                w.WriteNumber("drops_total", t.TotalDrops);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        File.Move(tmp, path, overwrite: true);
    }

    public void Dispose()
    {
        _stop.Set();
        _thread?.Join();
        Report(final: true);
        _stop.Dispose();
    }
}
