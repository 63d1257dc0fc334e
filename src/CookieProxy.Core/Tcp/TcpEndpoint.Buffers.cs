using System.Diagnostics;

namespace CookieProxy.Tcp;

// Buffer lifetime: the receive and send rings come from the host's RingBufferPool (or are allocated) when the
// endpoint starts, and go back as soon as the connection can no longer use them, at the latest in ReleaseBuffers.
public sealed partial class TcpEndpoint
{
    /// <summary>
    /// The flow is done: the endpoint is CLOSED for good and both rings' arrays go back to the pool. A live
    /// connection is dropped silently (call <see cref="Abort"/> and Dispatch first to reset the client; an RST
    /// already pending still goes out on the next Dispatch). Afterwards nothing is buffered:
    /// <see cref="ReceiveAvailable"/> and <see cref="SendBufferFree"/> are 0, <see cref="Send"/> takes nothing,
    /// and committing or consuming bytes throws. State, CloseReason and the counters stay readable. Idempotent.
    /// </summary>
    public void ReleaseBuffers()
    {
        if (_state != TcpState.Closed)
        {
            Terminate(TcpCloseReason.Aborted, sendRst: false);
        }

        _recvRing.Release();
        _sendRing.Release();
        _rtx.Clear();
    }

    /// <summary>The send buffer's size now: <see cref="TcpConfig.SendBufferSize"/>, more once autotuning grew it, 0 once released.</summary>
    public int SendBufferCapacity => _sendRing.Capacity;

    /// <summary>
    /// Send buffer autotuning. The host calls this when the send buffer is full and the backend has more to
    /// give: a fixed buffer caps the bytes in flight, so throughput stops at size / RTT (256 KiB over the
    /// ~1 ms the lab's veth round trip takes is ~230 MiB/s, with the CPU not saturated). Like Linux's
    /// tcp_sndbuf_expand (tcp_input.c) the target is twice the window we may actually use, min(cwnd, the
    /// largest window the client offered): one window in flight and one queued behind it, so the buffer
    /// refills while the previous window is being acknowledged. Linux expands only when not cwnd-limited
    /// and not in recovery (tcp_should_expand_sndbuf); the caller's "full" check stands for the first, and
    /// during loss recovery we keep the size. The capacity doubles until it covers the target (few copies
    /// per flow, none per packet; the host's pool keeps the grown arrays for the next bulk flow), never
    /// beyond <paramref name="maxCapacity"/> or <see cref="TcpConfig.MaxSendBufferSize"/>. Returns the bytes
    /// added; 0 when it stays as it is.
    /// </summary>
    /// <param name="maxCapacity">The most the host's memory budget allows this flow's send buffer to hold.</param>
    public int ExpandSendBuffer(int maxCapacity)
    {
        int capacity = _sendRing.Capacity;
        if (!SendOpen || _inRecovery || capacity == 0)
        {
            return 0;
        }

        long limit = Math.Min(maxCapacity, Math.Max(_config.MaxSendBufferSize, _config.SendBufferSize));
        long target = Math.Min(2L * Math.Min(_cwnd, _maxSndWnd), limit);
        if (target <= capacity)
        {
            return 0;
        }

        long grown = capacity;
        while (grown < target)
        {
            grown *= 2;
        }

        int newCapacity = (int)Math.Min(grown, limit);
        _sendRing.Grow(newCapacity, _bufferPool);
        return newCapacity - capacity;
    }

    private ByteRing NewRing(int capacity) =>
        _bufferPool is { } pool && pool.ArrayLength == capacity ? new ByteRing(pool) : new ByteRing(capacity);

    /// <summary>
    /// TIME-WAIT and CLOSED neither send data (our FIN was acknowledged, or Terminate discarded the queue) nor
    /// accept any (RFC 9293 3.10.7.4 processes text only up to the FIN), so the rings can go back before the
    /// flow is removed: a TIME-WAIT flow would otherwise hold both for 2 MSL. Received bytes the backend has
    /// not taken yet keep their ring until <see cref="ConsumeReceived"/> empties it.
    /// </summary>
    private void ReleaseIdleRings()
    {
        Debug.Assert(_state is TcpState.TimeWait or TcpState.Closed);
        Debug.Assert(_sendRing.Count == 0, "Unacknowledged data in TIME-WAIT, or a CLOSED queue not discarded.");
        _sendRing.Release();
        _rtx.Clear(); // nothing is in flight once our FIN is acknowledged (or the queue was discarded)
        if (_recvRing.Count == 0)
        {
            _recvRing.Release();
        }
    }
}
