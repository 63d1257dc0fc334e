using CookieProxy.Wire;

namespace CookieProxy.Tcp;

// Congestion control: RFC 5681 slow start, congestion avoidance, fast retransmit; RFC 6928 initial window;
// RFC 6582 NewReno fast recovery (no SACK); RFC 6675 SACK-based loss recovery (pipe, NextSeg, IsLost).
// DupThresh adapts to measured reordering (.Reordering.cs).
public sealed partial class TcpEndpoint
{

    /// <summary>cwnd ceiling, far above any window we can use, to keep int arithmetic safe.</summary>
    private const int MaxCwnd = 1 << 30;

    private int _cwnd;
    private int _ssthresh;
    private int _bytesAckedInCa;
    private int _dupAcks;
    private bool _inRecovery;
    private bool _fastRetransmitPending;
    /// <summary>RFC 6582 "recover" / RFC 6675 RecoveryPoint.</summary>
    private SeqNumber _recover;
    /// <summary>RFC 6675 HighRxt, kept as the end (exclusive) of the highest retransmission.</summary>
    private SeqNumber _highRxt;
    private SeqRangeSet _scoreboard = null!;

    public int CongestionWindow => _cwnd;

    public int SlowStartThreshold => _ssthresh;

    public bool InRecovery => _inRecovery;

    /// <summary>Times fast retransmit / loss recovery was entered.</summary>
    public long FastRecoveries { get; private set; }

    public long SmoothedRttMs => _rtt.SmoothedRttMs;

    public long RtoMs => _rtt.RtoMs;

    private void InitCongestion()
    {
        // RFC 6928 2: IW = min(10*MSS, max(2*MSS, 14600)).
        _cwnd = Math.Min(10 * _effMss, Math.Max(2 * _effMss, 14600));
        _ssthresh = MaxCwnd; // RFC 5681 3.1: "arbitrarily high"
        _recover = _iss;     // RFC 6582 3.2 (1): recover starts at the initial send sequence number
        _highRxt = _sndUna;
        _scoreboard = new SeqRangeSet(_sackEnabled ? 32 : 1);
        _dupThresh = MinDupThresh;
        _rxtHigh = _sndUna;
        _highestSacked = _sndUna;
    }

    /// <summary>An ACK advanced SND.UNA by <paramref name="acked"/> bytes.</summary>
    private void OnNewAck(int acked)
    {
        _dupAcks = 0;
        if (_inRecovery)
        {
            if (_sndUna >= _recover)
            {
                // Full ACK: leave recovery. RFC 6582 3.2 (3) deflates cwnd to min(ssthresh, FlightSize + SMSS);
                // RFC 6675 5 simply continues from cwnd = ssthresh.
                _inRecovery = false;
                _cwnd = _sackEnabled
                    ? _ssthresh
                    : Math.Min(_ssthresh, Math.Max(_sndMax - _sndUna, _effMss) + _effMss);
                _bytesAckedInCa = 0;
            }
            else if (!_sackEnabled)
            {
                // RFC 6582 3.2 (5) partial ACK: retransmit the next hole, deflate cwnd by the amount acked,
                // add back one SMSS if that was at least one SMSS.
                _fastRetransmitPending = true;
                _cwnd = Math.Max(_cwnd - acked + (acked >= _effMss ? _effMss : 0), _effMss);
            }

            return;
        }

        if (_cwnd < _ssthresh)
        {
            // RFC 5681 (2) slow start says cwnd += min(N, SMSS). Like Linux (tcp_slow_start) we add every newly
            // acknowledged byte instead: with stretch ACKs (batched receive, ACKs piggybacked on bidirectional
            // data) one SMSS per ACK starves slow start. Bursts stay bounded by the ACK clock and rwnd.
            _cwnd = Math.Min(_cwnd + acked, MaxCwnd);
        }
        else
        {
            // RFC 5681 (3) congestion avoidance, byte counting (RFC 3465): one SMSS per cwnd acknowledged.
            _bytesAckedInCa += acked;
            if (_bytesAckedInCa >= _cwnd)
            {
                _bytesAckedInCa -= _cwnd;
                _cwnd = Math.Min(_cwnd + _effMss, MaxCwnd);
            }
        }
    }

    private void OnDuplicateAck()
    {
        _dupAcks++;
        if (_inRecovery)
        {
            if (!_sackEnabled)
            {
                _cwnd = Math.Min(_cwnd + _effMss, MaxCwnd); // RFC 6582 3.2 (4): inflate per extra dupack
            }

            return;
        }

        // RFC 6582 3.2 (2): only when the cumulative ACK is past "recover" (no second recovery for one window).
        // RFC 6675 5 (3): with SACK also when IsLost(HighACK + 1).
        bool trigger = _dupAcks >= _dupThresh || (_sackEnabled && IsLostBoundaryAbove(_sndUna));
        if (trigger && _sndUna > _recover)
        {
            EnterRecovery();
        }
    }

    private void EnterRecovery()
    {
        FastRecoveries++;
        StartUndoEpisode();
        int flightSize = _sndMax - _sndUna;
        _ssthresh = Math.Max(flightSize / 2, 2 * _effMss); // RFC 5681 (4)
        _recover = _sndMax;
        _highRxt = _sndUna;
        _inRecovery = true;
        _fastRetransmitPending = true;
        _rttTiming = false;
        // RFC 6582 3.2 (2): cwnd = ssthresh + 3*SMSS; RFC 6675 5 (4.2): cwnd = ssthresh (pipe does the rest).
        _cwnd = _sackEnabled ? _ssthresh : _ssthresh + (3 * _effMss);
        _bytesAckedInCa = 0;
    }

    /// <summary>RFC 5681 (4)/(5), RFC 6582 4 after an RTO: loss window, go-back-N from SND.UNA.</summary>
    private void OnRetransmitTimeoutCongestion(bool firstTimeout)
    {
        if (firstTimeout)
        {
            if (!_inRecovery)
            {
                StartUndoEpisode(); // like Linux tcp_enter_loss: an RTO inside recovery keeps that episode's undo state
                if (_sackEnabled && TotalSacked() >= MinDupThresh * _effMss)
                {
                    // Linux tcp_enter_loss: SACKs arrived yet the raised DupThresh kept recovery from starting,
                    // so the reordering estimate was too high; fall back to 3.
                    _dupThresh = MinDupThresh;
                }
            }

            _ssthresh = Math.Max((_sndMax - _sndUna) / 2, 2 * _effMss);
        }

        _cwnd = _effMss;
        _bytesAckedInCa = 0;
        _dupAcks = 0;
        _inRecovery = false;
        _fastRetransmitPending = false;
        _recover = _sndMax;
        _highRxt = _sndUna;
        _sndNxt = _sndUna;
        _rttTiming = false;
    }

    /// <summary>RFC 6675 4 IsLost for a hole with <paramref name="sackedAbove"/> SACKed bytes above it.</summary>
    private bool HoleBelowIsLost(int sackedAbove) => sackedAbove > (_dupThresh - 1) * _effMss;

    /// <summary>True when more than (DupThresh - 1) * SMSS bytes are SACKed above <paramref name="seq"/>.</summary>
    private bool IsLostBoundaryAbove(SeqNumber seq)
    {
        int above = 0;
        for (int i = _scoreboard.Count - 1; i >= 0 && _scoreboard.Left(i) > seq; i--)
        {
            above += _scoreboard.Right(i) - _scoreboard.Left(i);
        }

        return HoleBelowIsLost(above);
    }

    private int TotalSacked()
    {
        int total = 0;
        for (int i = 0; i < _scoreboard.Count; i++)
        {
            total += _scoreboard.Right(i) - _scoreboard.Left(i);
        }

        return total;
    }

    /// <summary>
    /// RFC 6675 4 SetPipe(): unSACKed octets not deemed lost, plus octets retransmitted (below HighRxt).
    /// Computed per hole between scoreboard ranges rather than per octet.
    /// </summary>
    private int ComputePipe()
    {
        int pipe = 0;
        int sackedAbove = TotalSacked();
        int n = _scoreboard.Count;
        for (int i = 0; i <= n; i++)
        {
            SeqNumber holeStart = i == 0 ? _sndUna : _scoreboard.Right(i - 1);
            SeqNumber holeEnd = i < n ? _scoreboard.Left(i) : _sndMax;
            if (holeEnd > holeStart)
            {
                int len = holeEnd - holeStart;
                if (i == n || !HoleBelowIsLost(sackedAbove))
                {
                    pipe += len;
                }

                if (_highRxt > holeStart)
                {
                    pipe += Math.Min(_highRxt - holeStart, len);
                }
            }

            if (i < n)
            {
                sackedAbove -= _scoreboard.Right(i) - _scoreboard.Left(i);
            }
        }

        return pipe;
    }

    /// <summary>
    /// RFC 6675 4 NextSeg() rules 1 and 3: the first unSACKed, not yet retransmitted sequence number below the
    /// highest SACKed one (rule 1 additionally requires IsLost). Returns false when there is none.
    /// </summary>
    private bool TryNextHole(bool requireLost, out SeqNumber seq, out int maxLen)
    {
        SeqNumber from = SeqNumber.Max(_sndUna, _highRxt);
        int sackedAbove = TotalSacked();
        for (int i = 0; i < _scoreboard.Count; i++)
        {
            SeqNumber holeStart = i == 0 ? _sndUna : _scoreboard.Right(i - 1);
            SeqNumber holeEnd = _scoreboard.Left(i);
            if (holeEnd > from && holeEnd > holeStart)
            {
                if (requireLost && !HoleBelowIsLost(sackedAbove))
                {
                    break; // holes further right have even less SACKed above them
                }

                seq = SeqNumber.Max(holeStart, from);
                maxLen = holeEnd - seq;
                return true;
            }

            sackedAbove -= _scoreboard.Right(i) - _scoreboard.Left(i);
        }

        seq = default;
        maxLen = 0;
        return false;
    }

    /// <summary>RFC 6675 5 (C): while cwnd - pipe >= 1 SMSS, send NextSeg().</summary>
    private bool SendSackRecovery<TSink>(ref TSink sink, long nowMs) where TSink : struct, ITcpSegmentSink, allows ref struct
    {
        bool sent = false;
        int mss = _effMss - SackOptionBytes;
        if (_fastRetransmitPending)
        {
            // RFC 6675 5 (4.3): retransmit the first segment presumed lost, regardless of cwnd.
            _fastRetransmitPending = false;
            int first = _scoreboard.Count > 0 ? Math.Min(mss, _scoreboard.Left(0) - _sndUna) : mss;
            SeqNumber end = EmitSegment(ref sink, _sndUna, first, nowMs);
            _highRxt = SeqNumber.Max(_highRxt, end);
            sent = true;
        }

        while (_cwnd - ComputePipe() >= _effMss)
        {
            if (TryNextHole(requireLost: true, out SeqNumber seq, out int maxLen))
            {
                _highRxt = EmitSegment(ref sink, seq, Math.Min(mss, maxLen), nowMs); // rule 1
            }
            else if (TryPlanNewSegment(out int len))
            {
                _sndNxt = EmitSegment(ref sink, _sndNxt, len, nowMs); // rule 2: new data
            }
            else if (TryNextHole(requireLost: false, out seq, out maxLen))
            {
                _highRxt = EmitSegment(ref sink, seq, Math.Min(mss, maxLen), nowMs); // rule 3
            }
            else
            {
                break;
            }

            sent = true;
        }

        return sent;
    }
}
