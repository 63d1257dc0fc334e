namespace CookieProxy.Tcp;

/// <summary>
/// Retransmission timeout per RFC 6298: SRTT/RTTVAR smoothing (2.2, 2.3), clamping to [MinRto, MaxRto]
/// (2.4, 2.5) and exponential backoff (5.5). Integer milliseconds scaled by 8 (SRTT) and 4 (RTTVAR),
/// as in Jacobson's original code and Linux, so there is no floating point.
/// </summary>
internal struct RttEstimator
{
    private const int ClockGranularityMs = 1; // G in RFC 6298 (2.2): our clock ticks in milliseconds

    private long _srtt8;
    private long _rttvar4;
    private long _rto;
    private long _minRto;
    private long _maxRto;

    public RttEstimator(long initialRto, long minRto, long maxRto)
    {
        _minRto = minRto;
        _maxRto = maxRto;
        _rto = Math.Clamp(initialRto, minRto, maxRto); // RFC 6298 (2.1)
    }

    public bool HasSample { get; private set; }

    public readonly long RtoMs => _rto;

    public readonly long SmoothedRttMs => _srtt8 >> 3;

    public readonly long RttVarMs => _rttvar4 >> 2;

    public void Sample(long rttMs)
    {
        rttMs = Math.Max(rttMs, 0);
        if (!HasSample)
        {
            // RFC 6298 (2.2): SRTT <- R, RTTVAR <- R/2
            _srtt8 = rttMs << 3;
            _rttvar4 = rttMs << 1;
            HasSample = true;
        }
        else
        {
            // RFC 6298 (2.3): RTTVAR <- 3/4 RTTVAR + 1/4 |SRTT - R'|, SRTT <- 7/8 SRTT + 1/8 R'
            long err = rttMs - (_srtt8 >> 3);
            _srtt8 += err;
            _rttvar4 += Math.Abs(err) - (_rttvar4 >> 2);
        }

        // RFC 6298 (2.3)-(2.5): RTO <- SRTT + max(G, 4 RTTVAR), clamped. A fresh sample also ends any backoff.
        long rto = (_srtt8 >> 3) + Math.Max(ClockGranularityMs, _rttvar4);
        _rto = Math.Clamp(rto, _minRto, _maxRto);
    }

    /// <summary>RFC 6298 (5.5): RTO <- RTO * 2, bounded by MaxRto.</summary>
    public void Backoff() => _rto = Math.Min(_rto * 2, _maxRto);
}
