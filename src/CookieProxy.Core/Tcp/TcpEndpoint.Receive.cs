using CookieProxy.Wire;

namespace CookieProxy.Tcp;

// Receive side: RFC 9293 3.3.1 receive sequence space, 3.10.7.4 acceptability and text processing,
// 3.8.6.2.2 receiver SWS avoidance, 3.8.6.3 delayed ACKs; RFC 5681 4.2 ACK generation; RFC 2018 SACK
// generation; RFC 7323 2.4 window scaling (never shrink the right edge), 4.3 TS.Recent.
public sealed partial class TcpEndpoint
{
    private SeqNumber _irs;
    private SeqNumber _rcvNxt;
    /// <summary>RCV.NXT + RCV.WND as last advertised; never moves left (RFC 9293 3.8.6.2.2, RFC 7323 2.4).</summary>
    private SeqNumber _rcvAdvEdge;
    /// <summary>Last.ACK.sent of RFC 7323 4.3.</summary>
    private SeqNumber _lastAckSent;
    private readonly int _rcvWndShift;
    private ByteRing _recvRing = null!;
    /// <summary>Out-of-order ranges beyond RCV.NXT; their bytes already sit in <see cref="_recvRing"/>.</summary>
    private SeqRangeSet _ooo = null!;
    private bool _finReceived;
    private bool _oooFinValid;
    private SeqNumber _oooFinSeq;
    /// <summary>RFC 2883: a duplicate segment to report as the first SACK block of the next ACK (once).</summary>
    private bool _dsackPending;
    private SackBlock _dsack;

    // Timestamps (RFC 7323 3, 4.3)
    private readonly bool _tsEnabled;
    private uint _tsRecent;
    private readonly uint _localTsInitial;
    private readonly bool _sackEnabled;

    // ACK scheduling (RFC 9293 3.8.6.3, RFC 5681 4.2) with Linux's quick ACK and interactive (pingpong) modes.
    private bool _ackNow;
    private bool _ackDelayed;
    private long _delayedAckAtMs;
    private int _segmentsSinceAck;
    /// <summary>ACKs still to send at once for every data segment (Linux icsk_ack.quick).</summary>
    private int _quickAcks;
    /// <summary>Request/response traffic: our data answers the client's, so ACKs wait to ride on it (Linux pingpong).</summary>
    private bool _pingpong;
    private bool _dataReceived;
    private long _lastDataRecvMs;
    private long _tsRecentStampMs;

    /// <summary>Linux TCP_MAX_QUICKACKS.</summary>
    private const int MaxQuickAcks = 16;

    public long BytesReceived { get; private set; }
    /// <summary>Segments dropped by PAWS (RFC 7323 5).</summary>
    public long PawsRejected { get; private set; }
    /// <summary>Out-of-order segments dropped because the reassembly map was full.</summary>
    public long OutOfOrderDropped { get; private set; }
    /// <summary>Segments that went out advertising a zero window (backend not reading).</summary>
    public long ZeroWindowsAdvertised { get; private set; }

    /// <summary>In-order client bytes not yet taken by the backend.</summary>
    public int ReceiveAvailable => _recvRing.Count;

    /// <summary>The client sent FIN and every byte before it has been consumed.</summary>
    public bool ReceiveFinished => _finReceived && _recvRing.Count == 0;

    /// <summary>RCV.NXT (for tests and diagnostics).</summary>
    public SeqNumber ReceiveNext => _rcvNxt;

    /// <summary>The two contiguous pieces of the in-order receive data, without copying.</summary>
    public void PeekReceived(out ReadOnlySpan<byte> head, out ReadOnlySpan<byte> tail)
        => _recvRing.Peek(0, _recvRing.Count, out head, out tail);

    /// <summary>Marks <paramref name="count"/> received bytes as taken; sends a window update when worthwhile.</summary>
    public void ConsumeReceived(int count)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(count);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(count, _recvRing.Count);
        if (count == 0)
        {
            return;
        }

        _recvRing.Consume(count);
        if (_ooo.Count == 0)
        {
            _recvRing.Rewind();    // TcpEndpoint.Memory.cs: an emptied ring restarts at its first page
        }

        if (_state is TcpState.TimeWait or TcpState.Closed)
        {
            if (_recvRing.Count == 0)
            {
                _recvRing.Release(); // the last bytes a finished connection held (see ReleaseIdleRings)
            }
        }
        else if (_state is TcpState.Established or TcpState.FinWait1 or TcpState.FinWait2)
        {
            // Window update (RFC 9293 3.8.6.2.2): once the right edge can move by at least the SWS threshold
            // and the new window is at least twice what the client still has (Linux's rule), or the
            // advertised window was zero: the client would otherwise stall until its persist timer.
            int remaining = ReceiveWindowRemaining;
            int candidate = Math.Min(Math.Min(_recvRing.Free, ReceiveWindowLimit), ushort.MaxValue << _rcvWndShift);
            if (candidate - remaining >= SwsThreshold && (remaining == 0 || candidate >= 2 * remaining))
            {
                _ackNow = true;
            }
        }
    }

    /// <summary>RCV.WND as last advertised: what remains of it after the data that arrived since.</summary>
    private int ReceiveWindowRemaining => Math.Max(_rcvAdvEdge - _rcvNxt, 0);

    /// <summary>RFC 9293 3.8.6.2.2: move the right edge only by min(RCV.BUFF / 2, Eff.MSS) or more.</summary>
    private int SwsThreshold => Math.Max(Math.Min(_recvRing.Capacity / 2, (int)_config.LocalMss), 1);

    private void InitReceive(in TcpHandshake handshake)
    {
        _irs = handshake.Irs;
        _rcvNxt = handshake.Irs + 1;
        _lastAckSent = _rcvNxt;
        _tsRecentStampMs = _createdMs;
        _recvRing = NewRing(_config.ReceiveBufferSize);
        _ooo = new SeqRangeSet(_config.MaxOutOfOrderSegments);
        // The SYN+ACK's window is never scaled (RFC 7323 2.2), so the client may only assume 64 KiB for now.
        _rcvAdvEdge = _rcvNxt + Math.Min(_config.ReceiveBufferSize, ushort.MaxValue);
    }

    /// <summary>RFC 9293 3.10.7.4, first check: the four-case segment acceptability test.</summary>
    private bool IsAcceptable(SeqNumber seq, int segLen)
    {
        uint wnd = (uint)ReceiveWindowRemaining;
        if (segLen == 0)
        {
            // RCV.NXT =< SEG.SEQ < RCV.NXT + RCV.WND, relaxed like Linux (tcp_sequence) to admit SEG.SEQ at the
            // right edge: a peer whose data filled our window sends its ACKs from there.
            return seq.InWindow(_rcvNxt, wnd + 1);
        }

        if (wnd == 0)
        {
            return false;
        }

        return seq.InWindow(_rcvNxt, wnd) || (seq + (segLen - 1)).InWindow(_rcvNxt, wnd);
    }

    /// <summary>RFC 9293 3.10.7.4 seventh and eighth checks: segment text, then FIN.</summary>
    private void ProcessTextAndFin(in TcpRepr seg, ReadOnlySpan<byte> payload, long nowMs)
    {
        bool fin = (seg.Flags & TcpFlags.Fin) != 0;
        if ((payload.Length == 0 && !fin) || _finReceived)
        {
            return;
        }

        // Trim what we already have on the left ...
        SeqNumber start = seg.Seq;
        if (start < _rcvNxt)
        {
            if (payload.Length > 0)
            {
                SetDsack(start, SeqNumber.Min(start + payload.Length, _rcvNxt)); // RFC 2883 4.1.1: partly duplicate
            }

            int skip = Math.Min(_rcvNxt - start, payload.Length);
            payload = payload[skip..];
            start += skip;
        }

        // ... and what lies beyond the advertised window or the buffer on the right (a trimmed FIN is not yet ours).
        SeqNumber limit = SeqNumber.Min(_rcvAdvEdge, _rcvNxt + _recvRing.Free);
        int room = Math.Max(limit - start, 0);
        if (payload.Length > room)
        {
            payload = payload[..room];
            fin = false;
        }

        if (start == _rcvNxt)
        {
            if (payload.Length > 0)
            {
                _recvRing.WriteAt(_recvRing.Count, payload);
                _recvRing.Commit(payload.Length);
                _rcvNxt += payload.Length;
                BytesReceived += payload.Length;
            }

            if (fin)
            {
                // hostile (fuzz finding): the FIN ends the stream here; bytes held beyond it are not the client's
                // stream and must never reach the backend nor be acknowledged (Linux tcp_fin purges the
                // out-of-order queue).
                _ooo.Clear();
            }
            else if (_ooo.Count > 0)
            {
                if (_oooFinValid && _rcvNxt > _oooFinSeq)
                {
                    _oooFinValid = false;   // hostile: in-order data past a held FIN (Linux tcp_ofo_queue drops the covered FIN segment)
                }

                // The hole (partly) filled: merge what reassembly held and ACK at once (RFC 5681 4.2).
                SeqNumber next = _ooo.AdvanceFrom(_rcvNxt);
                if (_oooFinValid && next > _oooFinSeq)
                {
                    next = _oooFinSeq;  // hostile: never merge past a FIN held out of order
                    _ooo.Clear();
                }

                int filled = next - _rcvNxt;
                _recvRing.Commit(filled);
                BytesReceived += filled;
                _rcvNxt = next;
                _ackNow = true;
            }

            if (fin || (_oooFinValid && _rcvNxt == _oooFinSeq))
            {
                FinReached(nowMs);
            }
            else if (payload.Length > 0)
            {
                ScheduleAck(nowMs);
            }
        }
        else
        {
            // Out of order: keep it (bounded) and send an immediate duplicate ACK (RFC 5681 4.2, RFC 9293 3.10.7.4).
            _ackNow = true;
            EnterQuickAckMode();
            if (payload.Length > 0)
            {
                int held = _ooo.IndexContaining(start);
                if (held >= 0 && _ooo.Right(held) >= start + payload.Length)
                {
                    SetDsack(start, start + payload.Length); // RFC 2883 4.1.2: a duplicate of out-of-order data
                }

                if (_ooo.Add(start, start + payload.Length) < 0)
                {
                    OutOfOrderDropped++;
                    return;
                }

                _recvRing.WriteAt(_recvRing.Count + (start - _rcvNxt), payload);
            }

            if (fin)
            {
                _oooFinValid = true;
                _oooFinSeq = start + payload.Length;
            }
        }
    }

    /// <summary>
    /// RFC 2883 (receiver side): remember a duplicate [left, right) for the first SACK block of the next ACK,
    /// sent at once, so the sender can tell reordering and spurious retransmissions from loss.
    /// </summary>
    private void SetDsack(SeqNumber left, SeqNumber right)
    {
        if (!_sackEnabled || right <= left)
        {
            return;
        }

        _dsack = new SackBlock(left, right);
        _dsackPending = true;
        _ackNow = true;
    }

    private void FinReached(long nowMs)
    {
        // RFC 9293 3.10.7.4 eighth check: advance RCV.NXT over the FIN and acknowledge it.
        _rcvNxt += 1;
        _finReceived = true;
        _oooFinValid = false;
        _ackNow = true;
        OnFinReceived(nowMs);
    }

    /// <summary>
    /// Delayed ACK (RFC 9293 3.8.6.3, RFC 5681 4.2): ACK at least every second segment, otherwise within
    /// DelayedAckMs; but every segment at once in quick ACK mode (Linux tcp_in_quickack_mode): at the start
    /// of the client's data and after an idle gap longer than the RTO, so the client's slow start is clocked
    /// by one ACK per segment, and unless the exchange is interactive (our answer carries the ACK).
    /// </summary>
    private void ScheduleAck(long nowMs)
    {
        // Linux tcp_event_data_recv: the first data, or data after a silence longer than the RTO, restarts quick ACKs.
        if (!_dataReceived || nowMs - _lastDataRecvMs > _rtt.RtoMs)
        {
            IncreaseQuickAcks();
        }

        _dataReceived = true;
        _lastDataRecvMs = nowMs;
        _segmentsSinceAck++;
        if (InQuickAckMode || _segmentsSinceAck >= 2 || _config.DelayedAckMs <= 0)
        {
            _ackNow = true;
        }
        else if (!_ackDelayed)
        {
            _ackDelayed = true;
            _delayedAckAtMs = nowMs + _config.DelayedAckMs;
        }
    }

    /// <summary>Quick ACK mode: every data segment is acknowledged at once (Linux tcp_in_quickack_mode).</summary>
    private bool InQuickAckMode => _quickAcks > 0 && !_pingpong;

    /// <summary>Linux tcp_incr_quickack: up to half the receive window in segments, at least 2, at most 16.</summary>
    private void IncreaseQuickAcks()
    {
        int quick = Math.Clamp(_recvRing.Capacity / (2 * Math.Max((int)_config.LocalMss, 1)), 2, MaxQuickAcks);
        _quickAcks = Math.Max(_quickAcks, quick);
    }

    /// <summary>Linux tcp_enter_quickack_mode: a duplicate or out-of-order segment; the sender needs our ACKs now.</summary>
    private void EnterQuickAckMode()
    {
        IncreaseQuickAcks();
        _pingpong = false;
    }

    /// <summary>Linux tcp_event_ack_sent: a segment acknowledged what was pending.</summary>
    private void OnAckSent()
    {
        if (_quickAcks > 0 && (_segmentsSinceAck > 0 || _ackNow || _ackDelayed))
        {
            _quickAcks--; // Linux tcp_dec_quickack_mode
        }

        _ackNow = false;
        _ackDelayed = false;
        _segmentsSinceAck = 0;
    }

    /// <summary>
    /// Linux tcp_event_data_sent: our data leaving within the delayed-ACK time of the client's marks the
    /// exchange interactive, so the client's next request waits for our answer to carry the ACK.
    /// </summary>
    private void OnDataSent(long nowMs)
    {
        if (_dataReceived && nowMs - _lastDataRecvMs < Math.Max(_config.DelayedAckMs, 1))
        {
            _pingpong = true;
        }
    }

    /// <summary>RFC 7323 4.3: TS.Recent follows the segment that covers Last.ACK.sent.</summary>
    private void UpdateTsRecent(in TcpRepr seg, long nowMs)
    {
        if (_tsEnabled && seg.Options.HasTimestamp
            && unchecked((int)(seg.Options.TsVal - _tsRecent)) >= 0
            && seg.Seq <= _lastAckSent)
        {
            _tsRecent = seg.Options.TsVal;
            _tsRecentStampMs = nowMs;
        }
    }

    /// <summary>
    /// The window field for an outgoing segment: free receive buffer, receiver SWS avoidance, scaled by
    /// RecvWindowScale and rounded up so the right edge never moves left (RFC 7323 2.4).
    /// </summary>
    private ushort NextWindowField()
    {
        SeqNumber candidate = _rcvNxt + Math.Min(_recvRing.Free, ReceiveWindowLimit);    // the host's memory budget (TcpEndpoint.Memory.cs)
        SeqNumber edge = _rcvAdvEdge < _rcvNxt ? _rcvNxt : _rcvAdvEdge;
        if (candidate - edge >= SwsThreshold)
        {
            edge = candidate;
        }

        int wnd = edge - _rcvNxt;
        int shift = _rcvWndShift;
        int field = Math.Min((wnd + (1 << shift) - 1) >> shift, ushort.MaxValue);
        _rcvAdvEdge = SeqNumber.Max(_rcvAdvEdge, _rcvNxt + (field << shift));
        if (field == 0)
        {
            ZeroWindowsAdvertised++;
        }

        return (ushort)field;
    }
}
