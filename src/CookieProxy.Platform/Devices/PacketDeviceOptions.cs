namespace CookieProxy.Platform;

/// <summary>Tuning knobs shared by both backends. The defaults suit a proxy on one 1-10 GbE port.</summary>
public sealed record class PacketDeviceOptions
{
    public static PacketDeviceOptions Default { get; } = new();

    /// <summary>Bytes captured per frame. Larger frames arrive truncated and flagged <c>Truncated</c>.</summary>
    public int SnapLength { get; init; } = 65535;

    /// <summary>Accept frames not addressed to the interface's MAC. Off: the proxy owns the protected IP's MAC.</summary>
    public bool Promiscuous { get; init; }

    /// <summary>libpcap kernel buffer (pcap_set_buffer_size).</summary>
    public int PcapBufferBytes { get; init; } = 16 << 20;

    /// <summary>TPACKET_V3 block size: a power of two multiple of the page size.</summary>
    /// <remarks>
    /// A block is handed to us when full or after <see cref="RingRetireTimeoutMs"/>, so at low rates every
    /// millisecond uses up a block however few frames it holds: the block COUNT is how long the capture
    /// thread may be descheduled before the kernel drops (16 blocks = 16 ms lost frames on a loaded 2-core
    /// box in the lab). 256 × 128 KiB: ~256 ms of slack when sparse, up to ~1000 SYN frames per full block.
    /// </remarks>
    public int RingBlockSize { get; init; } = 128 << 10;

    public int RingBlockCount { get; init; } = RingBlocksFor(DefaultRingMegabytes);

    /// <summary>
    /// 32 MiB: blocks are handed over after 1 ms however full, so under a flood of ~140k SYN/s each holds only
    /// ~140 frames and 256 blocks are ~250 ms of slack. In the flood lab 16 MiB lost frames at 60 kpps when
    /// the capture thread was briefly off the CPU; 32 MiB did not (docs/bench/README.md).
    /// </summary>
    public const int DefaultRingMegabytes = 32;

    /// <summary>Blocks of <see cref="RingBlockSize"/> (the default 128 KiB) in a ring of <paramref name="megabytes"/> MiB.</summary>
    public static int RingBlocksFor(int megabytes) => Math.Max(1, checked(megabytes * 8));

    /// <summary>tp_frame_size: in V3 only the ring geometry, frames are packed variably inside a block.</summary>
    public int RingFrameSize { get; init; } = 2048;

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
