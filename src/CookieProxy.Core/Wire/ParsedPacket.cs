namespace CookieProxy.Wire;

/// <summary>
/// Everything the proxy needs from one captured TCP frame, as a plain struct so batches can be kept in
/// arrays. Offsets are from the start of the frame; <see cref="FrameLength"/> excludes Ethernet padding.
/// </summary>
public struct ParsedPacket
{
    /// <summary>Ethernet header length including VLAN tags; equals <see cref="L3Offset"/>.</summary>
    public int EthernetHeaderLength;

    /// <summary>Number of VLAN tags (0..2).</summary>
    public byte VlanCount;

    /// <summary>TPID of the outer tag (0x8100, 0x88A8 or 0x9100); 0 when untagged.</summary>
    public ushort OuterVlanTpid;

    /// <summary>TCI (PCP, DEI, VID) of the outer tag; 0 when untagged.</summary>
    public ushort OuterVlanTci;

    /// <summary>TCI of the inner tag of a QinQ frame; 0 otherwise.</summary>
    public ushort InnerVlanTci;

    public int L3Offset;
    public int L4Offset;
    public int PayloadOffset;
    public int PayloadLength;

    /// <summary>Frame length trimmed to the IP-declared length (padding removed).</summary>
    public int FrameLength;

    /// <summary>4 or 6.</summary>
    public byte IpVersion;

    /// <summary>IPv4 TTL or IPv6 hop limit.</summary>
    public byte Ttl;

    /// <summary>IPv4 TOS byte / IPv6 traffic class: DSCP in the upper 6 bits, ECN in the lower 2.</summary>
    public byte TrafficClass;

    /// <summary>The 4-tuple: Src is the packet's source (the client for inbound segments).</summary>
    public FlowKey Flow;

    public TcpRepr Tcp;

    public readonly int TcpHeaderLength => PayloadOffset - L4Offset;

    public readonly int TcpSegmentLength => FrameLength - L4Offset;

    public readonly byte Dscp => (byte)(TrafficClass >> 2);

    public readonly bool IsV4 => IpVersion == 4;

    /// <summary>The TCP payload inside the frame this packet was parsed from.</summary>
    public readonly Span<byte> GetPayload(Span<byte> frame) => frame.Slice(PayloadOffset, PayloadLength);

    /// <summary>The TCP header and payload inside the frame this packet was parsed from.</summary>
    public readonly Span<byte> GetTcpSegment(Span<byte> frame) => frame.Slice(L4Offset, FrameLength - L4Offset);
}
