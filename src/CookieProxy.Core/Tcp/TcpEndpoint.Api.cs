using CookieProxy.Wire;

namespace CookieProxy.Tcp;

// CONTRACT FILE: the public surface of the client-facing TCP endpoint that the host (flow table,
// backend splice) programs against. The implementation lives in the other TcpEndpoint.*.cs partial files.
// Change a signature here only together with every caller.

/// <summary>What the cookie ACK told us: everything needed to start a connection in ESTABLISHED.</summary>
public struct TcpHandshake
{
    /// <summary>Client's initial sequence number (IRS): the ACK's SEG.SEQ - 1.</summary>
    public SeqNumber Irs;
    /// <summary>Our initial sequence number (ISS): the cookie, = the ACK's SEG.ACK - 1.</summary>
    public SeqNumber Iss;
    /// <summary>Largest segment the client accepts (decoded from the cookie, already clamped).</summary>
    public ushort SendMss;
    /// <summary>Shift the client applies to the windows it advertises; -1 = window scaling not negotiated.</summary>
    public sbyte SendWindowScale;
    /// <summary>Shift we announced in our SYN+ACK; -1 = not negotiated (then both must be -1, RFC 7323 2.2).</summary>
    public sbyte RecvWindowScale;
    public bool SackPermitted;
    /// <summary>RFC 7323: timestamps negotiated (the client offered them and the ACK carries them).</summary>
    public bool TimestampsEnabled;
    /// <summary>TS.Recent: the client's TSval from the cookie ACK.</summary>
    public uint TsRecent;
    /// <summary>Our TSval in the SYN+ACK (echoed by the client as TSecr). Our later TSvals continue from it.</summary>
    public uint LocalTsInitial;
    /// <summary>The window field of the cookie ACK (unscaled).</summary>
    public ushort InitialWindow;
}

/// <summary>Knobs of one endpoint. Defaults suit a LAN/WAN web proxy.</summary>
public sealed class TcpConfig
{
    /// <summary>Bytes buffered from the client, not yet taken by the backend. Also the advertised window ceiling.</summary>
    public int ReceiveBufferSize { get; init; } = 256 * 1024;
    /// <summary>Bytes buffered from the backend, not yet acknowledged by the client.</summary>
    public int SendBufferSize { get; init; } = 256 * 1024;
    /// <summary>
    /// Ceiling for send buffer autotuning (<see cref="TcpEndpoint.ExpandSendBuffer"/>): a bulk flow's send
    /// buffer grows from <see cref="SendBufferSize"/> towards twice its window, up to this. Linux's
    /// tcp_wmem[2] default is the same 4 MiB. At or below SendBufferSize the buffer never grows.
    /// </summary>
    public int MaxSendBufferSize { get; init; } = 4 * 1024 * 1024;
    /// <summary>Our MSS (what we announced): largest segment we accept.</summary>
    public ushort LocalMss { get; init; } = 1460;
    public long MinRtoMs { get; init; } = 200;          // Linux uses 200 ms; RFC 6298 (2.4) says 1 s. Documented deviation.
    public long MaxRtoMs { get; init; } = 60_000;       // RFC 6298 (2.5)
    public long InitialRtoMs { get; init; } = 1_000;    // RFC 6298 (2.1)
    public long DelayedAckMs { get; init; } = 40;       // RFC 9293 3.8.6.3: < 500 ms
    public long TimeWaitMs { get; init; } = 2_000;      // compact TIME-WAIT (Linux: 60 s)
    public long IdleTimeoutMs { get; init; } = 300_000;
    /// <summary>Time allowed between the cookie ACK and the first client byte (0 = none).</summary>
    public long FirstDataTimeoutMs { get; init; } = 0;
    public int MaxRetransmits { get; init; } = 12;      // then the connection is aborted (RFC 9293 3.8.3 R2)
    /// <summary>Out-of-order segments held for reassembly (bounded).</summary>
    public int MaxOutOfOrderSegments { get; init; } = 64;
    public bool KeepAlive { get; init; }
    public long KeepAliveIdleMs { get; init; } = 120_000;
    /// <summary>The congestion controller: CUBIC (RFC 9438, Linux's default) or NewReno (RFC 5681, RFC 6582).</summary>
    public TcpCongestionControl CongestionControl { get; init; } = TcpCongestionControl.Cubic;
    /// <summary>HyStart++ (RFC 9406) ends the initial slow start on a rising RTT instead of a window of losses.</summary>
    public bool HyStartPlusPlus { get; init; } = true;
}

/// <summary>How cwnd grows and shrinks (loss recovery, RACK-TLP and PRR, is the same for both).</summary>
public enum TcpCongestionControl : byte
{
    /// <summary>RFC 5681 / RFC 6582: one segment per RTT in congestion avoidance, halve on loss.</summary>
    NewReno,
    /// <summary>RFC 9438: cubic growth around the last maximum, beta 0.7 on loss; Linux's default.</summary>
    Cubic,
}

public enum TcpState : byte
{
    Closed,
    Established,
    FinWait1,
    FinWait2,
    Closing,
    TimeWait,
    CloseWait,
    LastAck,
}

public enum TcpCloseReason : byte
{
    None,
    /// <summary>Both FINs exchanged and acknowledged.</summary>
    Graceful,
    /// <summary>The client sent an acceptable RST.</summary>
    ResetByClient,
    /// <summary>We sent RST because the backend failed / <see cref="TcpEndpoint.Abort"/>.</summary>
    Aborted,
    RetransmitLimit,
    IdleTimeout,
    FirstDataTimeout,
}

/// <summary>Receives the segments an endpoint wants sent. The payload may be split in two (ring buffer wrap).</summary>
public interface ITcpSegmentSink
{
    void Emit(in TcpRepr segment, ReadOnlySpan<byte> payloadHead, ReadOnlySpan<byte> payloadTail);
}

// public sealed partial class TcpEndpoint
// {
//     /// bufferPool: the host's per-thread pool of ring arrays (null = allocate them).
//     public TcpEndpoint(TcpConfig config, in TcpHandshake handshake, long nowMs, RingBufferPool? bufferPool = null);
//
//     public TcpState State { get; }
//     public TcpCloseReason CloseReason { get; }
//     /// True once the endpoint is CLOSED (or TIME-WAIT expired): the flow can be freed.
//     public bool IsClosed { get; }
//
//     // --- client side (sans-IO: segments in, segments out, time passed in) ---
//     /// A validated segment from the client (checksum already verified; payload = TCP payload).
//     public void Process(in TcpRepr segment, ReadOnlySpan<byte> payload, long nowMs);
//     /// Emits everything due now (ACKs, data within cwnd/rwnd, retransmissions, probes, FIN/RST) into the sink.
//     public void Dispatch<TSink>(ref TSink sink, long nowMs) where TSink : struct, ITcpSegmentSink, allows ref struct;
//     /// Earliest time Dispatch has timer work to do; long.MaxValue when none.
//     public long NextDeadlineMs { get; }
//
//     // --- backend side ---
//     /// Free space in the send buffer (backend -> client).
//     public int SendBufferFree { get; }
//     /// Appends backend bytes to the send buffer; returns how many were taken.
//     public int Send(ReadOnlySpan<byte> data);
//     /// The send buffer is full and the backend has more: grow it towards 2 x window (autotuning), at most to
//     /// maxCapacity (the host's memory budget). Returns the bytes added (0 = it stays).
//     public int ExpandSendBuffer(int maxCapacity);
//     /// Backend EOF: send FIN after all queued data (half-close, RFC 9293 3.6).
//     public void CloseSend();
//     /// Backend error: discard queues, RST to the client on the next Dispatch.
//     public void Abort();
//     /// In-order client bytes not yet taken by the backend.
//     public int ReceiveAvailable { get; }
//     /// The two contiguous pieces of the in-order receive data (ring buffer), without copying.
//     public void PeekReceived(out ReadOnlySpan<byte> head, out ReadOnlySpan<byte> tail);
//     /// Marks n received bytes as taken by the backend; opens the advertised window.
//     public void ConsumeReceived(int count);
//     /// The client sent FIN and every byte before it has been consumed.
//     public bool ReceiveFinished { get; }
//
//     // --- lifetime ---
//     /// The flow is done: CLOSED for good, ring arrays back to the pool; nothing is buffered afterwards.
//     public void ReleaseBuffers();
// }
