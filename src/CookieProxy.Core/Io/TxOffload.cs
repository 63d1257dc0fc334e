namespace CookieProxy.Io;

/// <summary>
/// What a device finishes for a frame queued with <see cref="IPacketDevice.CommitOffloaded"/>: the TCP
/// checksum (the frame's checksum field holds only the pseudo-header sum, as a CHECKSUM_PARTIAL skb does)
/// and, for a super-frame, the cut into <see cref="SegmentSize"/>-byte segments (TSO/GSO). These are the
/// fields of Linux's struct virtio_net_hdr (include/uapi/linux/virtio_net.h) in domain terms.
/// </summary>
/// <param name="ChecksumStart">Offset of the TCP header in the frame (where checksumming starts).</param>
/// <param name="HeaderLength">Ethernet + IP + TCP header bytes: what every cut segment repeats.</param>
/// <param name="SegmentSize">Payload bytes per segment (all but the last are this long); 0 = one segment, no cut.</param>
/// <param name="IpVersion">4 or 6: which segmentation (TCPv4 / TCPv6) the device applies.</param>
public readonly record struct TxOffload(int ChecksumStart, int HeaderLength, int SegmentSize, byte IpVersion)
{
    /// <summary>Offset of the checksum field within the TCP header (RFC 9293 3.1).</summary>
    public const int TcpChecksumOffset = 16;

    public bool IsSegmented => SegmentSize > 0;
}
