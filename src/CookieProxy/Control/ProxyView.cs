using System.Net;
using System.Reflection;
using CookieProxy.Diagnostics;
using CookieProxy.Limits;
using CookieProxy.Wire;

namespace CookieProxy.Host.Control;

/// <summary>A protected endpoint and where its connections go, as the control socket names them.</summary>
public sealed record ListenerInfo(IPEndPoint Listen, string Backend)
{
    /// <summary>The backend shown for an endpoint a reload removed (its counts stay).</summary>
    public const string Removed = "(removed)";
}

/// <summary>What one capture thread lets the control socket read (each written only by that thread).</summary>
public sealed record ThreadView(ListenerCounters Listeners, SourceSketch? Sketch, SourceLimiter? Limiter);

/// <summary>Every counter at one moment: the totals, each capture thread's share and the per-listener counts.</summary>
public sealed class StatsSnapshot
{
    public required long UnixMs { get; init; }

    /// <summary>Monotonic milliseconds (for rates: the wall clock may step).</summary>
    public required long MonotonicMs { get; init; }

    public required double UptimeSeconds { get; init; }

    public required ProxyCounters Total { get; init; }

    public required IReadOnlyList<ProxyCounters> PerThread { get; init; }

    /// <summary>Per-listener counts summed over the threads, by endpoint.</summary>
    public required ListenerCounters Listeners { get; init; }

    /// <summary>The listeners now, in configuration order, then any a reload removed that still have counts.</summary>
    public required IReadOnlyList<ListenerInfo> ListenerInfo { get; init; }

    /// <summary>Per second of <paramref name="counter"/> since <paramref name="earlier"/> (null: no earlier snapshot yet).</summary>
    public double? RateSince(StatsSnapshot? earlier, Counter counter) =>
        earlier is null ? null : (Total.Read(counter) - earlier.Total.Read(counter)) / SecondsSince(earlier);

    public double SecondsSince(StatsSnapshot earlier) => Math.Max(0.001, (MonotonicMs - earlier.MonotonicMs) / 1000.0);
}

/// <summary>A heavy source prefix as <c>cookieproxy top</c> shows it.</summary>
/// <param name="SynPerSecond">Estimated SYNs per second (space-saving count, may overstate by the error).</param>
/// <param name="GuaranteedPerSecond">SYNs per second the prefix certainly sent (count minus error).</param>
/// <param name="Limit">Its state in the per-source limiter, when one is on.</param>
public sealed record TopSource(IpAddr Prefix, int PrefixLength, double SynPerSecond, double GuaranteedPerSecond, SourceLimitState? Limit)
{
    public string PrefixText => $"{Prefix}/{PrefixLength}";
}

/// <summary>The top sources over all capture threads, and what they were measured over.</summary>
public sealed record TopSources(IReadOnlyList<TopSource> Sources, double WindowSeconds, int SampleEvery, bool LimiterOn, bool Recent);

/// <summary>
/// The control socket's and /metrics' read-only view of the running proxy: counters through the host's
/// snapshot (the same one the counters line and --stats-file use), per-listener counts and top sources
/// through the capture threads' own tables. Reading never takes a lock and never stops a capture thread.
/// </summary>
public sealed class ProxyView
{
    private const int SketchEntries = 64;

    private readonly Func<ProxyCounters[]> _counters;
    private readonly Func<IReadOnlyList<ThreadView>> _threads;
    private readonly Func<IReadOnlyList<ListenerInfo>> _listeners;
    private readonly long _startMonotonicMs = Environment.TickCount64;

    /// <param name="counters">One fresh <see cref="ProxyCounters"/> per capture thread (the host's snapshot).</param>
    /// <param name="threads">The capture threads' tables (a function: a reload may change the listeners).</param>
    /// <param name="listeners">The protected endpoints, in listener index order.</param>
    public ProxyView(Func<ProxyCounters[]> counters, Func<IReadOnlyList<ThreadView>> threads, Func<IReadOnlyList<ListenerInfo>> listeners)
    {
        _counters = counters;
        _threads = threads;
        _listeners = listeners;
    }

    public static string Version { get; } =
        typeof(ProxyView).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion
        ?? typeof(ProxyView).Assembly.GetName().Version?.ToString() ?? "unknown";

    public StatsSnapshot Capture()
    {
        ProxyCounters[] perThread = _counters();
        var total = new ProxyCounters();
        foreach (ProxyCounters c in perThread)
        {
            c.AddTo(total);
        }
        var listeners = new ListenerCounters();
        foreach (ThreadView t in _threads())
        {
            t.Listeners.AddTo(listeners);
        }
        var info = new List<ListenerInfo>(_listeners());
        foreach (IPEndPoint ep in listeners.Endpoints)
        {
            if (!info.Exists(l => l.Listen.Equals(ep)))
            {
                info.Add(new ListenerInfo(ep, Host.Control.ListenerInfo.Removed));
            }
        }
        long now = Environment.TickCount64;
        return new StatsSnapshot
        {
            UnixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds(),
            MonotonicMs = now,
            UptimeSeconds = (now - _startMonotonicMs) / 1000.0,
            Total = total,
            PerThread = perThread,
            Listeners = listeners,
            ListenerInfo = info,
        };
    }

    /// <summary>The heaviest SYN sources of the last second over all threads (merged by prefix), each with its
    /// limiter state; with a limiter, also the prefixes its tables show busiest.</summary>
    public TopSources CaptureSources(int max)
    {
        long nowMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        IReadOnlyList<ThreadView> threads = _threads();
        var merged = new Dictionary<IpAddr, (double Rate, double Guaranteed, int Length)>();
        var buffer = new SourceCount[SketchEntries];
        double window = 0;
        int every = 0;
        bool recent = false;
        foreach (ThreadView t in threads)
        {
            if (t.Sketch is not SourceSketch sketch)
            {
                continue;
            }
            SourceWindow w = sketch.CopyCompleted(buffer);
            every = w.SampleEvery;
            // A window that ended long ago means the thread has seen no frame since: nothing is arriving.
            if (nowMs - w.EndUnixMs > 2 * SourceSketch.WindowMs + 500)
            {
                continue;
            }
            recent = true;
            window = Math.Max(window, w.Seconds);
            for (int i = 0; i < w.Entries; i++)
            {
                SourceCount c = buffer[i];
                int length = c.Prefix.IsV4 ? sketch.Ipv4PrefixLength : sketch.Ipv6PrefixLength;
                double rate = c.Count * (double)w.SampleEvery / w.Seconds;
                double sure = c.Guaranteed * (double)w.SampleEvery / w.Seconds;
                merged[c.Prefix] = merged.TryGetValue(c.Prefix, out var m) ? (m.Rate + rate, m.Guaranteed + sure, length) : (rate, sure, length);
            }
        }

        var sources = merged
            .OrderByDescending(kv => kv.Value.Guaranteed).ThenByDescending(kv => kv.Value.Rate)
            .Take(max)
            .Select(kv => new TopSource(kv.Key, kv.Value.Length, kv.Value.Rate, kv.Value.Guaranteed, LimitOf(threads, kv.Key, kv.Value.Length, nowMs)))
            .ToList();

        bool limiterOn = threads.Any(t => t.Limiter is not null);
        if (limiterOn && sources.Count < max)
        {
            var busiest = new SourceLimitState[16];
            var extra = new Dictionary<IpAddr, SourceLimitState>();
            foreach (ThreadView t in threads)
            {
                if (t.Limiter is not SourceLimiter limiter)
                {
                    continue;
                }
                int n = limiter.CopyBusiest(busiest, nowMs);
                for (int i = 0; i < n; i++)
                {
                    if (!merged.ContainsKey(busiest[i].Prefix))
                    {
                        IpAddr p = busiest[i].Prefix;
                        SourceLimitConfig c = limiter.Config;
                        if (LimitOf(threads, p, p.IsV4 ? c.Ipv4PrefixLength : c.Ipv6PrefixLength, nowMs) is SourceLimitState s)
                        {
                            extra[p] = s;
                        }
                    }
                }
            }
            SourceLimitConfig config = threads.First(t => t.Limiter is not null).Limiter!.Config;
            sources.AddRange(extra.Values
                .OrderByDescending(s => s.Limited).ThenByDescending(s => s.Connections).ThenByDescending(s => s.SynTokensUsed)
                .Take(max - sources.Count)
                .Select(s => new TopSource(s.Prefix, s.Prefix.IsV4 ? config.Ipv4PrefixLength : config.Ipv6PrefixLength, 0, 0, s)));
        }
        return new TopSources(sources, window, every, limiterOn, recent);
    }

    /// <summary>A prefix's limiter state over all threads: connections add up, any limited thread counts. Null
    /// when no limiter groups sources by <paramref name="length"/> (a reload changed the prefix lengths since the
    /// sketch was made: another prefix's state would mislead).</summary>
    private static SourceLimitState? LimitOf(IReadOnlyList<ThreadView> threads, IpAddr prefix, int length, long nowMs)
    {
        SourceLimitState? combined = null;
        foreach (ThreadView t in threads)
        {
            if (t.Limiter is not SourceLimiter limiter
                || (prefix.IsV4 ? limiter.Config.Ipv4PrefixLength : limiter.Config.Ipv6PrefixLength) != length)
            {
                continue;
            }
            SourceLimitState s = limiter.Inspect(prefix, nowMs);
            combined = combined is not SourceLimitState c ? s : new SourceLimitState(c.Prefix, Math.Max(c.SynTokensUsed, s.SynTokensUsed),
                c.SynLimited || s.SynLimited, c.Connections + s.Connections, c.ConnectionCapReached || s.ConnectionCapReached,
                c.ConnectionRateLimited || s.ConnectionRateLimited);
        }
        return combined;
    }
}
