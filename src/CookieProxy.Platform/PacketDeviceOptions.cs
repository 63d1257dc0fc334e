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
    /// box in the lab). 128 × 128 KiB: ~128 ms of slack when sparse, ~1000 SYN frames per block under flood.
    /// </remarks>
    public int RingBlockSize { get; init; } = 128 << 10;

    public int RingBlockCount { get; init; } = 128;

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
