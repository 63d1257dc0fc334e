namespace CookieProxy.Tcp.Congestion;

/// <summary>
/// HyStart++ (RFC 9406): leaves the initial slow start when the RTT of a round rises by RttThresh over the
/// previous round's (the queue is filling), through Conservative Slow Start (CSS: a quarter of the growth)
/// for up to five rounds, back to slow start if the RTT rise was spurious. Without it slow start only ends
/// by losing about a window of packets. The RTT thresholds (4-16 ms) are far above our 1 ms clock tick, so
/// millisecond samples are fine; a LAN path never triggers it.
/// </summary>
internal struct HyStartPlusPlus
{
    /// <summary>RFC 9406 4.3: MIN_RTT_THRESH, MAX_RTT_THRESH, MIN_RTT_DIVISOR, N_RTT_SAMPLE, CSS_GROWTH_DIVISOR, CSS_ROUNDS.</summary>
    public const long MinRttThreshMs = 4;
    public const long MaxRttThreshMs = 16;
    public const int MinRttDivisor = 8;
    public const int NRttSample = 8;
    public const int CssGrowthDivisor = 4;
    public const int CssRounds = 5;

    private bool _done;
    private bool _inCss;
    private SeqNumber _windowEnd;
    private long _lastRoundMinRtt;
    private long _currentRoundMinRtt;
    private int _rttSampleCount;
    private long _cssBaselineMinRtt;
    private int _cssRoundCount;

    public HyStartPlusPlus(SeqNumber sndNxt, bool enabled)
    {
        _done = !enabled;
        _windowEnd = sndNxt;
        _lastRoundMinRtt = long.MaxValue;
        _currentRoundMinRtt = long.MaxValue;
        _cssBaselineMinRtt = long.MaxValue;
    }

    /// <summary>Still watching the initial slow start.</summary>
    public readonly bool Active => !_done;

    /// <summary>In Conservative Slow Start.</summary>
    public readonly bool InCss => _inCss;

    /// <summary>A loss (or ECN) ends HyStart++ for good (RFC 9406 4.2: "exit slow start and CSS").</summary>
    public void End()
    {
        _done = true;
        _inCss = false;
    }

    /// <summary>
    /// RFC 9406 4.2, for one ACK in slow start: returns the cwnd increase for <paramref name="acked"/> newly
    /// acknowledged bytes; sets <paramref name="ssthresh"/> to cwnd when CSS ends in congestion avoidance.
    /// <paramref name="rttSampleMs"/> is this ACK's RTT sample, -1 when it gave none.
    /// </summary>
    public int OnSlowStartAck(int acked, SeqNumber sndUna, SeqNumber sndNxt, long rttSampleMs, ref int ssthresh, int cwnd)
    {
        if (sndUna >= _windowEnd)
        {
            // A round ended: the ACK passed the sequence number that was SND.NXT when it began.
            if (_inCss && ++_cssRoundCount >= CssRounds)
            {
                ssthresh = cwnd; // CSS_ROUNDS done: congestion avoidance
                End();
                return 0;
            }

            _lastRoundMinRtt = _currentRoundMinRtt;
            _currentRoundMinRtt = long.MaxValue;
            _rttSampleCount = 0;
            _windowEnd = sndNxt;
        }

        if (rttSampleMs >= 0)
        {
            _currentRoundMinRtt = Math.Min(_currentRoundMinRtt, rttSampleMs);
            _rttSampleCount++;
        }

        bool enoughSamples = _rttSampleCount >= NRttSample
            && _currentRoundMinRtt != long.MaxValue && _lastRoundMinRtt != long.MaxValue;
        if (!_inCss)
        {
            if (enoughSamples)
            {
                long rttThresh = Math.Clamp(_lastRoundMinRtt / MinRttDivisor, MinRttThreshMs, MaxRttThreshMs);
                if (_currentRoundMinRtt >= _lastRoundMinRtt + rttThresh)
                {
                    _cssBaselineMinRtt = _currentRoundMinRtt;
                    _inCss = true;
                    _cssRoundCount = 0;
                }
            }

            return acked;
        }

        if (enoughSamples && _currentRoundMinRtt < _cssBaselineMinRtt)
        {
            // The RTT rise was spurious: back to slow start.
            _cssBaselineMinRtt = long.MaxValue;
            _inCss = false;
            return acked;
        }

        return acked / CssGrowthDivisor;
    }
}
