using CookieProxy.Wire;

namespace CookieProxy.Tcp;

// Send side: RFC 9293 3.3.1 send sequence space, 3.10.7.4 ACK processing and SND.WND update (SND.WL1/WL2),
// 3.8.6.2.1 sender SWS avoidance, 3.9.1 PSH; RFC 7323 2.3 window scaling, 3 timestamps, 4.1 RTTM;
// RFC 2018 SACK option processing; RFC 6298 3 (Karn) and 5.1-5.3 timer management.
public sealed partial class TcpEndpoint
{
    /// <summary>RFC 7323 3.2: the timestamps option costs 12 bytes (10 + 2 NOPs) in every segment.</summary>
    private const int TimestampOptionBytes = 12;

    private SeqNumber _iss;
    private SeqNumber _sndUna;
    /// <summary>Next sequence number to send; moves back to SND.UNA on a retransmission timeout (go-back-N).</summary>
    private SeqNumber _sndNxt;
    /// <summary>Highest sequence number ever sent + 1: RFC 9293's SND.NXT for ACK acceptability and RST.</summary>
    private SeqNumber _sndMax;
    private SeqNumber _sndWl1;
    private SeqNumber _sndWl2;
    private int _sndWnd;
    private int _maxSndWnd;
    private readonly int _sndWndShift;
    private int _effMss;
    private ByteRing _sendRing = null!;
    private bool _finQueued;
    private bool _finAcked;

    // RTT measurement without timestamps: one timed segment at a time (RFC 6298 3, Karn's rule).
    private bool _rttTiming;
    private SeqNumber _rttSeq;
    private long _rttStartMs;
    private RttEstimator _rtt;

    public long BytesAcked { get; private set; }
    /// <summary>Segments sent again (RTO go-back-N, fast retransmit, SACK recovery).</summary>
    public long Retransmissions { get; private set; }

    /// <summary>Free space in the send buffer (backend -> client); 0 once CloseSend/Abort was called.</summary>
    public int SendBufferFree => _finQueued || _state == TcpState.Closed ? 0 : _sendRing.Free;

    /// <summary>Bytes queued and not yet acknowledged by the client.</summary>
    public int SendBufferUsed => _sendRing.Count;

    /// <summary>SND.WND in bytes (already scaled).</summary>
    public int SendWindow => _sndWnd;

    /// <summary>SND.UNA / SND.NXT (for tests and diagnostics).</summary>
    public SeqNumber SendUnacknowledged => _sndUna;

    public SeqNumber SendNext => _sndNxt;

    /// <summary>Effective send MSS: the client's MSS minus the timestamp option (RFC 9293 3.7.1, RFC 7323).</summary>
    public int EffectiveSendMss => _effMss;

    /// <summary>
    /// When the sink's device cuts segments itself (TSO/GSO): the most payload one emitted data segment may
    /// carry; new data then leaves in super-segments of whole MSS-sized pieces and the sink cuts them at
    /// <see cref="EmitSegmentSize"/>. 0 (default): one MSS per segment. Retransmissions are always one MSS.
    /// Linux's TCP does the same with TSO (tcp_tso_autosize, tcp_mss_split_point).
    /// </summary>
    public int SegmentOffloadBytes { get; set; }

    /// <summary>The MSS of the data segment being emitted (valid during <see cref="ITcpSegmentSink.Emit"/>): where a
    /// super-segment must be cut, the SACK option bytes of its header already deducted.</summary>
    public int EmitSegmentSize { get; private set; }

    /// <summary>Appends backend bytes to the send buffer; returns how many were taken.</summary>
    public int Send(ReadOnlySpan<byte> data) => SendOpen ? _sendRing.Append(data) : 0;

    /// <summary>Backend bytes may still be queued: no FIN queued yet, and a state that sends data (RFC 9293 3.10.2).</summary>
    private bool SendOpen => !_finQueued && _state is (TcpState.Established or TcpState.CloseWait);

    /// <summary>
    /// The send buffer's free space as (up to two) writable pieces, for a backend socket to receive straight
    /// into (no copy in between); <see cref="CommitSend"/> the bytes written. Empty whenever <see cref="Send"/>
    /// would take nothing.
    /// </summary>
    public void GetSendSpace(out Span<byte> head, out Span<byte> tail)
    {
        if (!SendOpen)
        {
            head = default;
            tail = default;
            return;
        }

        _sendRing.GetFree(out head, out tail);
    }

    /// <summary>Queues <paramref name="count"/> bytes written into the pieces <see cref="GetSendSpace"/> returned.</summary>
    public void CommitSend(int count)
    {
        if (count < 0 || count > _sendRing.Free)
        {
            throw new ArgumentOutOfRangeException(nameof(count), count, "More than GetSendSpace offered.");
        }

        _sendRing.Commit(count);
    }

    /// <summary>Backend EOF: FIN after all queued data (RFC 9293 3.10.4 CLOSE, half-close 3.6).</summary>
    public void CloseSend()
    {
        if (_finQueued)
        {
            return;
        }

        switch (_state)
        {
            case TcpState.Established:
                // RFC 9293 3.10.4: "queue this until all preceding SENDs have been segmentized ... enter FIN-WAIT-1".
                _finQueued = true;
                SetState(TcpState.FinWait1);
                break;
            case TcpState.CloseWait:
                // RFC 9293 3.10.4: "queue this request until all preceding SENDs ... send a FIN ... enter LAST-ACK".
                _finQueued = true;
                SetState(TcpState.LastAck);
                break;
        }
    }

    private void InitSend(in TcpHandshake handshake)
    {
        _iss = handshake.Iss;
        _sndUna = handshake.Iss + 1;
        _sndNxt = _sndUna;
        _sndMax = _sndUna;
        // RFC 9293 3.10.7.4 SYN-RECEIVED -> ESTABLISHED: SND.WND <- SEG.WND, SND.WL1 <- SEG.SEQ, SND.WL2 <- SEG.ACK.
        // The cookie ACK is not a SYN, so its window is scaled (RFC 7323 2.3).
        _sndWnd = handshake.InitialWindow << _sndWndShift;
        _maxSndWnd = _sndWnd;
        _sndWl1 = handshake.Irs + 1;
        _sndWl2 = _sndUna;
        int mss = handshake.SendMss == 0 ? 536 : handshake.SendMss; // RFC 9293 3.7.1 default
        _effMss = Math.Max(mss - (_tsEnabled ? TimestampOptionBytes : 0), 64);
        _sendRing = NewRing(_config.SendBufferSize);
        _rtt = new RttEstimator(_config.InitialRtoMs, _config.MinRtoMs, _config.MaxRtoMs);
        _timer.Stop();
        InitCongestion();
    }

    /// <summary>Our TSval: a millisecond clock continuing from the SYN+ACK's value (RFC 7323 5.4).</summary>
    private uint CurrentTsVal(long nowMs) => unchecked(_localTsInitial + (uint)(nowMs - _createdMs));

    /// <summary>RFC 9293 3.10.7.4 fifth check (ESTABLISHED and the states that share it).</summary>
    private void ProcessAck(in TcpRepr seg, int payloadLength, long nowMs)
    {
        UpdateTsRecent(in seg);
        SeqNumber ack = seg.Ack;
        int window = seg.Window << _sndWndShift; // RFC 7323 2.3

        if (ack > _sndUna)
        {
            // "If SND.UNA < SEG.ACK =< SND.NXT, then set SND.UNA <- SEG.ACK" and remove what it covers.
            SeqNumber prevUna = _sndUna;
            SeqNumber priorHighestSacked = _highestSacked;
            int acked = ack - _sndUna;
            int dataAcked = Math.Min(acked, _sendRing.Count);
            _sendRing.Consume(dataAcked);
            _sendRing.Rewind();    // TcpEndpoint.Memory.cs: an emptied ring restarts at its first page
            if (acked > dataAcked && _finQueued)
            {
                _finAcked = true;
            }

            _sndUna = ack;
            if (_sndNxt < _sndUna)
            {
                _sndNxt = _sndUna;
            }

            BytesAcked += dataAcked;
            SampleRtt(in seg, ack, nowMs);
            _retransmits = 0;
            _persistBackoff = 0;
            if (_sackEnabled)
            {
                _scoreboard.RemoveBelow(ack);
                ProcessSackBlocks(in seg);
            }

            if (prevUna >= _rxtHigh)
            {
                // The hole at the old SND.UNA was filled by its original transmission (Linux tcp_clean_rtx_queue).
                NoteReordering(prevUna, priorHighestSacked);
            }

            CheckEifel(in seg, prevUna, priorHighestSacked);
            _highestSacked = SeqNumber.Max(_highestSacked, _sndUna);
            OnNewAck(acked);

            // RFC 6298 (5.2) stop the timer when everything is acknowledged, (5.3) otherwise restart it.
            if (_sndUna == _sndMax)
            {
                if (_timer.Kind == TcpTimerKind.Retransmit)
                {
                    _timer.Stop();
                }
            }
            else if (_timer.Kind != TcpTimerKind.Persist)
            {
                _timer.Set(TcpTimerKind.Retransmit, nowMs + _rtt.RtoMs);
            }
        }
        else if (ack == _sndUna && _sndMax > _sndUna)
        {
            bool newSack = _sackEnabled && ProcessSackBlocks(in seg);
            // RFC 5681 2 duplicate ACK (no data, no FIN, same window, data outstanding); with SACK, RFC 6675 2
            // counts ACKs that carry new SACK information instead (so data-bearing ACKs count too).
            // A zero window is flow control, not loss: those ACKs never count (the persist timer takes over).
            bool duplicate = window > 0 && (_sackEnabled
                ? newSack
                : payloadLength == 0 && (seg.Flags & TcpFlags.Fin) == 0 && window == _sndWnd);
            if (duplicate)
            {
                OnDuplicateAck();
            }
        }

        // RFC 9293 3.10.7.4: update the send window only from a segment not older than the last update.
        if (_sndWl1 < seg.Seq || (_sndWl1 == seg.Seq && _sndWl2 <= ack))
        {
            bool wasZero = _sndWnd == 0;
            _sndWnd = window;
            _sndWl1 = seg.Seq;
            _sndWl2 = ack;
            _maxSndWnd = Math.Max(_maxSndWnd, window);
            if (wasZero && window > 0 && _timer.Kind == TcpTimerKind.Persist)
            {
                // The window opened: leave persist mode; Dispatch sends at once.
                _timer.Stop();
                _persistBackoff = 0;
            }
        }
    }

    private void SampleRtt(in TcpRepr seg, SeqNumber ack, long nowMs)
    {
        if (_tsEnabled && seg.Options.HasTimestamp && seg.Options.TsEcr != 0)
        {
            // RFC 7323 4.1: RTT = now - TSecr, valid for retransmissions too (no Karn ambiguity).
            int rtt = unchecked((int)(CurrentTsVal(nowMs) - seg.Options.TsEcr));
            if (rtt >= 0 && rtt <= _config.MaxRtoMs)
            {
                _rtt.Sample(rtt);
            }
        }
        else if (_rttTiming && ack >= _rttSeq)
        {
            // RFC 6298 3: the timed segment was never retransmitted (else Karn cleared _rttTiming).
            _rtt.Sample(nowMs - _rttStartMs);
        }

        if (_rttTiming && ack >= _rttSeq)
        {
            _rttTiming = false;
        }
    }

    /// <summary>
    /// RFC 2018 / RFC 6675 2: records SACK blocks within (SND.UNA, SND.NXT]; true if new bytes were SACKed.
    /// A D-SACK first block (RFC 2883) goes to spurious-retransmission detection instead; newly SACKed
    /// original data below the highest SACK measures reordering.
    /// </summary>
    private bool ProcessSackBlocks(in TcpRepr seg)
    {
        bool grew = false;
        int n = Math.Min((int)seg.Options.SackCount, 4);
        SeqNumber priorHighestSacked = _highestSacked;
        int first = 0;
        if (IsDsack(in seg))
        {
            OnDsack(seg.Options.Sack[0], priorHighestSacked);
            first = 1;
        }

        for (int i = first; i < n; i++)
        {
            SackBlock b = seg.Options.Sack[i];
            SeqNumber left = SeqNumber.Max(b.Left, _sndUna);
            SeqNumber right = SeqNumber.Min(b.Right, _sndMax);
            if (b.Right <= b.Left || right <= left || b.Right > _sndMax || b.Left < _sndUna - _maxSndWnd)
            {
                continue; // stale, D-SACK or bogus: ignore
            }

            SeqNumber lowNew = _scoreboard.FirstUncovered(left, right);
            if (_scoreboard.Add(left, right) > 0)
            {
                grew = true;
                if (lowNew >= _rxtHigh)
                {
                    NoteReordering(lowNew, priorHighestSacked); // an original arrived after later data
                }
            }

            _highestSacked = SeqNumber.Max(_highestSacked, right);
        }

        return grew;
    }

    /// <summary>Emits everything due now: RST, retransmissions, new data within min(cwnd, rwnd), FIN, probes, ACKs.</summary>
    public void Dispatch<TSink>(ref TSink sink, long nowMs) where TSink : struct, ITcpSegmentSink, allows ref struct
    {
        if (_state != TcpState.Closed)
        {
            RunTimers(nowMs);
        }

        if (_rstPending)
        {
            // RFC 9293 3.10.5 ABORT / 3.8.3 R2: <SEQ=SND.NXT><CTL=RST>; ACK set so stacks accept it more readily.
            TcpRepr rst = BuildHeader(_sndMax, TcpFlags.Rst | TcpFlags.Ack, nowMs);
            sink.Emit(in rst, default, default);
            SegmentsSent++;
            _rstPending = false;
            return;
        }

        if (_state is TcpState.Closed)
        {
            return;
        }

        bool sent = false;
        if (_state is not TcpState.TimeWait)
        {
            if (_inRecovery && _sackEnabled)
            {
                sent |= SendSackRecovery(ref sink, nowMs);
            }
            else
            {
                if (_fastRetransmitPending)
                {
                    // RFC 5681 3.2 (3) / RFC 6582 3.2 (5): retransmit the first unacknowledged segment.
                    _fastRetransmitPending = false;
                    EmitSegment(ref sink, _sndUna, _effMss - SackOptionBytes, nowMs);
                    sent = true;
                }

                while (TryPlanNewSegment(out int len))
                {
                    _sndNxt = EmitSegment(ref sink, _sndNxt, len, nowMs);
                    sent = true;
                }
            }

            if (_probePending)
            {
                // RFC 9293 3.8.6.1 zero-window probe / 3.8.4 keep-alive: SEG.SEQ = SND.UNA - 1, no data; the
                // client must answer with an ACK carrying its current window.
                _probePending = false;
                TcpRepr probe = BuildHeader(_sndUna - 1, TcpFlags.Ack, nowMs);
                sink.Emit(in probe, default, default);
                SegmentsSent++;
                sent = true;
            }
        }

        if (!sent && (_ackNow || (_ackDelayed && nowMs >= _delayedAckAtMs)))
        {
            // SEQ = SND.MAX (RFC 9293's SND.NXT), not our rolled-back go-back-N pointer: a pure ACK below the
            // client's RCV.NXT would be unacceptable to it, its ACK in turn to us -- an endless ACK war.
            TcpRepr ackSeg = BuildHeader(_sndMax, TcpFlags.Ack, nowMs);
            sink.Emit(in ackSeg, default, default);
            SegmentsSent++;
        }

        ArmTimers(nowMs);
    }

    /// <summary>
    /// Decides whether a new segment (or go-back-N retransmission) goes out at SND.NXT and how long it is:
    /// within min(cwnd, rwnd) (RFC 5681 2, RFC 9293 3.8.6), sender SWS avoidance (RFC 9293 3.8.6.2.1)
    /// without Nagle's delay for the last piece (PSH at the end of the queued data keeps HTTP latency low),
    /// FIN after the data (RFC 9293 3.10.4).
    /// </summary>
    private bool TryPlanNewSegment(out int len)
    {
        len = 0;
        if (_state is TcpState.Closed or TcpState.TimeWait)
        {
            return false;
        }

        int offset = _sndNxt - _sndUna;
        int unsent = _sendRing.Count - offset;
        if (unsent <= 0)
        {
            // Bare FIN once every byte went out; it needs no window (it is 1 sequence number, never data).
            return unsent == 0 && _finQueued && !_finAcked;
        }

        if (_sackEnabled && _scoreboard.Count > 0 && _sndNxt < _sndMax)
        {
            // Go-back-N after an RTO: skip what the client already SACKed.
            int idx = _scoreboard.IndexContaining(_sndNxt);
            if (idx >= 0)
            {
                _sndNxt = SeqNumber.Min(_scoreboard.Right(idx), _sndMax);
                return TryPlanNewSegment(out len);
            }
        }

        int flight = _sndNxt - _sndUna;
        if (_sackEnabled && _scoreboard.Count > 0)
        {
            flight -= SackedBelow(_sndNxt); // SACKed bytes have left the network (RFC 6675 pipe, simplified)
        }

        int usable = Math.Min(_sndUna + _sndWnd - _sndNxt, _cwnd - flight);
        int mss = _effMss - SackOptionBytes;
        int maxLen = SegmentOffloadBytes > mss ? Math.Min(SegmentOffloadBytes / mss, TcpSuperFrame.MaxSegments) * mss : mss;
        len = Math.Min(Math.Min(maxLen, unsent), usable);
        if (_sackEnabled && _scoreboard.Count > 0 && _sndNxt < _sndMax)
        {
            int above = _scoreboard.IndexAbove(_sndNxt);
            if (above >= 0)
            {
                len = Math.Min(len, _scoreboard.Left(above) - _sndNxt);
            }
        }

        if (len <= 0)
        {
            return false;
        }

        if (len > mss && len < unsent)
        {
            // A super-segment ends in a runt only at the end of the queued data (tcp_mss_split_point): the
            // window-limited remainder waits for the next ACK like any sender-SWS runt.
            len = len / mss * mss;
        }

        if (len < mss && len < unsent && flight > 0 && len < _maxSndWnd / 2)
        {
            // RFC 9293 3.8.6.2.1: a window-limited runt waits while data is in flight (the ACK will bring a
            // bigger window); with nothing in flight it goes out so we never deadlock on a small window.
            return false;
        }

        return true;
    }

    private int SackedBelow(SeqNumber seq)
    {
        int sacked = 0;
        for (int i = 0; i < _scoreboard.Count && _scoreboard.Left(i) < seq; i++)
        {
            sacked += SeqNumber.Min(_scoreboard.Right(i), seq) - _scoreboard.Left(i);
        }

        return sacked;
    }

    /// <summary>
    /// Emits one segment starting at <paramref name="seq"/> with up to <paramref name="maxLen"/> bytes
    /// (plus FIN when it reaches the end of the queued data and CloseSend was called). Returns its end.
    /// </summary>
    private SeqNumber EmitSegment<TSink>(ref TSink sink, SeqNumber seq, int maxLen, long nowMs)
        where TSink : struct, ITcpSegmentSink, allows ref struct
    {
        int offset = seq - _sndUna;
        int len = Math.Max(Math.Min(maxLen, _sendRing.Count - offset), 0);
        bool fin = _finQueued && offset + len == _sendRing.Count;
        TcpFlags flags = TcpFlags.Ack;
        if (len > 0 && offset + len == _sendRing.Count)
        {
            flags |= TcpFlags.Psh; // RFC 9293 3.9.1: the end of what the backend gave us
        }

        if (fin)
        {
            flags |= TcpFlags.Fin;
        }

        _sendRing.Peek(offset, len, out ReadOnlySpan<byte> head, out ReadOnlySpan<byte> tail);
        int sackBytes = SackOptionBytes;    // before BuildHeader: it clears a pending D-SACK
        TcpRepr repr = BuildHeader(seq, flags, nowMs);
        EmitSegmentSize = _effMss - sackBytes;
        sink.Emit(in repr, head, tail);
        SegmentsSent++;

        SeqNumber end = seq + (len + (fin ? 1 : 0));
        if (seq < _sndMax)
        {
            Retransmissions++;
            _rttTiming = false; // RFC 6298 3 (Karn): no sample from a retransmitted segment
            OnRetransmitted(end, nowMs);
        }
        else if (!_rttTiming && !_tsEnabled)
        {
            _rttTiming = true;
            _rttSeq = end;
            _rttStartMs = nowMs;
        }

        if (end > _sndMax)
        {
            _sndMax = end;
        }

        // RFC 6298 (5.1): start the retransmission timer when data goes out and it is not running.
        if (_timer.Kind != TcpTimerKind.Retransmit)
        {
            _timer.Set(TcpTimerKind.Retransmit, nowMs + _rtt.RtoMs);
        }

        return end;
    }

    /// <summary>Option bytes the SACK blocks of our next segment take (RFC 2018 3: 2 + 8n, padded by NOPs).</summary>
    private int SackOptionBytes => _sackEnabled && (_ooo.Count > 0 || _dsackPending)
        ? 4 + (8 * Math.Min(_ooo.Count + (_dsackPending ? 1 : 0), MaxSackBlocks))
        : 0;

    /// <summary>RFC 2018 3: at most 3 blocks fit next to the timestamps option, 4 without.</summary>
    private int MaxSackBlocks => _tsEnabled ? 3 : 4;

    /// <summary>Every outgoing segment carries ACK = RCV.NXT, our window, TS and SACK options: it is an ACK.</summary>
    private TcpRepr BuildHeader(SeqNumber seq, TcpFlags flags, long nowMs)
    {
        TcpRepr r = default;
        r.SrcPort = LocalPort;
        r.DstPort = RemotePort;
        r.Seq = seq;
        r.Ack = _rcvNxt;
        r.Flags = flags;
        r.Options = TcpOptionsRepr.None;
        bool rst = (flags & TcpFlags.Rst) != 0;
        r.Window = rst ? (ushort)0 : NextWindowField();
        if (_tsEnabled)
        {
            // RFC 7323 3.2: TSval = our clock, TSecr = TS.Recent.
            r.Options.HasTimestamp = true;
            r.Options.TsVal = CurrentTsVal(nowMs);
            r.Options.TsEcr = _tsRecent;
        }

        if (_sackEnabled && (_ooo.Count > 0 || _dsackPending) && !rst)
        {
            int first = 0;
            int held = -1;
            if (_dsackPending)
            {
                // RFC 2883 4: the D-SACK block comes first, reported once; when it duplicates out-of-order data
                // the range holding it comes second (so the sender can tell, RFC 2883 4.1.2); the rest follow.
                r.Options.Sack[0] = _dsack;
                _dsackPending = false;
                first = 1;
                held = _ooo.IndexContaining(_dsack.Left);
                if (held >= 0 && _ooo.Right(held) >= _dsack.Right)
                {
                    r.Options.Sack[1] = new SackBlock(_ooo.Left(held), _ooo.Right(held));
                    first = 2;
                }
                else
                {
                    held = -1;
                }
            }

            r.Options.SackCount = (byte)(first + _ooo.MostRecent(ref r.Options.Sack, first, MaxSackBlocks - first, held)); // RFC 2018 4
        }

        _lastAckSent = _rcvNxt;
        _ackNow = false;
        _ackDelayed = false;
        _segmentsSinceAck = 0;
        return r;
    }
}
