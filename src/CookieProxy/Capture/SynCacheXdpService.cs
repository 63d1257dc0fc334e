using CookieProxy.Diagnostics;
using CookieProxy.Host.Services;
using CookieProxy.Platform;
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

    private readonly SynCacheConfig _perThread;
    private readonly Func<int> _threads;
    private readonly Func<ProxyCounters[]> _snapshot;
    private readonly Func<bool, bool> _setPassSyns;
    private readonly ILogger _log;
    private readonly Lock _lock = new();
    private SynCacheXdpGate? _gate;       // null until Open, and when no program runs (auto fell back to user space)
    private Timer? _timer;

    /// <param name="perThread">The capture threads' syncache configuration.</param>
    /// <param name="threads">How many capture threads there are (known once the capture is open).</param>
    /// <param name="snapshot">Every counter, per thread, the program's included (its SYN+ACKs count in syn_received).</param>
    /// <param name="setPassSyns">Writes the program's pass-SYNs flag; false when no program is attached (auto fell back).</param>
    public SynCacheXdpService(SynCacheConfig perThread, Func<int> threads, Func<ProxyCounters[]> snapshot, Func<bool, bool> setPassSyns, ILogger log)
    {
        _perThread = perThread;
        _threads = threads;
        _snapshot = snapshot;
        _setPassSyns = setPassSyns;
        _log = log;
    }

    public string Name => "syncache-xdp";

    long IDrainingService.Outstanding => 0;

    /// <summary>After the XDP service's Open (the program is loaded): calm to begin with, the program passes SYNs up
    /// until a capture thread sees a flood. The capture rings hold them until the threads start.</summary>
    public void Open() => Open(MonotonicClock.NowMs);

    /// <summary><see cref="Open()"/> at monotonic <paramref name="nowMs"/> (tests).</summary>
    internal void Open(long nowMs)
    {
        lock (_lock)
        {
            if (TrySetPassSyns(true))
            {
                _gate = new SynCacheXdpGate(_perThread, Math.Max(1, _threads()), nowMs);
                SynCacheLog.XdpGateOn(_log);
            }
        }
    }

    public void Start()
    {
        lock (_lock)
        {
            if (_gate is not null)
            {
                _timer = new Timer(_ => Poll(MonotonicClock.NowMs), null, PollInterval, PollInterval);
            }
        }
    }

    private bool TrySetPassSyns(bool pass)
    {
        try
        {
            return _setPassSyns(pass);
        }
        catch (PacketDeviceException e)
        {
            SynCacheLog.XdpFlagFailed(_log, e.Message);
            return false;
        }
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
            if (_gate is not null && _gate.Update(nowMs, anyFlooded, syns))
            {
                bool pass = _gate.PassSyns;
                if (TrySetPassSyns(pass))
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
        lock (_lock)
        {
            if (perThread.Length == 0 || _gate is null)
            {
                return;
            }
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
