namespace CookieProxy.Tcp;

// Memory the endpoint holds, for the host's budget (the flow table's --max-buffer-mb). Linux keeps TCP memory
// under tcp_mem the same way: under pressure a socket's receive window stops growing (tcp_clamp_window) and
// buffers are pruned; we clamp the window the host grants, restart emptied rings at their first page, and give
// an idle flow's pages back. Touched is what counts: a ring's array is allocated whole, but only the pages it
// wrote are resident memory (the pool hands out zero pages and decommits what comes back).
public sealed partial class TcpEndpoint
{
    private int _receiveWindowLimit = int.MaxValue;

    /// <summary>
    /// The most RCV.WND may be opened to, from RCV.NXT: the host's memory budget for this flow (default: no limit
    /// but the buffer). A window already advertised is never taken back (RFC 7323 2.4); the limit only stops it
    /// from moving further right. Raising it so that a zero window can open again sends a window update.
    /// </summary>
    public int ReceiveWindowLimit
    {
        get => _receiveWindowLimit;
        set
        {
            int limit = Math.Max(value, 0);
            bool wasShut = Math.Min(_recvRing.Free, _receiveWindowLimit) - ReceiveWindowRemaining < SwsThreshold;
            _receiveWindowLimit = limit;
            bool opens = Math.Min(_recvRing.Free, limit) - ReceiveWindowRemaining >= SwsThreshold;
            if (wasShut && opens && ReceiveWindowRemaining == 0
                && _state is TcpState.Established or TcpState.FinWait1 or TcpState.FinWait2)
            {
                _ackNow = true;    // RFC 9293 3.8.6.2.2: the window update the client waits for (it would persist-probe otherwise)
            }
        }
    }

    /// <summary>RCV.WND as last advertised: what the client may still send without a new window from us.</summary>
    public int ReceiveWindowAdvertised => ReceiveWindowRemaining;

    /// <summary>
    /// Bytes of memory the endpoint's buffers may occupy as things stand: the receive ring's touched bytes once the
    /// advertised window is filled, plus the send ring's touched bytes. An upper bound on their resident pages.
    /// </summary>
    public long MemoryFootprint => _recvRing.TouchedAfter(ReceiveWindowRemaining) + _sendRing.Written;

    /// <summary>
    /// The largest receive window (from RCV.NXT) that adds at most <paramref name="extraBytes"/> to
    /// <see cref="MemoryFootprint"/>: for <see cref="ReceiveWindowLimit"/>. Never less than the window already
    /// advertised; unlimited once the ring's pages are all counted.
    /// </summary>
    public int ReceiveWindowWithin(long extraBytes)
    {
        long touched = _recvRing.TouchedAfter(ReceiveWindowRemaining);
        long extent = _recvRing.ExtentWithin(touched + Math.Max(0, extraBytes));
        return (int)Math.Clamp(extent, ReceiveWindowRemaining, int.MaxValue);
    }

    /// <summary>
    /// Send-buffer bytes the backend may write now while adding at most <paramref name="extraBytes"/> to
    /// <see cref="MemoryFootprint"/> (bytes landing in pages the ring already touched are free).
    /// </summary>
    public int SendSpaceWithin(long extraBytes)
    {
        long extent = _sendRing.ExtentWithin(_sendRing.Written + Math.Max(0, extraBytes));
        return (int)Math.Min(extent, SendBufferFree);
    }

    /// <summary>
    /// An idle connection gives the pages of its emptied rings back (they stay allocated and read zero): for the
    /// host under memory pressure, before it would evict the flow. Returns the bytes released.
    /// </summary>
    public long TrimBuffers()
    {
        long released = 0;
        if (_recvRing.Count == 0 && _ooo.Count == 0)
        {
            released += _recvRing.Trim();
        }

        if (_sendRing.Count == 0)
        {
            released += _sendRing.Trim();
        }

        return released;
    }
}
