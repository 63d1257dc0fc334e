namespace CookieProxy.Io;

/// <summary>
/// A raw Ethernet frame device: libpcap (portable) or an AF_PACKET ring (Linux fast path).
/// Owned by one capture thread; only <see cref="Wake"/> may be called from other threads.
/// </summary>
public interface IPacketDevice : IDisposable
{
    /// <summary>Interface name, e.g. "veth-srv".</summary>
    string Name { get; }

    /// <summary>Human-readable backend name for logs ("libpcap", "af_packet-v2, SYNs on their own ring").</summary>
    string Backend { get; }

    /// <summary>
    /// Clears <paramref name="batch"/>, then fills it with received frames. Waits at most
    /// <paramref name="timeoutMs"/> for the first frame (0 = poll, never block), and returns early
    /// when <see cref="Wake"/> is called. Returns the number of frames in the batch.
    /// </summary>
    int Receive(FrameBatch batch, int timeoutMs);

    /// <summary>Queues one frame for transmission. May send at once or at <see cref="Flush"/>. False if it was dropped.</summary>
    bool Send(ReadOnlySpan<byte> frame);

    /// <summary>Pushes queued frames to the wire (one syscall for the batch where the backend allows).</summary>
    void Flush();

    /// <summary>Makes a blocked <see cref="Receive"/> return soon. Thread-safe, cheap, idempotent.</summary>
    void Wake();

    /// <summary>Kernel-side statistics: frames received / dropped by the kernel or interface.</summary>
    DeviceStats GetStats();

    /// <summary>
    /// Also end a <see cref="Receive"/> wait when descriptor <paramref name="fd"/> becomes readable (the capture
    /// thread's backend readiness set); -1 removes it. Owner thread. False when the backend cannot wait on
    /// other descriptors; the caller then keeps its other wake-up path (<see cref="Wake"/>).
    /// </summary>
    bool TrySetAuxiliaryWaitFd(int fd) => false;

    /// <summary>
    /// Replaces the capture filter while the device runs, atomically (a reload that adds a listener): the pcap text
    /// <paramref name="filter"/>, built from <paramref name="endpoints"/> (a device with more than one filter, such as
    /// AF_PACKET's SYN and flow rings, builds its own from the endpoints). Owner thread or before the loop starts.
    /// False when the backend cannot (the caller refuses the change); throws only for a filter that does not compile.
    /// </summary>
    bool TryReplaceFilter(string filter, IReadOnlyList<System.Net.IPEndPoint> endpoints) => false;

    /// <summary>
    /// Largest frame <see cref="ReserveOffloaded"/> hands out when the device finishes TCP checksums and cuts
    /// TCP super-frames into segments itself (Linux: PACKET_VNET_HDR, GSO/TSO); 0 when it cannot.
    /// </summary>
    int OffloadMaxFrameBytes => 0;

    /// <summary>
    /// Room for one offloaded frame of at most <paramref name="maxLength"/> bytes at the tail of the send queue,
    /// to build in place (no copy). Follow with <see cref="CommitOffloaded"/> before any other send call.
    /// May flush queued frames to make room. Only when <see cref="OffloadMaxFrameBytes"/> is non-zero.
    /// </summary>
    Span<byte> ReserveOffloaded(int maxLength) => throw new NotSupportedException($"{Backend} has no TX offload");

    /// <summary>Queues the frame built in the last <see cref="ReserveOffloaded"/> span (its first <paramref name="length"/> bytes).</summary>
    void CommitOffloaded(int length, in TxOffload offload) => throw new NotSupportedException($"{Backend} has no TX offload");
}

/// <param name="FlowRingDropped">Part of <paramref name="KernelDropped"/>: segments of live flows (not bare SYNs)
/// dropped because their own ring was full. Only devices that keep SYNs apart count it.</param>
public readonly record struct DeviceStats(long Received, long KernelDropped, long InterfaceDropped, long Sent, long SendFailed,
    long FlowRingDropped = 0);
