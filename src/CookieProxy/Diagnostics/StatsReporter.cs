using System.Globalization;
using System.Text;
using System.Text.Json;
using CookieProxy.Diagnostics;
using CookieProxy.Host.Diagnostics.Logging;
using Microsoft.Extensions.Logging;

namespace CookieProxy.Host.Diagnostics;

/// <summary>
/// Prints the live counters line (stdout: it is data, not the log) every --stats-interval and once more at exit,
/// and rewrites the --stats-file JSON as often (every second when the line is off). Counters are per capture thread; they are summed here, on read, and the JSON also lists
/// each thread's share (an unbalanced fanout shows there). Both formats walk <see cref="CounterTable"/>.
/// </summary>
public sealed class StatsReporter : IDisposable
{
    /// <summary>The counters line's fields: a short key each, in this order (the rest are in the JSON).</summary>
    private static readonly (string Key, Counter Counter, bool OnlyIfNonZero)[] s_line =
    [
        ("syn", Counter.SynReceived, false),
        ("synack", Counter.SynAckSent, false),
        ("xdp_synack", Counter.XdpSynAckSent, true),
        ("xdp_passed", Counter.XdpSynPassed, true),
        ("xdp_over_budget", Counter.XdpSynOverBudget, true),
        ("ack_valid", Counter.CookieValid, false),
        ("ack_invalid", Counter.CookieInvalid, false),
        ("flows", Counter.FlowsActive, false),
        ("created", Counter.FlowsCreated, false),
        ("rst", Counter.RstSent, false),
        ("to_backend", Counter.BytesToBackend, false),
        ("to_client", Counter.BytesToClient, false),
        ("retrans", Counter.Retransmits, false),
        ("rto", Counter.TcpRetransmitTimeouts, true), // tcp
        ("tlp", Counter.TcpLossProbes, true),         // tcp
        ("syncache_rtx", Counter.SynCacheRetransmits, true),
        ("syncache_flood", Counter.SynCacheFloodMode, true),
        ("syncache_xdp_flood", Counter.SynCacheXdpFlood, true), // net: the XDP program answers SYNs itself
        ("capture_dropped", Counter.CaptureDropped, true),
    ];

    private readonly Func<ProxyCounters[]> _snapshot;
    private readonly TextWriter? _out;
    private readonly string? _file;
    private readonly TimeSpan _interval;
    private readonly ILogger _log;
    private readonly Thread? _thread;
    private readonly ManualResetEventSlim _stop = new();
    private readonly long _startTicks = Environment.TickCount64;
    private ProxyCounters? _last;
    private long _lastTicks;
    private bool _fileFailing;
    private bool _disposed;

    /// <param name="snapshot">One fresh <see cref="ProxyCounters"/> per capture thread, in thread order.</param>
    /// <param name="lines">Where the counters line goes (stdout); null = no line.</param>
    /// <param name="intervalSeconds">Every how many seconds; 0 = no periodic line, and the JSON file every second.</param>
    /// <exception cref="IOException">The JSON file cannot be written (also <see cref="UnauthorizedAccessException"/>).</exception>
    public StatsReporter(Func<ProxyCounters[]> snapshot, TextWriter? lines, double intervalSeconds, string? jsonFile, ILogger log)
    {
        _snapshot = snapshot;
        _out = intervalSeconds > 0 ? lines : null;
        _file = jsonFile;
        _log = log;
        _interval = TimeSpan.FromSeconds(intervalSeconds > 0 ? intervalSeconds : 1);
        _lastTicks = _startTicks;
        if (_file is not null)
        {
            // Written at once: the file's appearance tells scripts the capture is open.
            ProxyCounters[] perThread = snapshot();
            WriteJson(_file, Sum(perThread), perThread, 0);
        }
        if (_out is not null || _file is not null)
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
        if (_out is not null)
        {
            _out.WriteLine(FormatLine(now, _last, seconds, final));
            _out.Flush();
        }
        _last = now;
        _lastTicks = ticks;
        if (_file is not null)
        {
            try
            {
                WriteJson(_file, now, perThread, (ticks - _startTicks) / 1000.0);
                _fileFailing = false;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                // The directory went away or filled up: say so once per failure, keep proxying.
                if (!_fileFailing)
                {
                    HostLog.StatsFileFailed(_log, _file, e.Message);
                }
                _fileFailing = true;
            }
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
        foreach ((string key, Counter counter, bool onlyIfNonZero) in s_line)
        {
            long value = c.Read(counter);
            if (onlyIfNonZero && value == 0)
            {
                continue;
            }
            sb.Append(inv, $" {key}={value}");
            if (counter == Counter.SynAckSent && previous is not null)
            {
                sb.Append(inv, $" ({(value - previous.Read(counter)) / seconds:F0}/s)");
            }
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
                    sb.Append(first ? "" : " ").Append(CounterTable.NameOf(r)).Append(inv, $"={n}");
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
            // The same writers as the control socket's `stats` (which adds rates and listeners to this document).
            Control.ControlJson.WriteCounters(w, c);
            Control.ControlJson.WriteDrops(w, "drops", c);
            w.WriteNumber("threads", perThread.Count);
            w.WriteStartArray("per_thread");
            foreach (ProxyCounters t in perThread)
            {
                w.WriteStartObject();
                Control.ControlJson.WriteCounters(w, t);
                w.WriteEndObject();
            }
            w.WriteEndArray();
            w.WriteEndObject();
        }
        File.Move(tmp, path, overwrite: true);
    }

    /// <summary>Stops the periodic reports (the thread is joined).</summary>
    public void StopPeriodic()
    {
        _stop.Set();
        _thread?.Join();
    }

    /// <summary>The final report (line and file), after the periodic ones.</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        StopPeriodic();
        Report(final: true);
        _stop.Dispose();
    }
}
