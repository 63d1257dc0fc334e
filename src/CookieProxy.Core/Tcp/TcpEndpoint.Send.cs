using CookieProxy.Wire;

namespace CookieProxy.Tcp;

// Send side: RFC 9293 3.3.1 send sequence space, 3.10.7.4 ACK processing and SND.WND update (SND.WL1/WL2),
// 3.8.6.2.1 sender SWS avoidance, 3.9.1 PSH; RFC 7323 2.3 window scaling, 3 timestamps, 4.1 RTTM;
// RFC 2018 SACK option processing; RFC 6298 3 (Karn) and 5.1-5.3 timer management. Every segment sent
// is a record in the retransmission queue (RetransmitQueue.cs), which loss detection (.Rack.cs) and
// recovery (.Congestion.cs) work on: there is no go-back-N pointer, SND.NXT only moves forward.
public sealed partial class TcpEndpoint
{
    /// <summary>RFC 7323 3.2: the timestamps option costs 12 bytes (10 + 2 NOPs) in every segment.</summary>
    private const int TimestampOptionBytes = 12;

    private SeqNumber _iss;
    private SeqNumber _sndUna;
    /// <summary>RFC 9293 SND.NXT: the next new sequence number (retransmissions never move it back).</summary>
    private SeqNumber _sndNxt;
    private SeqNumber _sndWl1;
    private SeqNumber _sndWl2;
    private int _sndWnd;
    private int _maxSndWnd;
    private readonly int _sndWndShift;
    private int _effMss;
    private ByteRing _sendRing = null!;
    private bool _finQueued;
    private bool _finAcked;
    private RttEstimator _rtt;

    /// <summary>The segments in flight, one record each (RetransmitQueue.cs).</summary>
    private readonly RetransmitQueue _rtx = new();

    /// <summary>The SACK blocks the previous ACK carried, already applied to the records (Linux recv_sack_cache).</summary>
    private readonly SackBlock[] _sackCache = new SackBlock[TcpOptionKind.MaxSackBlocks];
    private int _sackCacheCount;

    /// <summary>Transmission counter: each (re)transmission's place in the send order (RACK "sent after").</summary>
    private long _xmitCounter;

    /// <summary>Lowest sequence number a record waiting for retransmission may start at (a scan hint).</summary>
    private SeqNumber _lostLow;

    /// <summary>Last time a data segment left (CUBIC's idle-period correction, RFC 9438 5.8).</summary>
    private long _lastSendMs;

    /// <summary>The last send attempt stopped because of cwnd (not data or rwnd): Linux tp->is_cwnd_limited.</summary>
    private bool _cwndLimitedNow;

    public long BytesAcked { get; private set; }
    /// <summary>Segments sent again (RTO, fast retransmit, RACK, tail loss probes).</summary>
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
        _lostLow = _sndUna;
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

    /// <summary>Bytes sent and not yet cumulatively acknowledged (RFC 5681 FlightSize).</summary>
    private int FlightSize => _sndNxt - _sndUna;

    /// <summary>
    /// RFC 6675 pipe / Linux tcp_packets_in_flight, in bytes: what is in the network now. SACKed and lost
    /// segments have left it, retransmitted ones are in it again; without SACK, each duplicate ACK stands for
    /// one delivered segment (Linux tcp_add_reno_sack).
    /// </summary>
    private int Pipe => Math.Max(FlightSize - _rtx.SackedBytes - _rtx.LostBytes + _rtx.RetransBytes - _renoSackedBytes, 0);

    /// <summary>Our FIN went out (it sits past the queued data in sequence space).</summary>
    private bool FinSent => _finQueued && FlightSize > _sendRing.Count;

    /// <summary>
    /// RFC 9293 3.10.7.4 fifth check (ESTABLISHED and the states that share it), then loss detection and the
    /// congestion response to what the ACK told (the order of Linux tcp_ack: clean the retransmission queue,
    /// tag SACKs, RACK, recovery state, cwnd).
    /// </summary>
    private void ProcessAck(in TcpRepr seg, int payloadLength, long nowMs)
    {
        UpdateTsRecent(in seg, nowMs);
        _lastRttSampleMs = -1;
        SeqNumber ack = seg.Ack;
        int window = seg.Window << _sndWndShift; // RFC 7323 2.3
        int priorSacked = _rtx.SackedBytes + _renoSackedBytes;
        var delivery = new Delivery(_highestSacked);
        SeqNumber prevUna = _sndUna;
        int acked = 0;
        bool duplicate = false;

        if (ack > _sndUna)
        {
            // "If SND.UNA < SEG.ACK =< SND.NXT, then set SND.UNA <- SEG.ACK" and remove what it covers.
            acked = ack - _sndUna;
            int dataAcked = Math.Min(acked, _sendRing.Count);
            _sendRing.Consume(dataAcked);
            _sendRing.Rewind();    // TcpEndpoint.Memory.cs: an emptied ring restarts at its first page
            if (acked > dataAcked && _finQueued)
            {
                _finAcked = true;
            }

            _sndUna = ack;
            BytesAcked += dataAcked;
            _rtx.RemoveAcked(ack, ref delivery);
            _retransmits = 0;
            _persistBackoff = 0;
            RemoveRenoSacks(acked);
        }

        if (_sackEnabled && seg.Options.SackCount > 0)
        {
            ProcessSackBlocks(in seg, ref delivery);
        }

        if (acked == 0 && ack == _sndUna && _sndNxt > _sndUna && !_sackEnabled)
        {
            // RFC 5681 2 duplicate ACK (no data, no FIN, same window, data outstanding). A zero window is flow
            // control, not loss: those ACKs never count (the persist timer takes over). With SACK, RACK reads
            // the SACK blocks instead of counting.
            duplicate = window > 0 && payloadLength == 0 && (seg.Flags & TcpFlags.Fin) == 0 && window == _sndWnd;
        }

        if (acked > 0 || delivery.Count > 0)
        {
            SampleRtt(in seg, in delivery, acked > 0, nowMs);
            RackOnDelivered(in seg, in delivery, nowMs);
            if (acked > 0)
            {
                CheckEifel(in seg, prevUna, delivery.PriorFack);
                _highestSacked = SeqNumber.Max(_highestSacked, _sndUna);
            }
        }

        ProcessTlpAck(in seg, ack, acked > 0, delivery.Dsack, delivery.Count > 0);
        int delivered = acked + ((_rtx.SackedBytes + _renoSackedBytes) - priorSacked);
        if (duplicate)
        {
            delivered += OnRenoDuplicateAck();
        }

        OnAckCongestion(acked, delivered, nowMs);

        if (acked > 0)
        {
            // RFC 6298 (5.2) stop the timer when everything is acknowledged, (5.3) otherwise restart it;
            // RFC 8985 7.2: a loss probe may be scheduled instead.
            if (_sndUna == _sndNxt)
            {
                if (_timer.Kind is TcpTimerKind.Retransmit or TcpTimerKind.LossProbe)
                {
                    _timer.Stop();
                }

                _rackTimerAtMs = long.MaxValue;
            }
            else if (_timer.Kind != TcpTimerKind.Persist)
            {
                RestartRetransmitTimer(nowMs);
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

    /// <summary>
    /// RFC 6298 and Linux tcp_ack_update_rtt: the ACK timing of the oldest newly acknowledged segment when none
    /// of them was retransmitted (Karn), else of the newest newly SACKed original, else the timestamp echo
    /// (RFC 7323 4.1, valid for retransmissions too).
    /// </summary>
    private void SampleRtt(in TcpRepr seg, in Delivery delivery, bool ackAdvanced, long nowMs)
    {
        long rtt = -1;
        if (ackAdvanced && delivery.HasAckedOriginal && !delivery.AckedRetransmission)
        {
            rtt = nowMs - delivery.OldestAckedXmitMs;
        }
        else if (delivery.HasSackedOriginal)
        {
            rtt = nowMs - delivery.NewestSackedXmitMs;
        }
        else if (ackAdvanced && _tsEnabled && seg.Options.HasTimestamp && seg.Options.TsEcr != 0)
        {
            int tsRtt = unchecked((int)(CurrentTsVal(nowMs) - seg.Options.TsEcr));
            if (tsRtt >= 0 && tsRtt <= _config.MaxRtoMs)
            {
                rtt = tsRtt;
            }
        }

        if (rtt < 0)
        {
            return;
        }

        _rtt.Sample(rtt);
        UpdateMinRtt(rtt, nowMs);
        _lastRttSampleMs = rtt;
    }

    /// <summary>
    /// RFC 2018 / RFC 6675 2 (Linux tcp_sacktag_write_queue): marks the records SACK blocks within
    /// (SND.UNA, SND.NXT] cover. A D-SACK first block (RFC 2883) goes to spurious-retransmission detection
    /// instead. Blocks already processed on an earlier ACK are skipped (Linux's recv_sack_cache), so a long
    /// SACKed run costs nothing per ACK.
    /// </summary>
    private void ProcessSackBlocks(in TcpRepr seg, ref Delivery delivery)
    {
        int n = Math.Min((int)seg.Options.SackCount, 4);
        int first = 0;
        if (IsDsack(in seg))
        {
            SackBlock d = seg.Options.Sack[0];
            delivery.Dsack = true;
            delivery.DsackBlock = d;
            OnDsack(d, delivery.PriorFack);
            first = 1;
        }

        ReadOnlySpan<SackBlock> cache = _sackCache.AsSpan(0, _sackCacheCount);
        Span<SackBlock> applied = stackalloc SackBlock[TcpOptionKind.MaxSackBlocks];
        int appliedCount = 0;
        for (int i = first; i < n; i++)
        {
            SackBlock b = seg.Options.Sack[i];
            if (b.Right <= b.Left || b.Right > _sndNxt || b.Left < _sndUna - Math.Max(_maxSndWnd, 1))
            {
                continue; // bogus or ancient: ignore (hostile input never counts)
            }

            SeqNumber left = SeqNumber.Max(b.Left, _sndUna);
            SeqNumber right = b.Right;
            if (right <= left)
            {
                continue;
            }

            // The part of the block an earlier ACK already reported was applied then.
            SeqNumber skipLeft = right;
            SeqNumber skipRight = right;
            for (int c = 0; c < cache.Length; c++)
            {
                SackBlock old = cache[c];
                if (old.Left <= right && old.Right >= left && old.Right - old.Left > skipRight - skipLeft)
                {
                    skipLeft = SeqNumber.Max(old.Left, left);
                    skipRight = SeqNumber.Min(old.Right, right);
                }
            }

            TagSacked(left, right, skipLeft, skipRight, ref delivery);
            _highestSacked = SeqNumber.Max(_highestSacked, right);
            applied[appliedCount++] = new SackBlock(left, right);
        }

        applied[..appliedCount].CopyTo(_sackCache);
        _sackCacheCount = appliedCount;
    }

    /// <summary>Marks the records wholly inside [left, right) SACKed, jumping over [skipLeft, skipRight).</summary>
    private void TagSacked(SeqNumber left, SeqNumber right, SeqNumber skipLeft, SeqNumber skipRight, ref Delivery delivery)
    {
        int count = _rtx.Count;
        for (int i = _rtx.IndexAfter(left); i < count; i++)
        {
            ref TxRecord r = ref _rtx[i];
            if (r.Start >= right)
            {
                break;
            }

            if (r.Start >= skipLeft && r.End <= skipRight)
            {
                i = Math.Max(i, _rtx.IndexAfter(skipRight) - 1);
                continue;
            }

            if (r.Start >= left && SackedEnd(in r) <= right && !r.Is(TxFlags.Sacked))
            {
                delivery.Sacked(in r);
                _rtx.MarkSacked(i);
            }
        }
    }

    /// <summary>
    /// Where a SACK block must reach to cover the record. RFC 2018 3 reports "blocks of data": a receiver may
    /// leave our FIN out of the block for the last segment (ours does; Linux includes it), so a data-and-FIN
    /// record counts as SACKed once its data is. A FIN alone still needs its own sequence number covered.
    /// Without this, a tail loss probe of the FIN-carrying last segment is SACKed but never seen as
    /// delivered, and RACK cannot find the holes below it (RFC 8985 7).
    /// </summary>
    private SeqNumber SackedEnd(in TxRecord r)
        => FinSent && r.End == _sndNxt && r.Length > 1 ? r.End - 1 : r.End;

    /// <summary>
    /// What an ACK delivered, gathered while the queue is cleaned and SACKs are tagged: RACK's most recently
    /// sent delivered segment (RFC 8985 6.2 step 2), the RTT sample candidates, and reordering (step 3).
    /// </summary>
    private struct Delivery : IDeliveredVisitor
    {
        /// <summary>Highest SACKed sequence before this ACK (Linux prior_fack).</summary>
        public readonly SeqNumber PriorFack;
        public int Count;
        public long NewestXmitNumber;
        public long NewestXmitMs;
        public bool NewestEverRetrans;
        /// <summary>The newest delivered record was reported by a SACK block, not by the cumulative ACK.</summary>
        public bool NewestSacked;
        public bool HasAckedOriginal;
        public long OldestAckedXmitMs;
        public bool AckedRetransmission;
        public bool HasSackedOriginal;
        public long NewestSackedXmitMs;
        /// <summary>An original (never retransmitted) segment arrived below data already SACKed: reordering.</summary>
        public bool Reordered;
        public SeqNumber ReorderedLow;
        public bool Dsack;
        public SackBlock DsackBlock;

        public Delivery(SeqNumber priorFack)
        {
            this = default;
            PriorFack = priorFack;
            NewestXmitNumber = -1;
        }

        /// <summary>A record the cumulative ACK covered (and no SACK had reported).</summary>
        public void Delivered(in TxRecord r)
        {
            Note(in r, sacked: false);
            if (r.Is(TxFlags.EverRetrans))
            {
                AckedRetransmission = true;
            }
            else if (!HasAckedOriginal)
            {
                HasAckedOriginal = true;
                OldestAckedXmitMs = r.XmitMs;
            }
        }

        public void Sacked(in TxRecord r)
        {
            Note(in r, sacked: true);
            if (!r.Is(TxFlags.EverRetrans) && (!HasSackedOriginal || r.XmitMs > NewestSackedXmitMs))
            {
                HasSackedOriginal = true;
                NewestSackedXmitMs = r.XmitMs;
            }
        }

        private void Note(in TxRecord r, bool sacked)
        {
            Count++;
            if (r.XmitNumber > NewestXmitNumber)
            {
                NewestXmitNumber = r.XmitNumber;
                NewestXmitMs = r.XmitMs;
                NewestEverRetrans = r.Is(TxFlags.EverRetrans);
                NewestSacked = sacked;
            }

            // Linux tcp_check_sack_reordering: an original delivered below the highest SACKed sequence.
            if (!r.Is(TxFlags.EverRetrans) && r.Start < PriorFack && (!Reordered || r.Start < ReorderedLow))
            {
                Reordered = true;
                ReorderedLow = r.Start;
            }
        }
    }

    /// <summary>
    /// Emits everything due now: RST, retransmissions of lost segments, new data within min(cwnd, rwnd), a tail
    /// loss probe, FIN, window probes, ACKs.
    /// </summary>
    public void Dispatch<TSink>(ref TSink sink, long nowMs) where TSink : struct, ITcpSegmentSink, allows ref struct
    {
        if (_state != TcpState.Closed)
        {
            RunTimers(nowMs);
        }

        if (_rstPending)
        {
            // RFC 9293 3.10.5 ABORT / 3.8.3 R2: <SEQ=SND.NXT><CTL=RST>; ACK set so stacks accept it more readily.
            TcpRepr rst = BuildHeader(_sndNxt, TcpFlags.Rst | TcpFlags.Ack, nowMs);
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
        bool sentNew = false;
        if (_state is not TcpState.TimeWait)
        {
            // RFC 6675 5 (C) NextSeg rule 1 first (Linux tcp_xmit_retransmit_queue), then new data (rule 2).
            sent |= SendLost(ref sink, nowMs);
            while (TryPlanNewSegment(ignoreCwnd: false, out int len))
            {
                EmitNewData(ref sink, len, nowMs);
                sent = sentNew = true;
            }

            UpdateCwndLimited();
            if (_tlpPending)
            {
                sent |= SendLossProbe(ref sink, nowMs);
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
            if (!_ackNow)
            {
                _pingpong = false; // Linux tcp_delack_timer_handler: the answer did not come in time to carry the ACK
            }

            TcpRepr ackSeg = BuildHeader(_sndNxt, TcpFlags.Ack, nowMs);
            sink.Emit(in ackSeg, default, default);
            SegmentsSent++;
        }

        ArmTimers(nowMs, sentNew);
    }

    /// <summary>
    /// Retransmits the records marked lost, lowest first, while the pipe leaves room for a whole segment
    /// (RFC 6675 5 (C), with cwnd set by PRR during recovery) and the client's window covers it. The first one
    /// after a fast retransmit trigger goes regardless of cwnd (RFC 6675 5 (4.3), RFC 6582 3.2 (5)).
    /// </summary>
    private bool SendLost<TSink>(ref TSink sink, long nowMs) where TSink : struct, ITcpSegmentSink, allows ref struct
    {
        if (_rtx.LostPendingCount == 0)
        {
            _forceRetransmit = false;
            return false;
        }

        bool sent = false;
        int count = _rtx.Count;
        SeqNumber wndEnd = _sndUna + _sndWnd;
        int i = _rtx.IndexAfter(_lostLow);
        for (; i < count && _rtx.LostPendingCount > 0; i++)
        {
            ref TxRecord r = ref _rtx[i];
            if (!RetransmitQueue.NeedsRetransmission(in r))
            {
                continue;
            }

            if (_sndWnd == 0 || (r.End > wndEnd && r.Start != _sndUna))
            {
                break; // RFC 9293 3.8.6.1: the client's window; probes take over at zero
            }

            if (!_forceRetransmit && _cwnd - Pipe < Math.Min(r.Length, _effMss))
            {
                _cwndLimitedNow = true;
                break;
            }

            _forceRetransmit = false;
            RetransmitRecord(ref sink, i, nowMs, isLossProbe: false);
            sent = true;
        }

        _lostLow = i < count ? _rtx[i].Start : _sndNxt;
        return sent;
    }

    /// <summary>
    /// Decides whether a new segment goes out at SND.NXT and how long it is: within min(cwnd - pipe, rwnd)
    /// (RFC 5681 2, RFC 6675 5, RFC 9293 3.8.6), sender SWS avoidance (RFC 9293 3.8.6.2.1) without Nagle's
    /// delay for the last piece (PSH at the end of the queued data keeps HTTP latency low), FIN after the
    /// data (RFC 9293 3.10.4). A tail loss probe may ignore cwnd (RFC 8985 7.3).
    /// </summary>
    private bool TryPlanNewSegment(bool ignoreCwnd, out int len)
    {
        len = 0;
        if (_state is TcpState.Closed or TcpState.TimeWait || _rtx.IsFull)
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

        int flight = Pipe;
        int rwndRoom = _sndUna + _sndWnd - _sndNxt;
        int cwndRoom = ignoreCwnd ? int.MaxValue : _cwnd - flight;
        int usable = Math.Min(rwndRoom, cwndRoom);
        int mss = _effMss - SackOptionBytes;
        int maxLen = SegmentOffloadBytes > mss ? Math.Min(SegmentOffloadBytes / mss, TcpSuperFrame.MaxSegments) * mss : mss;
        len = Math.Min(Math.Min(maxLen, unsent), usable);
        if (cwndRoom < Math.Min(Math.Min(maxLen, unsent), rwndRoom))
        {
            _cwndLimitedNow = true;
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

        if (len < mss && len < unsent && FlightSize > 0 && len < _maxSndWnd / 2)
        {
            // RFC 9293 3.8.6.2.1: a window-limited runt waits while data is in flight (the ACK will bring a
            // bigger window); with nothing in flight it goes out so we never deadlock on a small window.
            return false;
        }

        return true;
    }

    /// <summary>New data at SND.NXT: one segment (or super-segment), one retransmission-queue record per wire segment.</summary>
    private void EmitNewData<TSink>(ref TSink sink, int len, long nowMs) where TSink : struct, ITcpSegmentSink, allows ref struct
    {
        if (FlightSize == 0 && _lastSendMs != 0)
        {
            OnTransmitAfterIdle(nowMs - _lastSendMs);
        }

        SeqNumber seq = _sndNxt;
        SeqNumber end = EmitSegment(ref sink, seq, len, allowFin: true, nowMs);
        SeqNumber dataEnd = seq + len;
        int cut = EmitSegmentSize;
        SeqNumber s = seq;
        while (s < end)
        {
            SeqNumber e = SeqNumber.Min(s + cut, dataEnd);
            if (e >= dataEnd)
            {
                e = end; // the last piece carries the FIN, if any
            }

            _rtx.Append(s, e, nowMs, _xmitCounter++);
            s = e;
        }

        _sndNxt = end;
        _lastSendMs = nowMs;
        if (_inRecovery)
        {
            _prrOut += end - seq;
        }
    }

    /// <summary>Sends record <paramref name="index"/> again (one MSS per segment, in as many as it takes).</summary>
    private void RetransmitRecord<TSink>(ref TSink sink, int index, long nowMs, bool isLossProbe)
        where TSink : struct, ITcpSegmentSink, allows ref struct
    {
        ref TxRecord r = ref _rtx[index];
        SeqNumber start = r.Start;
        SeqNumber end = r.End;
        bool allowFin = FinSent;
        SeqNumber dataEnd = SeqNumber.Min(end, _sndUna + _sendRing.Count);
        SeqNumber seq = start;
        do
        {
            int mss = _effMss - SackOptionBytes;
            seq = EmitSegment(ref sink, seq, Math.Min(mss, Math.Max(dataEnd - seq, 0)), allowFin, nowMs);
            Retransmissions++;
        }
        while (seq < end);

        _rtx.MarkRetransmitted(index, nowMs, _xmitCounter++);
        _lastSendMs = nowMs;
        OnRetransmitted(end, nowMs, countForUndo: !isLossProbe);
        if (_inRecovery)
        {
            _prrOut += end - start;
        }
    }

    /// <summary>
    /// Emits one segment starting at <paramref name="seq"/> with up to <paramref name="maxLen"/> bytes
    /// (plus FIN when it reaches the end of the queued data, CloseSend was called and FIN may go). Returns its end.
    /// </summary>
    private SeqNumber EmitSegment<TSink>(ref TSink sink, SeqNumber seq, int maxLen, bool allowFin, long nowMs)
        where TSink : struct, ITcpSegmentSink, allows ref struct
    {
        int offset = seq - _sndUna;
        int len = Math.Max(Math.Min(maxLen, _sendRing.Count - offset), 0);
        bool fin = allowFin && _finQueued && offset + len == _sendRing.Count;
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
        if (len > 0)
        {
            OnDataSent(nowMs);
        }

        return seq + (len + (fin ? 1 : 0));
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

        OnAckSent();
        _lastAckSent = _rcvNxt;
        return r;
    }
}
