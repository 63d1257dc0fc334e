using CookieProxy.Wire;

namespace CookieProxy.Tcp;

/// <summary>
/// The client-facing half of the SYN-cookie proxy: a sans-IO, clock-free TCP endpoint that starts in
/// ESTABLISHED right after the cookie ACK (the SYN / SYN+ACK exchange happened statelessly, so ISS is
/// the cookie and IRS the client's ISN). Segments come in through <see cref="Process"/>, go out through
/// <see cref="Dispatch{TSink}"/>; the host passes the time in and asks <see cref="NextDeadlineMs"/> when to
/// come back.
///
/// RFCs implemented: RFC 9293 (TCP), RFC 5681 (congestion control), RFC 6928 (IW10), RFC 3465 (byte
/// counting), RFC 9438 (CUBIC, the default) and RFC 6582 (NewReno), RFC 9406 (HyStart++), RFC 8985
/// (RACK-TLP loss detection), RFC 6937 (PRR), RFC 2018 + RFC 6675 (SACK and SACK loss recovery), RFC 6298
/// (RTO), RFC 7323 (window scale, timestamps, PAWS), RFC 5961 (blind in-window attacks), RFC 1122 4.2.3.6 /
/// RFC 9293 3.8.4 (keep-alive), RFC 2883 (D-SACK, both sides), RFC 3708 + RFC 3522 + RFC 4015 (spurious
/// retransmission detection and undo) with a Linux-style adaptive reordering threshold.
///
/// Files: this one holds state, the segment classifier and the state machine switch;
/// <c>.Receive.cs</c> receive sequence space, reassembly, ACK/window generation (delayed and quick ACKs);
/// <c>.Send.cs</c> send buffer, ACK processing, segment emission; <c>.Congestion.cs</c> cwnd, fast recovery
/// with PRR, RTO recovery; <c>.Rack.cs</c> RACK-TLP; <c>.Reordering.cs</c> D-SACK, undo and DupThresh;
/// <c>.Timers.cs</c> RTO, loss probe, persist, delayed ACK, TIME-WAIT, idle and keep-alive;
/// <c>.Buffers.cs</c> when the rings go back to the pool; <c>RetransmitQueue.cs</c> the per-segment send
/// records; <c>Congestion/</c> CUBIC and HyStart++.
/// </summary>
public sealed partial class TcpEndpoint
{
    /// <summary>RFC 5961 7: challenge ACKs are rate limited (per endpoint here; Linux limits globally).</summary>
    public const int ChallengeAckLimitPerSecond = 10;

    /// <summary>Minimum spacing of ACKs answering out-of-window pure ACKs (Linux tcp_invalid_ratelimit: 500 ms).</summary>
    public const long OutOfWindowAckIntervalMs = 500;

    private readonly TcpConfig _config;
    /// <summary>Where the rings' arrays come from and go back to (null: allocated, left to the GC).</summary>
    private readonly RingBufferPool? _bufferPool;
    private readonly long _createdMs;
    private TcpState _state;
    private TcpCloseReason _closeReason;
    private bool _rstPending;
    private long _lastRecvMs;
    private long _lastOutOfWindowAckMs = long.MinValue / 2;

    // Challenge-ACK rate limiter (RFC 5961 7).
    private long _challengeWindowStartMs;
    private int _challengeAcksInWindow;

    /// <summary>Starts an endpoint in ESTABLISHED from what the cookie ACK told us.</summary>
    /// <param name="bufferPool">
    /// Rents the receive and send rings from this pool (each ring whose configured size is the pool's array
    /// length; another size is allocated) until <see cref="ReleaseBuffers"/>. Null: both are allocated.
    /// </param>
    public TcpEndpoint(TcpConfig config, in TcpHandshake handshake, long nowMs, RingBufferPool? bufferPool = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        _config = config;
        _bufferPool = bufferPool;
        _createdMs = nowMs;
        _lastRecvMs = nowMs;
        _keepAliveSentMs = long.MinValue / 2;
        _state = TcpState.Established;

        // Window scaling applies in both directions or in neither (RFC 7323 2.2).
        bool scaling = handshake.SendWindowScale >= 0 && handshake.RecvWindowScale >= 0;
        _sndWndShift = scaling ? Math.Min((int)handshake.SendWindowScale, 14) : 0;
        _rcvWndShift = scaling ? Math.Min((int)handshake.RecvWindowScale, 14) : 0;
        _tsEnabled = handshake.TimestampsEnabled;
        _tsRecent = handshake.TsRecent;
        _localTsInitial = handshake.LocalTsInitial;
        _sackEnabled = handshake.SackPermitted;

        InitReceive(handshake);
        InitSend(handshake);
    }

    public TcpState State => _state;

    public TcpCloseReason CloseReason => _closeReason;

    /// <summary>True once the endpoint is CLOSED (or TIME-WAIT expired) and any final RST went out: free the flow.</summary>
    public bool IsClosed => _state == TcpState.Closed && !_rstPending;

    /// <summary>Source port written into emitted segments (the protected service port). The host may also overwrite it.</summary>
    public ushort LocalPort { get; set; }

    /// <summary>Destination port written into emitted segments (the client's port).</summary>
    public ushort RemotePort { get; set; }

    /// <summary>Traces every state transition (old, new): for tests and debugging.</summary>
    public event Action<TcpState, TcpState>? StateChanged;

    // --- statistics (cheap counters, read by the host) ---
    public long SegmentsReceived { get; private set; }
    public long SegmentsSent { get; private set; }
    /// <summary>Segments from the client not acted upon (PAWS, out of window, bad ACK, after close...).</summary>
    public long SegmentsDropped { get; private set; }
    public long ChallengeAcksSent { get; private set; }
    public long ChallengeAcksSuppressed { get; private set; }

    /// <summary>
    /// RFC 9293 3.10.7.4 segment arrival: a validated segment from the client (checksum already verified;
    /// <paramref name="payload"/> is the TCP payload).
    /// </summary>
    public void Process(in TcpRepr segment, ReadOnlySpan<byte> payload, long nowMs)
    {
        SegmentsReceived++;
        SegmentKind kind = Classify(in segment, payload.Length, nowMs);
        if (kind != SegmentKind.RstOutOfWindow)
        {
            _lastRecvMs = nowMs; // the client is alive (idle timeout, keep-alive)
        }

        switch (_state, kind)
        {
            case (TcpState.Closed, _):
                // RFC 9293 3.10.7.1: nothing to do on a dead connection; the host's flow table owns RSTs for unknown flows.
                SegmentsDropped++;
                break;

            case (_, SegmentKind.RstExact):
                // RFC 5961 3.2 / RFC 9293 3.10.7.4 second check: RST exactly at RCV.NXT resets the connection.
                Terminate(TcpCloseReason.ResetByClient, sendRst: false);
                break;

            case (_, SegmentKind.RstInWindow):
                // RFC 5961 3.2: in window but not exact -> challenge ACK; a genuine peer answers with an exact RST.
                SegmentsDropped++;
                ChallengeAck(nowMs);
                break;

            case (_, SegmentKind.PawsOldAck):
                // RFC 7323 5.3 R1 / Linux tcp_validate_incoming: an old ACK overtaken by newer ones; drop, no answer.
                SegmentsDropped++;
                break;

            case (_, SegmentKind.RstOutOfWindow):
                // RFC 5961 3.2 / RFC 9293 3.10.7.4: an unacceptable RST is dropped silently.
                SegmentsDropped++;
                break;

            case (_, SegmentKind.Syn):
                // RFC 5961 4.2 (updates RFC 9293 3.10.7.4 fourth check): any SYN in a synchronized state -> challenge ACK.
                SegmentsDropped++;
                ChallengeAck(nowMs);
                break;

            case (TcpState.TimeWait, SegmentKind.Unacceptable) when (segment.Flags & TcpFlags.Fin) != 0:
                // RFC 9293 3.10.7.4 TIME-WAIT: a retransmitted FIN -> acknowledge it and restart the 2 MSL timer.
                _ackNow = true;
                _timer.Set(TcpTimerKind.TimeWait, nowMs + _config.TimeWaitMs);
                break;

            case (_, SegmentKind.Unacceptable):
                // RFC 9293 3.10.7.4 first check (and RFC 7323 5.3 R1 for PAWS): send an ACK, drop the segment.
                // Pure ACKs get at most one answer per OutOfWindowAckIntervalMs: like Linux
                // (tcp_oow_rate_limited) this breaks ACK loops and blind reflection; data never loops.
                SegmentsDropped++;
                if (payload.Length > 0 && segment.Seq + payload.Length <= _rcvNxt)
                {
                    // RFC 2883 4.1.1 (Linux tcp_send_dupack): an old duplicate is reported as a D-SACK.
                    SetDsack(segment.Seq, segment.Seq + payload.Length);
                }

                if (payload.Length > 0 || (segment.Flags & TcpFlags.Fin) != 0)
                {
                    _ackNow = true;
                    EnterQuickAckMode(); // Linux tcp_data_queue out_of_window: the sender needs our ACKs now
                }
                else if (nowMs - _lastOutOfWindowAckMs >= OutOfWindowAckIntervalMs)
                {
                    _lastOutOfWindowAckMs = nowMs;
                    _ackNow = true;
                }

                break;

            case (_, SegmentKind.NoAck):
                // RFC 9293 3.10.7.4 fifth check: "if the ACK bit is off, drop the segment and return".
                SegmentsDropped++;
                break;

            case (_, SegmentKind.AckUnsent):
            case (_, SegmentKind.AckTooOld):
                // RFC 5961 5.2: ACK outside [SND.UNA - MAX.SND.WND, SND.NXT] -> (challenge) ACK and drop.
                SegmentsDropped++;
                ChallengeAck(nowMs);
                break;

            case (TcpState.Established, SegmentKind.Acceptable):
                // RFC 9293 3.10.7.4 ESTABLISHED: ACK, then text, then FIN (-> CLOSE-WAIT).
                ProcessAcceptable(in segment, payload, nowMs, acceptText: true);
                break;

            case (TcpState.FinWait1, SegmentKind.Acceptable):
                // RFC 9293 FIN-WAIT-1: "if the FIN segment is now acknowledged, enter FIN-WAIT-2"; text and FIN still accepted.
                ProcessAck(in segment, payload.Length, nowMs);
                if (_finAcked)
                {
                    SetState(TcpState.FinWait2);
                }

                ProcessTextAndFin(in segment, payload, nowMs);
                break;

            case (TcpState.FinWait2, SegmentKind.Acceptable):
                // RFC 9293 FIN-WAIT-2: our FIN is acked; keep receiving until the client's FIN (-> TIME-WAIT).
                ProcessAcceptable(in segment, payload, nowMs, acceptText: true);
                break;

            case (TcpState.CloseWait, SegmentKind.Acceptable):
                // RFC 9293 CLOSE-WAIT: ACK processing only; text and FIN after the client's FIN are ignored.
                ProcessAcceptable(in segment, payload, nowMs, acceptText: false);
                break;

            case (TcpState.Closing, SegmentKind.Acceptable):
                // RFC 9293 CLOSING: "if the ACK acknowledges our FIN, enter the TIME-WAIT state".
                ProcessAck(in segment, payload.Length, nowMs);
                if (_finAcked)
                {
                    EnterTimeWait(nowMs);
                }

                break;

            case (TcpState.LastAck, SegmentKind.Acceptable):
                // RFC 9293 LAST-ACK: "if our FIN is now acknowledged, delete the TCB, enter the CLOSED state".
                ProcessAck(in segment, payload.Length, nowMs);
                if (_finAcked)
                {
                    Terminate(TcpCloseReason.Graceful, sendRst: false);
                }

                break;

            case (TcpState.TimeWait, SegmentKind.Acceptable):
                // RFC 9293 TIME-WAIT: only a FIN retransmission is expected (handled as unacceptable); ignore the rest.
                break;

            default:
                SegmentsDropped++;
                break;
        }
    }

    /// <summary>Backend error: discard the queues and send one RST (SEQ = SND.NXT) on the next Dispatch (RFC 9293 3.10.5 ABORT).</summary>
    public void Abort()
    {
        if (_state != TcpState.Closed)
        {
            Terminate(TcpCloseReason.Aborted, sendRst: true);
        }
    }

    private enum SegmentKind : byte
    {
        Acceptable,
        /// <summary>Fails the RFC 9293 3.10.7.4 acceptability test or PAWS.</summary>
        Unacceptable,
        RstExact,
        RstInWindow,
        RstOutOfWindow,
        Syn,
        NoAck,
        /// <summary>SEG.ACK &gt; SND.NXT: acknowledges something not yet sent.</summary>
        AckUnsent,
        /// <summary>SEG.ACK &lt; SND.UNA - MAX.SND.WND (RFC 5961 5.2).</summary>
        AckTooOld,
        /// <summary>A pure ACK below RCV.NXT that failed PAWS: stale, needs no answer.</summary>
        PawsOldAck,
    }

    /// <summary>Linux TCP_PAWS_WINDOW: a TSval one tick older than TS.Recent still passes.</summary>
    private const int PawsWindow = 1;

    /// <summary>RFC 7323 5.5 / Linux TCP_PAWS_24DAYS: a TS.Recent this old is no longer trusted.</summary>
    private const long PawsIdleLimitMs = 24L * 24 * 3600 * 1000;

    /// <summary>
    /// RFC 7323 5.3 R1 the way Linux applies it (tcp_paws_check, tcp_disordered_ack_check): the TSval is not
    /// older than TS.Recent (by more than one tick), or TS.Recent is 24 days stale or was never set, or the
    /// segment is a pure duplicate ACK that changes nothing and comes from within an RTO of replay (ACKs
    /// overtaking each other on the way back, each carrying SACK information recovery needs).
    /// </summary>
    private bool PawsAccepts(in TcpRepr seg, int payloadLength, long nowMs)
    {
        int older = unchecked((int)(_tsRecent - seg.Options.TsVal));
        if (older <= PawsWindow || nowMs - _tsRecentStampMs >= PawsIdleLimitMs || _tsRecent == 0)
        {
            return true;
        }

        int window = seg.Window << _sndWndShift;
        bool pureAck = (seg.Flags & (TcpFlags.Ack | TcpFlags.Fin)) == TcpFlags.Ack && payloadLength == 0;
        bool mayUpdateWindow = seg.Ack > _sndUna || seg.Seq > _sndWl1
            || (seg.Seq == _sndWl1 && (window > _sndWnd || window == 0));
        long replayWindow = _rtt.RtoMs * 6 / 5; // Linux tcp_tsval_replay: RTO * 1.2, our TSval ticks are ms
        return pureAck && seg.Seq == _rcvNxt && seg.Ack == _sndUna && !mayUpdateWindow && older <= replayWindow;
    }

    /// <summary>
    /// Sorts a segment into what the state machine reacts to, following the order of RFC 9293 3.10.7.4:
    /// sequence check (with PAWS), RST, SYN, ACK.
    /// </summary>
    private SegmentKind Classify(in TcpRepr seg, int payloadLength, long nowMs)
    {
        TcpFlags flags = seg.Flags;
        if ((flags & TcpFlags.Rst) != 0)
        {
            // RFC 5961 3.2: exact match resets, otherwise in window -> challenge, else drop. PAWS does not apply to RST (RFC 7323 5.3).
            if (seg.Seq == _rcvNxt)
            {
                return SegmentKind.RstExact;
            }

            return seg.Seq.InWindow(_rcvNxt, (uint)Math.Max(ReceiveWindowRemaining, 1))
                ? SegmentKind.RstInWindow
                : SegmentKind.RstOutOfWindow;
        }

        if ((flags & TcpFlags.Syn) != 0)
        {
            return SegmentKind.Syn;
        }

        // RFC 7323 5.3 R1 (PAWS): a TSval older than TS.Recent marks an old duplicate. A segment without the
        // option on a connection that negotiated timestamps is, per RFC 7323 3.2, one a TCP "SHOULD silently
        // drop"; Linux accepts it (tcp_validate_incoming runs tcp_paws_check only when saw_tstamp, and
        // tcp_replace_ts_recent likewise) and so do we: no PAWS check, no TS.Recent update, no timestamp RTT
        // sample for it, and the connection goes on (3.2: "MUST NOT abort").
        if (_tsEnabled && seg.Options.HasTimestamp && !PawsAccepts(in seg, payloadLength, nowMs))
        {
            PawsRejected++;
            // Linux tcp_disordered_ack_check (TCP_RFC7323_PAWS_ACK): an old pure ACK is common and dropped silently.
            bool pureAck = payloadLength == 0 && (flags & TcpFlags.Fin) == 0;
            return pureAck && seg.Seq < _rcvNxt ? SegmentKind.PawsOldAck : SegmentKind.Unacceptable;
        }

        int segLen = payloadLength + ((flags & TcpFlags.Fin) != 0 ? 1 : 0);
        if (!IsAcceptable(seg.Seq, segLen))
        {
            return SegmentKind.Unacceptable;
        }

        if ((flags & TcpFlags.Ack) == 0)
        {
            return SegmentKind.NoAck;
        }

        if (seg.Ack > _sndNxt)
        {
            return SegmentKind.AckUnsent;
        }

        if (seg.Ack < _sndUna - Math.Max(_maxSndWnd, 1))
        {
            return SegmentKind.AckTooOld;
        }

        return SegmentKind.Acceptable;
    }

    /// <summary>ACK, then text and FIN: the common path of the synchronized states.</summary>
    private void ProcessAcceptable(in TcpRepr segment, ReadOnlySpan<byte> payload, long nowMs, bool acceptText)
    {
        ProcessAck(in segment, payload.Length, nowMs);
        if (acceptText)
        {
            ProcessTextAndFin(in segment, payload, nowMs);
        }
    }

    /// <summary>RFC 9293 3.10.7.4 eighth check: what the client's FIN does in each state.</summary>
    private void OnFinReceived(long nowMs)
    {
        switch (_state)
        {
            case TcpState.Established:
                // "enter the CLOSE-WAIT state": the host half-closes the backend once ReceiveFinished.
                SetState(TcpState.CloseWait);
                break;
            case TcpState.FinWait1 when _finAcked:
                // "if our FIN has been ACKed ... enter TIME-WAIT"
                EnterTimeWait(nowMs);
                break;
            case TcpState.FinWait1:
                // simultaneous close: "otherwise, enter the CLOSING state"
                SetState(TcpState.Closing);
                break;
            case TcpState.FinWait2:
                // "enter the TIME-WAIT state"
                EnterTimeWait(nowMs);
                break;
        }
    }

    private void EnterTimeWait(long nowMs)
    {
        SetState(TcpState.TimeWait);
        _timer.Set(TcpTimerKind.TimeWait, nowMs + _config.TimeWaitMs);
    }

    /// <summary>Ends the connection: CLOSED with a reason, optionally one RST on the next Dispatch.</summary>
    private void Terminate(TcpCloseReason reason, bool sendRst)
    {
        if (_closeReason == TcpCloseReason.None)
        {
            _closeReason = reason;
        }

        _rstPending = sendRst;
        _sendRing.Clear();
        _rtx.Clear();
        _rackTimerAtMs = long.MaxValue;
        TlpReset();
        _timer.Stop();
        _ackNow = false;
        _ackDelayed = false;
        SetState(TcpState.Closed);
    }

    /// <summary>RFC 5961 7: challenge ACKs, at most <see cref="ChallengeAckLimitPerSecond"/> per second.</summary>
    private void ChallengeAck(long nowMs)
    {
        if (nowMs - _challengeWindowStartMs >= 1000)
        {
            _challengeWindowStartMs = nowMs;
            _challengeAcksInWindow = 0;
        }

        if (_challengeAcksInWindow < ChallengeAckLimitPerSecond)
        {
            _challengeAcksInWindow++;
            ChallengeAcksSent++;
            _ackNow = true;
        }
        else
        {
            ChallengeAcksSuppressed++;
        }
    }

    /// <summary>Every transition goes through here so it can be traced.</summary>
    private void SetState(TcpState state)
    {
        TcpState old = _state;
        if (old == state)
        {
            return;
        }

        _state = state;
        if (state is TcpState.TimeWait or TcpState.Closed)
        {
            ReleaseIdleRings();
        }

        StateChanged?.Invoke(old, state);
    }
}
