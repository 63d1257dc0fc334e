using CookieProxy.Diagnostics;
using CookieProxy.Host.Services;
using CookieProxy.Responder;
using Microsoft.Extensions.Logging;

namespace CookieProxy.Host.Capture;

/// <summary>
/// The syncache with the XDP SYN responder in front of it (helper net): every 100 ms reads the counters and lets
/// <see cref="SynCacheXdpGate"/> decide whether the program passes SYNs up to the capture threads (calm: they are
/// remembered there and their SYN+ACKs retransmitted) or answers them in the kernel (a flood: pure cookies), then
/// writes that into the program's config. Only with --xdp-syn on and --syncache above 0.
/// </summary>
internal sealed class SynCacheXdpService : IHostService, IDrainingService
{
    private static readonly TimeSpan PollInterval = TimeSpan.FromMilliseconds(100);

    private readonly SynCacheXdpGate _gate;
    private readonly Func<ProxyCounters[]> _snapshot;
    private readonly Func<bool, bool> _setPassSyns;
    private readonly ILogger _log;
    private readonly Lock _lock = new();
    private Timer? _timer;

    /// <param name="perThread">The capture threads' syncache configuration.</param>
    /// <param name="threads">How many capture threads there are.</param>
    /// <param name="snapshot">Every counter, per thread, the program's included (its SYN+ACKs count in syn_received).</param>
    /// <param name="setPassSyns">Writes the program's pass-SYNs flag; false when no program is attached (auto fell back).</param>
    /// <param name="nowMs">Monotonic start time (MonotonicClock.NowMs).</param>
    public SynCacheXdpService(SynCacheConfig perThread, int threads, Func<ProxyCounters[]> snapshot, Func<bool, bool> setPassSyns, ILogger log, long nowMs)
    {
        _gate = new SynCacheXdpGate(perThread, threads, nowMs);
        _snapshot = snapshot;
        _setPassSyns = setPassSyns;
        _log = log;
    }

    public string Name => "syncache-xdp";

    long IDrainingService.Outstanding => 0;

    public void Start()
    {
        // Calm to begin with: the program passes SYNs up until a capture thread sees a flood.
        _setPassSyns(true);
        _timer = new Timer(_ => Poll(MonotonicClock.NowMs), null, PollInterval, PollInterval);
    }

    /// <summary>One poll at monotonic <paramref name="nowMs"/> (the timer's; tests call it directly).</summary>
    internal void Poll(long nowMs)
    {
        ProxyCounters[] perThread = _snapshot();
        bool anyFlooded = false;
        long syns = 0;
        foreach (ProxyCounters c in perThread)
        {
            anyFlooded |= c.Read(Counter.SynCacheFloodMode) > 0;
            syns += c.Read(Counter.SynReceived);
        }
        lock (_lock)
        {
            if (_gate.Update(nowMs, anyFlooded, syns))
            {
                bool pass = _gate.PassSyns;
                if (_setPassSyns(pass))
                {
                    if (pass)
                    {
                        SynCacheLog.XdpCalm(_log);
                    }
                    else
                    {
                        SynCacheLog.XdpFlood(_log);
                    }
                }
            }
        }
    }

    /// <summary>The gate's state, on thread 0's counters (one program for the interface).</summary>
    public void AddCounters(ProxyCounters[] perThread)
    {
        if (perThread.Length == 0)
        {
            return;
        }
        lock (_lock)
        {
            perThread[0][Counter.SynCacheXdpFlood] = _gate.PassSyns ? 0 : 1;
            perThread[0][Counter.SynCacheModeChanges] += _gate.Changes;
        }
    }

    public void BeginDrain() => StopTimer();

    public void Stop() => StopTimer();

    private void StopTimer()
    {
        Timer? timer = Interlocked.Exchange(ref _timer, null);
        if (timer is not null)
        {
            using var done = new ManualResetEvent(false);
            if (timer.Dispose(done))
            {
                done.WaitOne(TimeSpan.FromSeconds(2));
            }
        }
    }
}
