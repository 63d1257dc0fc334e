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
        if (_recvRing.Count == 0)
        {
            _recvRing.Release();
        }
    }
}
