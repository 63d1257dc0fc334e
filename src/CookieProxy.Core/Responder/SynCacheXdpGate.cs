namespace CookieProxy.Responder;

/// <summary>
/// The syncache with the XDP SYN responder in front of it. A SYN the program answers in the kernel never reaches a
/// capture thread, so no syncache can remember it; this gate decides, for the whole interface, where SYNs go:
/// <list type="bullet">
/// <item>calm (<see cref="PassSyns"/> true): the program passes every SYN up; the capture threads answer them with the
/// same cookie SYN+ACK and their syncaches remember them (each thread still switches itself to pure cookies above
/// its own rate, as without XDP);</item>
/// <item>flood (<see cref="PassSyns"/> false): the program answers SYNs in the kernel, pure cookies, as XDP is there
/// for.</item>
/// </list>
/// Calm → flood as soon as any capture thread reports its syncache in pure-cookie mode (a flood reached user space;
/// the host polls about every 100 ms). Flood → calm only after <see cref="SynCacheConfig.QuietWindowsToLeave"/>
/// consecutive windows in which all SYNs together, answered in the kernel or passed up, stayed at or below the
/// threads' summed leave rate. Measuring the kernel's count in flood mode is what keeps the gate from flapping: the
/// threads themselves see no flood then, and would call it calm after three windows.
/// Sans-IO: the host passes the clock and the counts, and applies <see cref="PassSyns"/> to the program.
/// </summary>
public sealed class SynCacheXdpGate
{
    private readonly long _windowMs;
    private readonly long _leavePerWindow;
    private readonly int _quietToLeave;
    private long _windowStartMs;
    private long _windowStartSyns;
    private long _quietWindows;

    /// <param name="perThread">The capture threads' syncache configuration (window, leave rate, quiet windows).</param>
    /// <param name="threads">Capture threads: the leave rate is per thread, the gate sees their sum.</param>
    /// <param name="nowMs">Monotonic start time.</param>
    public SynCacheXdpGate(SynCacheConfig perThread, int threads, long nowMs)
    {
        ArgumentNullException.ThrowIfNull(perThread);
        ArgumentOutOfRangeException.ThrowIfLessThan(threads, 1);
        perThread.Validate();
        _windowMs = perThread.WindowMs;
        _leavePerWindow = (long)perThread.LeaveCookiesPerSecond * threads * perThread.WindowMs / 1000;
        _quietToLeave = perThread.QuietWindowsToLeave;
        _windowStartMs = nowMs;
    }

    /// <summary>True: the XDP program passes SYNs up to the capture threads (calm); false: it answers them.</summary>
    public bool PassSyns { get; private set; } = true;

    /// <summary>How often <see cref="PassSyns"/> changed.</summary>
    public long Changes { get; private set; }

    /// <summary>
    /// One poll. <paramref name="anyThreadFlooded"/>: some thread's syncache is in pure-cookie mode now;
    /// <paramref name="synsTotal"/>: every SYN to a protected endpoint so far, wherever it was answered (the
    /// program's SYN+ACKs plus the threads' syn_received), a monotonic count. Returns true when
    /// <see cref="PassSyns"/> changed (the host then writes the program's flag).
    /// </summary>
    public bool Update(long nowMs, bool anyThreadFlooded, long synsTotal)
    {
        if (PassSyns)
        {
            if (anyThreadFlooded)
            {
                PassSyns = false;
                Changes++;
                _windowStartMs = nowMs;
                _windowStartSyns = synsTotal;
                _quietWindows = 0;
                return true;
            }
            return false;
        }

        long elapsed = (nowMs - _windowStartMs) / _windowMs;
        if (elapsed <= 0)
        {
            return false;
        }
        // The SYNs since the window began, spread evenly over the windows that passed since (a poll that came late
        // closes several windows at once).
        long perWindow = (synsTotal - _windowStartSyns) / elapsed;
        _quietWindows = perWindow <= _leavePerWindow ? _quietWindows + elapsed : 0;
        _windowStartMs += elapsed * _windowMs;
        _windowStartSyns = synsTotal;
        if (_quietWindows >= _quietToLeave)
        {
            PassSyns = true;
            Changes++;
            _quietWindows = 0;
            return true;
        }
        return false;
    }
}
