// TEMPORARY STUB — written by the `splice` helper only so the backend splice compiles and its tests run.
// The real TcpEndpoint (TcpEndpoint.*.cs, another helper's branch) replaces it: DELETE THIS FILE WHEN MERGING.
// It implements exactly the commented public API of TcpEndpoint.Api.cs and nothing more; nothing may
// depend on anything else in here. It is a loss-free toy: no retransmission, no congestion control,
// no reassembly, no timers (NextDeadlineMs is always long.MaxValue).
using CookieProxy.Wire;

namespace CookieProxy.Tcp;

public sealed partial class TcpEndpoint
{
    private readonly TcpConfig _config;
    private readonly TcpHandshake _handshake;

    private readonly byte[] _receiveBuffer;
    private int _receiveCount;
    private SeqNumber _rcvNxt;
    private bool _finReceived;

    private readonly byte[] _sendBuffer;
    private int _sendCount;        // bytes in _sendBuffer, from SND.UNA on
    private SeqNumber _sndUna;
    private SeqNumber _sndNxt;
    private long _sndWnd;
    private bool _closeSendRequested;
    private bool _finSent;
    private bool _finAcked;

    private bool _ackPending;
    private bool _rstPending;
    private TcpState _state;

    public TcpEndpoint(TcpConfig config, in TcpHandshake handshake, long nowMs)
    {
        _ = nowMs;
        _config = config;
        _handshake = handshake;
        _receiveBuffer = new byte[config.ReceiveBufferSize];
        _sendBuffer = new byte[config.SendBufferSize];
        _rcvNxt = handshake.Irs + 1;
        _sndUna = handshake.Iss + 1;
        _sndNxt = _sndUna;
        _sndWnd = (long)handshake.InitialWindow << Math.Max((int)handshake.SendWindowScale, 0);
        _state = TcpState.Established;
    }

    public TcpState State => _state;
    public TcpCloseReason CloseReason { get; private set; }
    public bool IsClosed => _state == TcpState.Closed;
    public long NextDeadlineMs => long.MaxValue;

    public int SendBufferFree => _closeSendRequested || _state == TcpState.Closed ? 0 : _sendBuffer.Length - _sendCount;
    public int ReceiveAvailable => _receiveCount;
    public bool ReceiveFinished => _finReceived && _receiveCount == 0;

    public void Process(in TcpRepr segment, ReadOnlySpan<byte> payload, long nowMs)
    {
        _ = nowMs;
        if (_state == TcpState.Closed)
        {
            return;
        }
        if ((segment.Flags & TcpFlags.Rst) != 0)
        {
            Close(TcpCloseReason.ResetByClient);
            return;
        }
        if ((segment.Flags & TcpFlags.Ack) != 0)
        {
            int acked = segment.Ack - _sndUna;
            int inFlight = _sndNxt - _sndUna;
            if (acked > 0 && acked <= inFlight)
            {
                int dataAcked = Math.Min(acked, _sendCount);
                Buffer.BlockCopy(_sendBuffer, dataAcked, _sendBuffer, 0, _sendCount - dataAcked);
                _sendCount -= dataAcked;
                _sndUna = segment.Ack;
                if (_finSent && _sndUna == _sndNxt)
                {
                    _finAcked = true;
                }
            }
            _sndWnd = (long)segment.Window << Math.Max((int)_handshake.SendWindowScale, 0);
        }
        if (!payload.IsEmpty)
        {
            if (segment.Seq == _rcvNxt && !_finReceived)
            {
                int take = Math.Min(payload.Length, _receiveBuffer.Length - _receiveCount);
                payload[..take].CopyTo(_receiveBuffer.AsSpan(_receiveCount));
                _receiveCount += take;
                _rcvNxt += take;
            }
            _ackPending = true;
        }
        if ((segment.Flags & TcpFlags.Fin) != 0 && segment.Seq + payload.Length == _rcvNxt && !_finReceived)
        {
            _finReceived = true;
            _rcvNxt += 1;
            _ackPending = true;
        }
        UpdateState();
    }

    public void Dispatch<TSink>(ref TSink sink, long nowMs) where TSink : struct, ITcpSegmentSink, allows ref struct
    {
        _ = nowMs;
        if (_state == TcpState.Closed)
        {
            return;
        }
        if (_rstPending)
        {
            TcpRepr rst = NewSegment(TcpFlags.Rst | TcpFlags.Ack);
            sink.Emit(rst, default, default);
            Close(TcpCloseReason.Aborted);
            return;
        }

        int mss = _handshake.SendMss == 0 ? 536 : _handshake.SendMss;
        while (true)
        {
            int sent = Math.Min(_sndNxt - _sndUna, _sendCount);
            int unsent = _sendCount - sent;
            long room = _sndWnd - (_sndNxt - _sndUna);
            int n = (int)Math.Min(Math.Min(unsent, mss), Math.Max(room, 0));
            if (n <= 0)
            {
                break;
            }
            TcpRepr data = NewSegment(TcpFlags.Ack | TcpFlags.Psh);
            sink.Emit(data, _sendBuffer.AsSpan(sent, n), default);
            _sndNxt += n;
            _ackPending = false;
        }

        if (_closeSendRequested && !_finSent && (_sndNxt - _sndUna) == _sendCount)
        {
            TcpRepr fin = NewSegment(TcpFlags.Fin | TcpFlags.Ack);
            sink.Emit(fin, default, default);
            _sndNxt += 1;
            _finSent = true;
            _ackPending = false;
        }
        else if (_ackPending)
        {
            TcpRepr ack = NewSegment(TcpFlags.Ack);
            sink.Emit(ack, default, default);
            _ackPending = false;
        }
        UpdateState();
    }

    public int Send(ReadOnlySpan<byte> data)
    {
        int take = Math.Min(data.Length, SendBufferFree);
        data[..take].CopyTo(_sendBuffer.AsSpan(_sendCount));
        _sendCount += take;
        return take;
    }

    public void CloseSend() => _closeSendRequested = true;

    public void Abort()
    {
        if (_state != TcpState.Closed)
        {
            _rstPending = true;
            _receiveCount = 0;
            _sendCount = 0;
        }
    }

    public void PeekReceived(out ReadOnlySpan<byte> head, out ReadOnlySpan<byte> tail)
    {
        head = _receiveBuffer.AsSpan(0, _receiveCount);
        tail = default;
    }

    public void ConsumeReceived(int count)
    {
        Buffer.BlockCopy(_receiveBuffer, count, _receiveBuffer, 0, _receiveCount - count);
        _receiveCount -= count;
        _ackPending = true;    // window update
    }

    private TcpRepr NewSegment(TcpFlags flags)
    {
        int shift = Math.Max((int)_handshake.RecvWindowScale, 0);
        int window = (_receiveBuffer.Length - _receiveCount) >> shift;
        return new TcpRepr
        {
            Seq = _sndNxt,
            Ack = _rcvNxt,
            Flags = flags,
            Window = (ushort)Math.Min(window, ushort.MaxValue),
            Options = TcpOptionsRepr.None,
        };
    }

    private void UpdateState()
    {
        if (_state == TcpState.Closed)
        {
            return;
        }
        if (_finReceived && _finAcked)
        {
            Close(TcpCloseReason.Graceful);
        }
        else if (_finSent)
        {
            _state = _finReceived ? TcpState.LastAck : _finAcked ? TcpState.FinWait2 : TcpState.FinWait1;
        }
        else if (_finReceived)
        {
            _state = TcpState.CloseWait;
        }
    }

    private void Close(TcpCloseReason reason)
    {
        _state = TcpState.Closed;
        CloseReason = reason;
    }
}
