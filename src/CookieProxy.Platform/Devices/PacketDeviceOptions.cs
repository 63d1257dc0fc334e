namespace CookieProxy.Platform;

/// <summary>The receive rings of an AF_PACKET device opened with the protected endpoints.</summary>
public enum ReceiveRings
{
    /// <summary>
    /// Bare SYNs on their own ring, every other segment on the flow ring, which is drained first, so a SYN flood
    /// that outruns the capture thread overflows only the SYN ring. Both TPACKET_V2: a frame is handed over and the
    /// capture thread woken as soon as it is written (no retire timer).
    /// </summary>
    Separate,

    /// <summary>As <see cref="Separate"/>, but the SYN ring is TPACKET_V3 blocks: fewer wake-ups while SYNs trickle
    /// in, and each SYN may wait up to the 1 ms block retire timer.</summary>
    SeparateSynBlocks,

    /// <summary>One TPACKET_V3 ring for every frame: each frame may wait up to the 1 ms block retire timer, and a
    /// flood that overflows it drops the segments of live flows as readily as SYNs.</summary>
    Single,
}

/// <summary>How the libpcap device sends its frames.</summary>
public enum PcapSendMode
{
    /// <summary>On Linux: queue the replies and send each batch with one sendmmsg on libpcap's own descriptor
    /// (<see cref="PacketTxQueue"/>). BSD/macOS BPF has no batch write: there this is <see cref="Inject"/>.</summary>
    Batch,

    /// <summary>One pcap_inject (one system call) per frame, as on BSD/macOS.</summary>
    Inject,
}

/// <summary>Tuning knobs shared by both backends. The defaults suit a proxy on one 1-10 GbE port.</summary>
public sealed record class PacketDeviceOptions
{
    public static PacketDeviceOptions Default { get; } = new();

    /// <summary>Bytes captured per frame. Larger frames arrive truncated and flagged <c>Truncated</c>.</summary>
    public int SnapLength { get; init; } = 65535;

    /// <summary>Accept frames not addressed to the interface's MAC. Off: the proxy owns the protected IP's MAC.</summary>
    public bool Promiscuous { get; init; }

    /// <summary>
    /// libpcap kernel buffer (pcap_set_buffer_size); the host passes <c>--ring-mb</c>. On Linux, in immediate mode,
    /// libpcap makes it a TPACKET_V2 ring of MTU-sized slots (~1.6 KiB each on a 1500-byte MTU: 32 MiB is ~20,000
    /// frames, ~170 ms of a 120 kpps flood while the capture thread is off the CPU).
    /// </summary>
    public int PcapBufferBytes { get; init; } = DefaultRingMegabytes << 20;

    /// <summary>How the libpcap device sends (<see cref="PcapSendMode"/>); <c>--pcap-send</c>.</summary>
    public PcapSendMode PcapSend { get; init; } = PcapSendMode.Batch;

    /// <summary>Ring block size (all rings): a multiple of the page size and of the frame size.</summary>
    /// <remarks>
    /// A TPACKET_V3 block is handed to us when full or after <see cref="RingRetireTimeoutMs"/>, so at low rates
    /// every millisecond uses up a block however few frames it holds: the block COUNT is how long the capture
    /// thread may be descheduled before the kernel drops (16 blocks = 16 ms lost frames on a loaded 2-core
    /// box in the lab). A TPACKET_V2 ring has a slot per frame instead: its slot count is the slack.
    /// </remarks>
    public int RingBlockSize { get; init; } = 128 << 10;

    /// <summary>Blocks of the SYN ring (or of the single ring); <c>--ring-mb</c>.</summary>
    public int RingBlockCount { get; init; } = RingBlocksFor(DefaultRingMegabytes);

    /// <summary>
    /// 32 MiB: with the single TPACKET_V3 ring, blocks are handed over after 1 ms however full, so under a flood of
    /// ~140k SYN/s each holds only ~140 frames and 256 blocks are ~250 ms of slack. In the flood lab 16 MiB lost
    /// frames at 60 kpps when the capture thread was briefly off the CPU; 32 MiB did not (docs/bench/README.md).
    /// As the SYN ring (256-byte slots) it holds 131072 SYNs.
    /// </summary>
    public const int DefaultRingMegabytes = 32;

    /// <summary>Blocks of <see cref="RingBlockSize"/> (the default 128 KiB) in a ring of <paramref name="megabytes"/> MiB.</summary>
    public static int RingBlocksFor(int megabytes) => Math.Max(1, checked(megabytes * 8));

    /// <summary>tp_frame_size: in V3 only the ring geometry, frames are packed variably inside a block.</summary>
    public int RingFrameSize { get; init; } = 2048;

    /// <summary>How AF_PACKET receives when opened with the protected endpoints (<see cref="ReceiveRings"/>).</summary>
    public ReceiveRings Rings { get; init; } = ReceiveRings.Separate;

    /// <summary>
    /// SYN-ring slot (TPACKET_V2): the 52-byte header, padding to align the IP header (the frame starts 66 bytes in),
    /// then 190 bytes: a bare SYN with the longest IPv4 and TCP options is 134. A SYN carrying data arrives
    /// truncated and flagged, which the responder does not need.
    /// </summary>
    public int SynRingFrameSize { get; init; } = 256;

    /// <summary>Flow-ring slot (TPACKET_V2): an MTU-sized frame. Longer ones (GRO, jumbo) are queued whole on the
    /// socket too (PACKET_COPY_THRESH) and taken from there.</summary>
    public int FlowRingFrameSize { get; init; } = 2048;

    /// <summary>Blocks of <see cref="RingBlockSize"/> in the flow ring: 64 × 128 KiB = 8 MiB, 4096 slots.</summary>
    public int FlowRingBlockCount { get; init; } = 64;

    /// <summary>SO_RCVBUF of the flow socket: room for the whole copies of frames longer than a slot.</summary>
    public int LongFrameQueueBytes { get; init; } = 4 << 20;

    /// <summary>tp_retire_blk_tov: a partly filled block is handed to us after this many ms. Bounds latency.</summary>
    public int RingRetireTimeoutMs { get; init; } = 1;

    /// <summary>Frames queued by Send before Flush (AF_PACKET sends them with one sendmmsg).</summary>
    public int TxBatchFrames { get; init; } = 64;

    /// <summary>AF_PACKET: PACKET_QDISC_BYPASS, handing frames straight to the driver (no tc shaping).</summary>
    public bool QdiscBypass { get; init; } = true;

    /// <summary>AF_PACKET: send flow data through a second, PACKET_VNET_HDR socket so the kernel (GSO) or
    /// the NIC (TSO) cuts TCP super-frames into segments and fills in the TCP checksums.</summary>
    public bool SegmentationOffload { get; init; } = true;

    /// <summary>Send-queue bytes for offloaded frames: how many 64 KiB super-frames one sendmmsg can carry.</summary>
    public int OffloadTxBufferBytes { get; init; } = 1 << 20;

    /// <summary>AF_PACKET in a fanout group: how the members share the frames. Every member must pass the same.</summary>
    public FanoutSteering Fanout { get; init; } = FanoutSteering.FlowHash;
}
