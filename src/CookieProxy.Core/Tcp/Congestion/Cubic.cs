namespace CookieProxy.Tcp.Congestion;

/// <summary>
/// CUBIC congestion avoidance (RFC 9438), in bytes on the endpoint's millisecond clock. The window after a
/// reduction grows along W_cubic(t) = C (t - K)^3 + W_max: quickly back towards W_max (concave), flat around
/// it, then probing beyond (convex), independent of the RTT; and never slower than Reno would (W_est, the
/// Reno-friendly region). Slow start and fast recovery stay with the endpoint (RFC 9438 4.10: standard slow
/// start, here with HyStart++; PRR in recovery). A value type: copying it saves the state for undo (4.9).
/// </summary>
internal struct Cubic
{
    /// <summary>RFC 9438 5: C = 0.4 (segments per second cubed).</summary>
    public const double C = 0.4;

    /// <summary>RFC 9438 4.6: beta_cubic = 0.7, the multiplicative decrease.</summary>
    public const double Beta = 0.7;

    /// <summary>RFC 9438 4.3: alpha_cubic = 3 (1 - beta) / (1 + beta), Reno's additive increase at the same average window.</summary>
    public const double AlphaCubic = 3.0 * (1.0 - Beta) / (1.0 + Beta);

    /// <summary>W_max, in bytes: the window just before the last reduction (after fast convergence).</summary>
    private double _wMax;
    /// <summary>K, in seconds: when W_cubic reaches W_max again.</summary>
    private double _k;
    /// <summary>Start of the current congestion avoidance epoch; -1 = the next ACK starts one.</summary>
    private long _epochStartMs;
    /// <summary>W_est, in bytes (RFC 9438 4.3).</summary>
    private double _wEst;
    /// <summary>Fractional bytes of growth not yet added to cwnd.</summary>
    private double _credit;
    /// <summary>RFC 9438 4.8: the first epoch after a timeout starts with K = 0 and W_max = cwnd.</summary>
    private bool _afterTimeout;

    public Cubic()
    {
        _epochStartMs = -1;
    }

    /// <summary>W_max in bytes (diagnostics, tests).</summary>
    public readonly double WMaxBytes => _wMax;

    /// <summary>K in seconds (diagnostics, tests).</summary>
    public readonly double KSeconds => _k;

    /// <summary>
    /// RFC 9438 4.6 and 4.7: a congestion event (fast retransmit, RTO, a repaired tail loss). Remembers W_max,
    /// releasing some of it when the window had not regained the previous W_max (fast convergence), and
    /// returns the new ssthresh = flight_size * beta_cubic (at least 2 SMSS).
    /// </summary>
    public int OnCongestionEvent(int cwnd, int flight, int mss)
    {
        _wMax = cwnd < _wMax ? cwnd * (1.0 + Beta) / 2.0 : cwnd;
        _epochStartMs = -1;
        _credit = 0;
        return Math.Max((int)(flight * Beta), 2 * mss);
    }

    /// <summary>Fast recovery ended: the next ACK in congestion avoidance starts a new epoch (RFC 9438 4.2).</summary>
    public void OnRecoveryEnd() => _epochStartMs = -1;

    /// <summary>RFC 9438 4.8: after a retransmission timeout.</summary>
    public void OnTimeout()
    {
        _epochStartMs = -1;
        _afterTimeout = true;
    }

    /// <summary>RFC 9438 5.8 / Linux CA_EVENT_TX_START: an idle period does not count towards t.</summary>
    public void OnIdle(long idleMs)
    {
        if (_epochStartMs >= 0)
        {
            _epochStartMs += idleMs;
        }
    }

    /// <summary>
    /// RFC 9438 4.2-4.5: the new cwnd after <paramref name="acked"/> bytes were acknowledged in congestion
    /// avoidance, at <paramref name="nowMs"/>, with the smoothed RTT (W_cubic is evaluated at t + RTT).
    /// </summary>
    public int OnCongestionAvoidanceAck(int cwnd, int acked, int mss, long nowMs, long srttMs)
    {
        if (_epochStartMs < 0)
        {
            _epochStartMs = nowMs;
            _wEst = cwnd;
            _credit = 0;
            if (_afterTimeout || _wMax <= cwnd)
            {
                // Past the old maximum already (or after a timeout, RFC 9438 4.8): plateau here and probe upwards.
                _wMax = cwnd;
                _k = 0;
            }
            else
            {
                // RFC 9438 4.2 (2): K = cubic_root((W_max - cwnd_epoch) / C), in segments.
                _k = Math.Cbrt((_wMax - cwnd) / mss / C);
            }

            _afterTimeout = false;
        }

        double t = (nowMs - _epochStartMs) / 1000.0;
        double rtt = Math.Max(srttMs, 0) / 1000.0;

        // RFC 9438 4.3: W_est grows like Reno with alpha_cubic (1 once past W_max).
        double alpha = _wEst < _wMax ? AlphaCubic : 1.0;
        _wEst += alpha * acked * mss / cwnd;

        if (WindowAt(t, mss) < _wEst)
        {
            // Reno-friendly region: cwnd = W_est.
            return Math.Max(cwnd, (int)_wEst);
        }

        // RFC 9438 4.4/4.5: concave or convex region; the target is W_cubic(t + RTT), clamped to [cwnd, 1.5 cwnd],
        // and cwnd moves (target - cwnd) / cwnd per acknowledged segment.
        double target = Math.Clamp(WindowAt(t + rtt, mss), cwnd, 1.5 * cwnd);
        _credit += (target - cwnd) * acked / cwnd;
        int increase = (int)_credit;
        _credit -= increase;
        return cwnd + increase;
    }

    /// <summary>W_cubic(t) in bytes (RFC 9438 4.2 (1)).</summary>
    private readonly double WindowAt(double t, int mss)
    {
        double d = t - _k;
        return (C * d * d * d * mss) + _wMax;
    }
}
