using CookieProxy.Wire;

namespace CookieProxy.Tcp;

// RACK-TLP (RFC 8985), time-based loss detection for SACK connections, the way Linux does it
// (tcp_recovery.c, tcp_send_loss_probe):
// - RACK: a segment is lost once a segment sent after it was delivered and a reordering window has passed
//   since it left: xmit_ts + RACK.rtt + reo_wnd <= now (6.2 step 5). This finds lost retransmissions too,
//   which counting duplicate ACKs (RFC 6675) cannot. The window is min_RTT / 4, scaled up by D-SACK rounds
//   (6.2 step 4), zero when no reordering was ever seen and DupThresh segments are SACKed (the classic rule).
// - Our clock ticks in milliseconds, Linux's RACK in microseconds. At LAN round trips (well below 1 ms) a
//   window of min_RTT / 4 rounds to zero, so (a) the window is never below one tick once it is not zero,
//   and (b) a segment is also lost by count: an original with DupThresh segments SACKed above it (RFC 6675
//   IsLost), a retransmission once DupThresh later transmissions went out and one of them was delivered
//   (QUIC's packet threshold, RFC 9002 6.1.1), DupThresh being the reordering degree measured on the
//   connection (.Reordering.cs). (b) is what finds losses quickly when a whole round trip is shorter than
//   one tick; (a) keeps reordering below a tick from looking like loss.
// - TLP: when the ACKs stop with data in flight (a lost tail has no later segment to reveal it), a probe
//   after PTO = 2 SRTT sends new data or the last segment again, so its ACK or SACK lets RACK see the loss
//   instead of waiting for the RTO (7.2-7.4).
public sealed partial class TcpEndpoint
{
    /// <summary>Linux tcp_min_rtt_wlen: the minimum RTT is remembered for 5 minutes.</summary>
    private const long MinRttWindowMs = 300_000;

    /// <summary>RFC 8985 6.2 step 4: rounds a D-SACK-widened window persists (TCP_RACK_RECOVERY_THRESH).</summary>
    private const int ReoWndPersistRounds = 16;

    /// <summary>Linux caps reo_wnd_steps at 0xFF; the window is also never above SRTT.</summary>
    private const int MaxReoWndSteps = 255;

    /// <summary>The smallest non-zero reordering window: one tick of our millisecond clock (see above).</summary>
    private const long MinReoWndMs = 1;

    /// <summary>RFC 8985 7.2 WCDelAckT: a lone segment's ACK may be delayed this long by the client.</summary>
    private const long WorstCaseDelayedAckMs = 200;

    /// <summary>Linux TCP_TIMEOUT_MIN (2 jiffies): the PTO never comes sooner than this after 2 SRTT.</summary>
    private const long MinProbeSlackMs = 2;

    private long _minRttMs = long.MaxValue;
    private long _minRttStampMs;
    /// <summary>This ACK's RTT sample for HyStart++ (-1: none).</summary>
    private long _lastRttSampleMs = -1;

    // RACK state (RFC 8985 6.1): the most recently sent delivered segment and its RTT.
    private long _rackXmitNumber = -1;
    private long _rackXmitMs;
    private long _rackRttMs;
    private bool _reorderingSeen;
    private int _reoWndSteps = 1;
    private int _reoWndPersist;
    private bool _dsackRoundValid;
    private SeqNumber _dsackRoundEnd;
    /// <summary>RACK's reordering timer (6.3); long.MaxValue when not armed.</summary>
    private long _rackTimerAtMs = long.MaxValue;

    // TLP state (RFC 8985 7.1).
    private bool _tlpPending;
    private bool _tlpOutstanding;
    private SeqNumber _tlpEndSeq;
    private bool _tlpIsRetrans;

    /// <summary>Tail loss probes sent (RFC 8985 7.3).</summary>
    public long LossProbes { get; private set; }

    /// <summary>Probes whose retransmission repaired a loss (RFC 8985 7.4.2).</summary>
    public long LossProbeRecoveries { get; private set; }

    /// <summary>Segments RACK marked lost (each may be retransmitted once per marking).</summary>
    public long RackMarkedLost { get; private set; }

    /// <summary>The smallest RTT measured (long.MaxValue before the first sample).</summary>
    public long MinRttMs => _minRttMs;

    /// <summary>RACK's current reordering window in milliseconds.</summary>
    public long ReorderingWindowMs => RackReoWnd();

    /// <summary>A windowed minimum RTT (Linux tcp_update_rtt_min, with a single sample window).</summary>
    private void UpdateMinRtt(long rttMs, long nowMs)
    {
        if (rttMs <= _minRttMs || nowMs - _minRttStampMs > MinRttWindowMs)
        {
            _minRttMs = rttMs;
            _minRttStampMs = nowMs;
        }
    }

    /// <summary>
    /// RFC 8985 6.2 steps 2-4 for the segments this ACK delivered: advance RACK to the most recently sent one
    /// unless its delivery is ambiguous (a retransmission whose ACK echoes an older timestamp, or arriving
    /// faster than the minimum RTT: the original was delivered); note reordering; widen the window on D-SACK.
    /// </summary>
    private void RackOnDelivered(in TcpRepr seg, in Delivery delivery, long nowMs)
    {
        if (delivery.NewestXmitNumber >= 0)
        {
            long rtt = nowMs - delivery.NewestXmitMs;
            // Step 2's TSecr test only means something when the cumulative ACK covered the retransmission: an ACK
            // for a segment above a hole echoes the TSval of the last in-sequence segment (RFC 7323 4.3 (2)),
            // older than any retransmission above it. Judged by TSecr, a SACKed tail loss probe would always be
            // "ambiguous", RACK would never see the holes below it, and the tail would wait for the RTO; for
            // SACKed retransmissions the min_RTT test alone decides, like Linux tcp_rack_advance.
            bool tsSaysOriginal = !delivery.NewestSacked && _tsEnabled && seg.Options.HasTimestamp
                && seg.Options.TsEcr != 0 && unchecked((int)(seg.Options.TsEcr - CurrentTsVal(delivery.NewestXmitMs))) < 0;
            bool ambiguous = delivery.NewestEverRetrans
                && (tsSaysOriginal || rtt < (_minRttMs == long.MaxValue ? 0 : _minRttMs));
            if (!ambiguous)
            {
                _rackRttMs = rtt;
                if (delivery.NewestXmitNumber > _rackXmitNumber)
                {
                    _rackXmitNumber = delivery.NewestXmitNumber;
                    _rackXmitMs = delivery.NewestXmitMs;
                }
            }
        }

        if (delivery.Reordered)
        {
            // Step 3: an original arrived below data SACKed before it.
            NoteReordering(delivery.ReorderedLow, delivery.PriorFack);
        }

        // Step 4: at most one widening per round trip of D-SACKs.
        if (_dsackRoundValid && _sndUna >= _dsackRoundEnd)
        {
            _dsackRoundValid = false;
        }

        if (delivery.Dsack && !_dsackRoundValid)
        {
            _dsackRoundValid = true;
            _dsackRoundEnd = _sndNxt;
            _reoWndSteps = Math.Min(_reoWndSteps + 1, MaxReoWndSteps);
            _reoWndPersist = ReoWndPersistRounds;
        }
    }

    /// <summary>RFC 8985 6.2 step 4: after 16 recoveries without D-SACK the window goes back to min_RTT / 4.</summary>
    private void RackOnRecoveryExit()
    {
        if (_reoWndPersist > 0 && --_reoWndPersist == 0)
        {
            _reoWndSteps = 1;
        }
    }

    /// <summary>RFC 8985 6.2 step 4 (Linux tcp_rack_reo_wnd), never below one clock tick unless zero.</summary>
    private long RackReoWnd()
    {
        if (!_reorderingSeen)
        {
            // No reordering seen: be aggressive in recovery and once DupThresh segments are SACKed.
            if (_inRecovery || _inLoss || _rtx.SackedBytes >= _dupThresh * _effMss)
            {
                return 0;
            }
        }

        long minRtt = _minRttMs == long.MaxValue ? 0 : _minRttMs;
        long window = Math.Min(minRtt / 4 * _reoWndSteps, _rtt.SmoothedRttMs);
        return Math.Max(window, MinReoWndMs);
    }

    /// <summary>
    /// RFC 8985 6.2 step 5 (Linux tcp_rack_detect_loss): marks lost every segment sent before RACK's that is
    /// neither delivered nor already waiting for a retransmission, once its reordering window passed or
    /// DupThresh later transmissions went out; arms the reordering timer for the rest. True if any was marked.
    /// </summary>
    private bool RackDetectLoss(long nowMs)
    {
        _rackTimerAtMs = long.MaxValue;
        if (_rackXmitNumber < 0 || _rtx.Count == 0)
        {
            return false;
        }

        long reoWnd = RackReoWnd();
        long timeout = 0;
        bool marked = false;
        int count = _rtx.Count;
        int sackedAbove = _rtx.SackedBytes;
        int lostAbove = (_dupThresh - 1) * _effMss;
        for (int i = 0; i < count; i++)
        {
            ref TxRecord r = ref _rtx[i];
            if (r.Is(TxFlags.Sacked))
            {
                sackedAbove -= r.Length;
                continue;
            }

            if (r.XmitNumber > _rackXmitNumber)
            {
                // Records above an original sent after RACK's were all sent later still: stop. A retransmission
                // sent later says nothing about the records behind it.
                if (!r.Is(TxFlags.EverRetrans))
                {
                    break;
                }

                continue;
            }

            if (RetransmitQueue.NeedsRetransmission(in r))
            {
                continue;
            }

            // The packet threshold: an original with more than DupThresh - 1 segments SACKed above it (RFC 6675 4
            // IsLost); a retransmission once DupThresh later transmissions went out and one was delivered (RFC
            // 9002 6.1.1: SACKed data above a retransmission was sent before it and says nothing).
            bool countLost = r.Is(TxFlags.EverRetrans)
                ? _rackXmitNumber - r.XmitNumber >= _dupThresh
                : sackedAbove > lostAbove;
            long remaining = r.XmitMs + _rackRttMs + reoWnd - nowMs;
            if (remaining <= 0 || countLost)
            {
                _rtx.MarkLost(i);
                RackMarkedLost++;
                marked = true;
                if (r.Start < _lostLow)
                {
                    _lostLow = r.Start;
                }
            }
            else
            {
                timeout = Math.Max(timeout, remaining);
            }
        }

        if (timeout > 0)
        {
            _rackTimerAtMs = nowMs + timeout; // RFC 8985 6.3
        }

        return marked;
    }

    /// <summary>RFC 8985 6.3 (Linux tcp_rack_reo_timeout): the window of a suspected segment passed.</summary>
    private void OnRackTimeout(long nowMs)
    {
        if (RackDetectLoss(nowMs) && !_inRecovery && !_inLoss)
        {
            EnterRecovery();
            PrrOnAck(_effMss, unaAdvanced: false, newlyLost: true); // Linux: tcp_cwnd_reduction(sk, 1, ...)
        }
    }

    /// <summary>RFC 8985 7.2: a probe may be scheduled (SACK, data in flight, no recovery, no probe outstanding).</summary>
    private bool TlpAllowed => _sackEnabled && !_tlpOutstanding && !_inRecovery && !_inLoss && _sndNxt > _sndUna
        && _state is not (TcpState.TimeWait or TcpState.Closed);

    /// <summary>RFC 8985 7.2 (Linux tcp_schedule_loss_probe): PTO = 2 SRTT, plus the worst-case delayed ACK for a lone segment.</summary>
    private long ProbeTimeoutMs()
    {
        if (!_rtt.HasSample)
        {
            return _config.InitialRtoMs;
        }

        long pto = 2 * _rtt.SmoothedRttMs;
        pto += FlightSize <= _effMss ? WorstCaseDelayedAckMs : MinProbeSlackMs;
        return pto;
    }

    /// <summary>Arms the loss probe, never later than the RTO (RFC 8985 7.2: PTO = min(PTO, RTO remaining)).</summary>
    private void ScheduleLossProbe(long nowMs)
    {
        _timer.Set(TcpTimerKind.LossProbe, Math.Min(nowMs + ProbeTimeoutMs(), _rtoAtMs));
    }

    /// <summary>The PTO fired: Dispatch sends the probe.</summary>
    private void OnLossProbeTimeout()
    {
        _tlpPending = true;
        _timer.Set(TcpTimerKind.Retransmit, _rtoAtMs);
    }

    /// <summary>
    /// RFC 8985 7.3 (Linux tcp_send_loss_probe): one segment of new data if the window allows (ignoring cwnd),
    /// else the highest-sequence segment not yet SACKed again; then the RTO is armed afresh.
    /// </summary>
    private bool SendLossProbe<TSink>(ref TSink sink, long nowMs) where TSink : struct, ITcpSegmentSink, allows ref struct
    {
        _tlpPending = false;
        if (!TlpAllowed)
        {
            return false;
        }

        if (TryPlanNewSegment(ignoreCwnd: true, out int len))
        {
            EmitNewData(ref sink, Math.Min(len, _effMss - SackOptionBytes), nowMs);
            _tlpIsRetrans = false;
        }
        else
        {
            int last = _rtx.Count - 1;
            while (last >= 0 && _rtx[last].Is(TxFlags.Sacked))
            {
                last--;
            }

            if (last < 0)
            {
                return false;
            }

            RetransmitRecord(ref sink, last, nowMs, isLossProbe: true);
            _tlpIsRetrans = true;
        }

        _tlpOutstanding = true;
        _tlpEndSeq = _sndNxt;
        LossProbes++;
        SetRetransmitTimer(nowMs + _rtt.RtoMs);
        return true;
    }

    /// <summary>
    /// RFC 8985 7.4 (Linux tcp_process_tlp_ack): once the ACK reaches the probe, decide whether it repaired a
    /// loss (then reduce cwnd like any loss, once) or was unnecessary (a D-SACK for it, or a plain duplicate ACK).
    /// </summary>
    private void ProcessTlpAck(in TcpRepr seg, SeqNumber ack, bool ackAdvanced, bool dsack, bool newlySacked)
    {
        _ = seg;
        if (!_tlpOutstanding || ack < _tlpEndSeq)
        {
            return;
        }

        if (!_tlpIsRetrans)
        {
            _tlpOutstanding = false; // a probe of new data: RACK finds any loss from its ACK
        }
        else if (dsack)
        {
            _tlpOutstanding = false; // both the original and the probe arrived: no loss
        }
        else if (ack > _tlpEndSeq)
        {
            // The probe repaired a loss: the congestion response is due (Linux enters CWR and leaves it at once).
            LossProbeRecoveries++;
            _ssthresh = SsthreshOnCongestion(Math.Max(FlightSize, _cwnd));
            _cwnd = Math.Min(_cwnd, _ssthresh);
            _tlpOutstanding = false;
        }
        else if (!ackAdvanced && !newlySacked)
        {
            _tlpOutstanding = false; // a pure duplicate ACK: original and probe both arrived
        }
    }

    /// <summary>A recovery or timeout supersedes any probe (Linux clears tlp_high_seq there).</summary>
    private void TlpReset()
    {
        _tlpPending = false;
        _tlpOutstanding = false;
        if (_timer.Kind == TcpTimerKind.LossProbe)
        {
            _timer.Set(TcpTimerKind.Retransmit, _rtoAtMs); // no probe during recovery: the RTO stays
        }
    }
}
