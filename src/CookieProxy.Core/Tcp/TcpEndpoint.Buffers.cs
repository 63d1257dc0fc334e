namespace CookieProxy.Tcp;

// Buffer lifetime: the receive and send rings come from the host's RingBufferPool (or are allocated) when the
// endpoint starts, and go back in ReleaseBuffers.
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
}
