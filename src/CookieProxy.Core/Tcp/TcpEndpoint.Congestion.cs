using CookieProxy.Tcp.Congestion;

namespace CookieProxy.Tcp;

// Congestion control and loss recovery, in the order Linux's tcp_ack runs them:
// - RFC 5681 slow start and congestion avoidance with RFC 3465 byte counting, RFC 6928 initial window,
//   cwnd validation like Linux (tcp_is_cwnd_limited, in the spirit of RFC 7661);
// - the congestion controller: CUBIC (RFC 9438, Congestion/Cubic.cs, the default) or NewReno (RFC 5681 /
//   RFC 6582), with HyStart++ (RFC 9406, Congestion/HyStartPlusPlus.cs) ending the initial slow start;
// - loss detection: RACK-TLP (RFC 8985, .Rack.cs) with SACK; without SACK NewReno's duplicate ACK count and
//   partial ACKs (RFC 6582 3.2, Linux tcp_newreno_mark_lost);
// - fast recovery with Proportional Rate Reduction (RFC 6937) setting cwnd on every ACK;
// - RTO recovery (RFC 5681 3.1 (5), RFC 6298 5; Linux TCP_CA_Loss): every segment not SACKed is lost.
// Spurious reductions are undone in .Reordering.cs.
public sealed partial class TcpEndpoint
{
    /// <summary>cwnd ceiling, far above any window we can use, to keep int arithmetic safe.</summary>
    private const int MaxCwnd = 1 << 30;

    private int _cwnd;
    private int _ssthresh;
    private int _bytesAckedInCa;
    /// <summary>Duplicate ACKs in a row (no SACK: NewReno's loss signal).</summary>
    private int _dupAcks;
    /// <summary>Without SACK: one SMSS per duplicate ACK, the segments known to have left the network (Linux tcp_add_reno_sack).</summary>
    private int _renoSackedBytes;
    /// <summary>Fast recovery (Linux TCP_CA_Recovery): PRR sets cwnd until SND.UNA passes <see cref="_recover"/>.</summary>
    private bool _inRecovery;
    /// <summary>RTO recovery (Linux TCP_CA_Loss): slow start from one segment until SND.UNA passes <see cref="_recover"/>.</summary>
    private bool _inLoss;
    /// <summary>The next lost segment goes out regardless of cwnd (RFC 6675 5 (4.3), RFC 6582 3.2 (5)).</summary>
    private bool _forceRetransmit;
    /// <summary>RFC 6582 "recover" / RFC 6675 RecoveryPoint / Linux high_seq: SND.NXT when the episode began.</summary>
    private SeqNumber _recover;

    // PRR (RFC 6937 3): bytes delivered and sent since recovery began, and RecoverFS.
    private int _prrDelivered;
    private int _prrOut;
    private int _recoverFs;

    private Cubic _cubic;
    private HyStartPlusPlus _hystart;

    // cwnd validation (Linux tcp_cwnd_validate): was the flight limited by cwnd during the last window?
    private bool _isCwndLimited;
    private int _maxFlight;
    private SeqNumber _maxFlightSeq;

    public int CongestionWindow => _cwnd;

    public int SlowStartThreshold => _ssthresh;

    /// <summary>Fast recovery (RFC 6675 / RFC 6582 with PRR) is under way.</summary>
    public bool InRecovery => _inRecovery;

    /// <summary>Recovery after a retransmission timeout is under way.</summary>
    public bool InLossRecovery => _inLoss;

    /// <summary>Times fast recovery was entered.</summary>
    public long FastRecoveries { get; private set; }

    public long SmoothedRttMs => _rtt.SmoothedRttMs;

    public long RtoMs => _rtt.RtoMs;

    /// <summary>The congestion controller this endpoint runs (<see cref="TcpConfig.CongestionControl"/>).</summary>
    public TcpCongestionControl CongestionControl => _config.CongestionControl;

    private bool UsesCubic => _config.CongestionControl == TcpCongestionControl.Cubic;

    private void InitCongestion()
    {
        // RFC 6928 2: IW = min(10*MSS, max(2*MSS, 14600)).
        _cwnd = Math.Min(10 * _effMss, Math.Max(2 * _effMss, 14600));
        _ssthresh = MaxCwnd; // RFC 5681 3.1: "arbitrarily high"
        _recover = _iss;     // RFC 6582 3.2 (1): recover starts at the initial send sequence number
        _dupThresh = MinDupThresh;
        _rxtHigh = _sndUna;
        _highestSacked = _sndUna;
        _maxFlightSeq = _sndUna;
        _cubic = new Cubic();
        _hystart = new HyStartPlusPlus(_sndNxt, _config.HyStartPlusPlus);
    }

    /// <summary>
    /// Linux tcp_fastretrans_alert + tcp_cong_control for one ACK: end an episode SND.UNA has passed, detect
    /// losses, enter fast recovery on the first, then set cwnd (PRR while recovering, growth otherwise).
    /// <paramref name="delivered"/> is RFC 6937's DeliveredData: newly cumulatively acknowledged plus newly
    /// SACKed bytes (one SMSS per duplicate ACK without SACK).
    /// </summary>
    private void OnAckCongestion(int acked, int delivered, long nowMs)
    {
        if (acked > 0)
        {
            _dupAcks = 0;
        }

        if (_inLoss && _sndUna >= _recover)
        {
            // RFC 5681 / RFC 6582 4: everything outstanding at the timeout is acknowledged.
            _inLoss = false;
            RackOnRecoveryExit();
        }

        bool exited = false;
        if (_inRecovery && _sndUna >= _recover)
        {
            ExitRecovery();
            exited = true;
        }

        bool newlyLost = DetectLosses(acked > 0, nowMs);
        if (newlyLost && !_inRecovery && !_inLoss)
        {
            EnterRecovery();
        }

        if (_inRecovery)
        {
            PrrOnAck(delivered, acked > 0, newlyLost);
        }
        else if (acked > 0 && !exited)
        {
            GrowCwnd(acked, nowMs);
        }
    }

    /// <summary>Marks what this ACK shows lost: RACK with SACK (RFC 8985), NewReno without. True if any record became lost.</summary>
    private bool DetectLosses(bool ackAdvanced, long nowMs)
    {
        if (_sackEnabled)
        {
            return RackDetectLoss(nowMs);
        }

        // Linux tcp_newreno_mark_lost: the first unacknowledged segment is lost after DupThresh duplicate ACKs
        // (RFC 5681 3.2, only past "recover": RFC 6582 3.2 (2)), or on a partial ACK in recovery (RFC 6582 3.2 (5)).
        bool trigger = _inRecovery
            ? ackAdvanced && _sndUna < _recover
            : !_inLoss && _dupAcks >= _dupThresh && _sndUna > _recover;
        if (!trigger || _rtx.Count == 0 || _rtx[0].Is(TxFlags.Lost) || _rtx[0].Is(TxFlags.Sacked))
        {
            return false;
        }

        _rtx.MarkLost(0);
        _lostLow = _sndUna;
        _forceRetransmit = true;
        return true;
    }

    /// <summary>A duplicate ACK without SACK: one more segment left the network. Returns the bytes it stands for.</summary>
    private int OnRenoDuplicateAck()
    {
        _dupAcks++;
        // Linux tcp_limit_reno_sacked: never more than the flight minus the hole.
        int room = FlightSize - _effMss - _renoSackedBytes;
        int add = Math.Clamp(room, 0, _effMss);
        _renoSackedBytes += add;
        return add;
    }

    /// <summary>Linux tcp_remove_reno_sacks: a cumulative ACK covers the segments the duplicate ACKs stood for (all but the hole).</summary>
    private void RemoveRenoSacks(int acked)
    {
        if (_renoSackedBytes > 0)
        {
            _renoSackedBytes = Math.Max(_renoSackedBytes - Math.Max(acked - _effMss, 0), 0);
        }
    }

    /// <summary>RFC 6675 5 (4) / RFC 6582 3.2 (2) / RFC 6937 3: a loss was detected; halve (or CUBIC's beta) once per window.</summary>
    private void EnterRecovery()
    {
        FastRecoveries++;
        StartUndoEpisode();
        int flight = FlightSize;
        _ssthresh = SsthreshOnCongestion(flight);
        _recover = _sndNxt;
        _inRecovery = true;
        _prrDelivered = 0;
        _prrOut = 0;
        _recoverFs = Math.Max(flight, _effMss); // RFC 6937 3: RecoverFS = snd.nxt - snd.una
        _bytesAckedInCa = 0;
        TlpReset();
    }

    /// <summary>RFC 6937 3: at the end of recovery cwnd = ssthresh (Linux tcp_end_cwnd_reduction).</summary>
    private void ExitRecovery()
    {
        _inRecovery = false;
        _cwnd = _ssthresh;
        _bytesAckedInCa = 0;
        _renoSackedBytes = 0;
        _dupAcks = 0;
        if (UsesCubic)
        {
            _cubic.OnRecoveryEnd();
        }

        RackOnRecoveryExit();
    }

    /// <summary>
    /// RFC 6937 3 (PRR with the slow start reduction bound): cwnd = pipe + sndcnt, so the recovery sends in
    /// proportion to what is delivered, converging on ssthresh instead of halving in one step (RFC 6675) or
    /// inflating on duplicate ACKs (RFC 6582).
    /// </summary>
    private void PrrOnAck(int delivered, bool unaAdvanced, bool newlyLost)
    {
        if (delivered <= 0)
        {
            return;
        }

        _prrDelivered += delivered;
        int pipe = Pipe;
        long sndcnt;
        if (pipe > _ssthresh)
        {
            // Proportional part: sndcnt = CEIL(prr_delivered * ssthresh / RecoverFS) - prr_out.
            sndcnt = (((long)_prrDelivered * _ssthresh) + _recoverFs - 1) / _recoverFs - _prrOut;
        }
        else
        {
            // PRR-SSRB: grow back towards ssthresh no faster than slow start. Like Linux, the extra SMSS is
            // granted only when the ACK made progress without revealing a new loss.
            long limit = Math.Max((long)_prrDelivered - _prrOut, delivered);
            if (unaAdvanced && !newlyLost)
            {
                limit += _effMss;
            }

            sndcnt = Math.Min(_ssthresh - pipe, limit);
        }

        // The fast retransmit itself always goes (RFC 6937 3: "ensure at least one segment on entering").
        sndcnt = Math.Max(sndcnt, _prrOut == 0 ? _effMss : 0);
        _cwnd = (int)Math.Min(pipe + Math.Max(sndcnt, 0), MaxCwnd);
    }

    /// <summary>New ACKed bytes outside recovery: slow start (HyStart++ may slow or end it) or congestion avoidance.</summary>
    private void GrowCwnd(int acked, long nowMs)
    {
        if (!IsCwndLimited)
        {
            return; // Linux tcp_is_cwnd_limited / RFC 7661: an application-limited window says nothing about the path
        }

        if (_cwnd < _ssthresh)
        {
            // RFC 5681 (2) slow start says cwnd += min(N, SMSS); RFC 3465 2.3 allows L = 2 SMSS per ACK. Like Linux
            // (tcp_slow_start) we add every newly acknowledged byte: with stretch ACKs (GRO on the client, batched
            // receive, ACKs piggybacked on bidirectional data) a per-ACK limit starves slow start. Bursts stay
            // bounded by the ACK clock and rwnd.
            int increase = acked;
            if (_hystart.Active)
            {
                increase = _hystart.OnSlowStartAck(acked, _sndUna, _sndNxt, _lastRttSampleMs, ref _ssthresh, _cwnd);
            }

            _cwnd = (int)Math.Min((long)_cwnd + increase, Math.Max(_ssthresh, _cwnd));
            _cwnd = Math.Min(_cwnd, MaxCwnd);
            return;
        }

        if (UsesCubic)
        {
            // RFC 9438 4.2-4.5: the cubic window, never below what Reno would have (the Reno-friendly region).
            _cwnd = Math.Min(_cubic.OnCongestionAvoidanceAck(_cwnd, acked, _effMss, nowMs, _rtt.SmoothedRttMs), MaxCwnd);
            return;
        }

        // RFC 5681 (3) congestion avoidance, byte counting (RFC 3465 2.1): one SMSS per cwnd acknowledged.
        _bytesAckedInCa += acked;
        if (_bytesAckedInCa >= _cwnd)
        {
            _bytesAckedInCa -= _cwnd;
            _cwnd = Math.Min(_cwnd + _effMss, MaxCwnd);
        }
    }

    /// <summary>Linux tcp_is_cwnd_limited: cwnd limited the last window, or slow start has not doubled the largest flight yet.</summary>
    private bool IsCwndLimited => _isCwndLimited || (_cwnd < _ssthresh && _cwnd < 2 * _maxFlight);

    /// <summary>Linux tcp_cwnd_validate, after each round of sending.</summary>
    private void UpdateCwndLimited()
    {
        int flight = FlightSize;
        if (_sndUna >= _maxFlightSeq || flight > _maxFlight || _cwndLimitedNow)
        {
            _maxFlight = flight;
            _maxFlightSeq = _sndNxt;
            _isCwndLimited = _cwndLimitedNow;
        }

        _cwndLimitedNow = false;
    }

    /// <summary>The new ssthresh after a congestion signal, from the flight at that moment (RFC 5681 (4), RFC 9438 4.6).</summary>
    private int SsthreshOnCongestion(int flight)
    {
        _hystart.End(); // RFC 9406 4.3: HyStart++ only for the initial slow start
        if (UsesCubic)
        {
            return _cubic.OnCongestionEvent(_cwnd, flight, _effMss);
        }

        return Math.Max(flight / 2, 2 * _effMss);
    }

    /// <summary>RFC 9438 5.8 (Linux bictcp_cwnd_event CA_EVENT_TX_START): idle time does not count as growth time.</summary>
    private void OnTransmitAfterIdle(long idleMs)
    {
        if (UsesCubic && idleMs > 0)
        {
            _cubic.OnIdle(idleMs);
        }
    }

    /// <summary>
    /// RFC 5681 3.1 (4)/(5), RFC 6298 5.5-5.7 and Linux tcp_enter_loss after an RTO: one segment of cwnd, every
    /// segment not SACKed is lost and goes again in order as slow start allows (RFC 6675 5.1: SACKed ones are
    /// skipped). A timeout inside fast recovery keeps that episode's ssthresh and undo state.
    /// </summary>
    private void OnRetransmitTimeoutCongestion(bool firstTimeout)
    {
        if (firstTimeout && !(_inRecovery && _recover > _sndUna))
        {
            StartUndoEpisode();
            _ssthresh = SsthreshOnCongestion(FlightSize);
        }

        if (UsesCubic)
        {
            _cubic.OnTimeout();
        }

        _cwnd = _effMss;
        _bytesAckedInCa = 0;
        _dupAcks = 0;
        _renoSackedBytes = 0;
        _inRecovery = false;
        _inLoss = true;
        _forceRetransmit = false;
        _recover = _sndNxt;
        MarkAllLost();
        TlpReset();
        _rackTimerAtMs = long.MaxValue;
    }

    /// <summary>Every record not SACKed is lost (its retransmission, if any, too).</summary>
    private void MarkAllLost()
    {
        if (_rtx.Count > 0 && _rtx[0].Is(TxFlags.Sacked))
        {
            // Linux tcp_timeout_mark_lost: SACKed data at SND.UNA after a timeout means the client reneged (RFC 2018 8).
            ForgetSacks();
        }

        for (int i = 0; i < _rtx.Count; i++)
        {
            _rtx.MarkLost(i);
        }

        _lostLow = _sndUna;
    }

    /// <summary>RFC 2018 8: the client may have discarded SACKed data: forget every SACK.</summary>
    private void ForgetSacks()
    {
        _rtx.ClearSacked();
        _sackCacheCount = 0;
        _highestSacked = _sndUna;
    }
}
