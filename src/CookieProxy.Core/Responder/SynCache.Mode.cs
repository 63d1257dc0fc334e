using CookieProxy.Diagnostics;

namespace CookieProxy.Responder;

/// <summary>
/// The syncache's mode: remember SYNs while this thread's SYN rate is low, pure cookies above it.
/// </summary>
/// <remarks>
/// <para>The rate is counted in fixed windows (<see cref="SynCacheConfig.WindowMs"/>). Remember → PureCookies at
/// once, inside a window, by the SYN that takes the window's count past the enter rate: a flood never gets a
/// whole window into the table. PureCookies → Remember only after <see cref="SynCacheConfig.QuietWindowsToLeave"/>
/// consecutive windows at or below the leave rate, a quarter of the enter rate: hysteresis in level and in time,
/// so a flood near the threshold, or one that pauses briefly, does not flip the mode per window.</para>
/// <para>Entries remembered before the switch keep their schedule (at most a capacity's worth of retransmissions,
/// for SYNs that came while the rate was low, which are likely the legitimate ones).</para>
/// <para>Under a flood the per-SYN cost is one addition per batch (<see cref="OnSyns"/>); the table is not
/// touched. syncache_mode_changes counts the switches, the syncache_flood_mode gauge is 1 on a thread that
/// answers pure cookies (summed over threads: how many do).</para>
/// </remarks>
public sealed partial class SynCache
{
    private SynCacheMode _mode;
    private long _windowMs;
    private long _enterPerWindow;
    private long _leavePerWindow;
    private int _quietToLeave;
    private long _windowStartMs;
    private long _windowSyns;
    private long _quietWindows;

    /// <summary>How SYNs are answered now.</summary>
    public SynCacheMode Mode => _mode;

    /// <summary>SYNs counted in the current window.</summary>
    public long WindowSyns => _windowSyns;

    /// <summary>
    /// <paramref name="count"/> SYNs are about to be answered at <paramref name="nowMs"/>: counts them towards the
    /// rate and returns whether they are to be remembered (<see cref="Remember"/>) or get pure cookies.
    /// </summary>
    public bool OnSyns(int count, long nowMs)
    {
        if (nowMs - _windowStartMs >= _windowMs)
        {
            AdvanceWindow(nowMs);
        }
        _windowSyns += count;
        if (_mode == SynCacheMode.Remember && _windowSyns > _enterPerWindow)
        {
            SetMode(SynCacheMode.PureCookies);
        }
        return _mode == SynCacheMode.Remember;
    }

    private void InitMode(SynCacheConfig config, long nowMs)
    {
        _windowMs = config.WindowMs;
        _enterPerWindow = Math.Max(1, (long)config.EnterCookiesPerSecond * config.WindowMs / 1000);
        _leavePerWindow = (long)config.LeaveCookiesPerSecond * config.WindowMs / 1000;
        _quietToLeave = config.QuietWindowsToLeave;
        _windowStartMs = nowMs;
        _mode = SynCacheMode.Remember;
        _counters[Counter.SynCacheFloodMode] = 0;
    }

    /// <summary>Closes the windows that ended by <paramref name="nowMs"/>: the current one with its count, any
    /// further ones (no SYN, no tick in them) as empty, hence quiet.</summary>
    private void AdvanceWindow(long nowMs)
    {
        long elapsed = (nowMs - _windowStartMs) / _windowMs;
        if (elapsed <= 0)
        {
            return;
        }
        if (_mode == SynCacheMode.PureCookies)
        {
            _quietWindows = _windowSyns <= _leavePerWindow ? _quietWindows + 1 : 0;
            _quietWindows += elapsed - 1;
            if (_quietWindows >= _quietToLeave)
            {
                SetMode(SynCacheMode.Remember);
            }
        }
        _windowStartMs += elapsed * _windowMs;
        _windowSyns = 0;
    }

    private void SetMode(SynCacheMode mode)
    {
        _mode = mode;
        _quietWindows = 0;
        _counters[Counter.SynCacheModeChanges]++;
        _counters[Counter.SynCacheFloodMode] = mode == SynCacheMode.PureCookies ? 1 : 0;
    }
}
