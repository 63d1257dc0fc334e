using System.Buffers.Binary;

namespace CookieProxy.Wire;

/// <summary>
/// How to reach one client: the link and network header fields of every frame we send it. Built once from
/// the client's SYN or ACK (<see cref="FromReceived"/>) and kept per flow.
/// </summary>
public struct L2L3Template
{
    /// <summary>Linux's default (net.ipv4.ip_default_ttl, net.ipv6.conf.*.hop_limit).</summary>
    public const byte DefaultTtl = 64;

    /// <summary>Our MAC (the source of what we send), as a 48-bit big-endian number.</summary>
    public ulong OurMac;

    /// <summary>The client's (or its next hop's) MAC.</summary>
    public ulong ClientMac;

    /// <summary>0, 1 or 2 VLAN tags, copied from the client's frame so replies leave on the same VLAN.</summary>
    public byte VlanCount;
    public ushort OuterVlanTpid;
    public ushort OuterVlanTci;
    public ushort InnerVlanTci;

    /// <summary>4 or 6.</summary>
    public byte IpVersion;
    public IpAddr OurIp;
    public IpAddr ClientIp;

    /// <summary>IPv4 TTL or IPv6 hop limit of what we send.</summary>
    public byte Ttl;

    /// <summary>Ethernet header length including tags.</summary>
    public readonly int L2Length => EthernetFrame.HeaderLength + (VlanCount * EthernetFrame.VlanTagLength);

    /// <summary>IP header length we emit: 20 (no options) or 40 (no extension headers).</summary>
    public readonly int L3Length => IpVersion == 4 ? Ipv4Packet.MinHeaderLength : Ipv6Packet.HeaderLength;

    public readonly int HeaderLength => L2Length + L3Length;

    /// <summary>
    /// The reply template for a parsed received frame: MACs and addresses swapped, VLAN tags kept, TTL/hop
    /// limit <paramref name="ttl"/> (we never echo the client's TTL).
    /// </summary>
    public static L2L3Template FromReceived(in ParsedPacket p, ReadOnlySpan<byte> frame, byte ttl = DefaultTtl)
    {
        L2L3Template t = default;
        t.OurMac = EthernetFrame.ReadMac(frame.Slice(EthernetFrame.DstOffset));
        t.ClientMac = EthernetFrame.ReadMac(frame.Slice(EthernetFrame.SrcOffset));
        t.VlanCount = p.VlanCount;
        t.OuterVlanTpid = p.OuterVlanTpid;
        t.OuterVlanTci = p.OuterVlanTci;
        t.InnerVlanTci = p.InnerVlanTci;
        t.IpVersion = p.IpVersion;
        t.OurIp = p.Flow.DstAddr;
        t.ClientIp = p.Flow.SrcAddr;
        t.Ttl = ttl;
        return t;
    }

    /// <summary>Writes the Ethernet header (+ tags) for a payload of the given EtherType; returns its length.</summary>
    internal readonly int WriteEthernet(Span<byte> dst)
    {
        EthernetFrame.WriteMac(dst.Slice(EthernetFrame.DstOffset), ClientMac);
        EthernetFrame.WriteMac(dst.Slice(EthernetFrame.SrcOffset), OurMac);
        int offset = EthernetFrame.EtherTypeOffset;
        if (VlanCount > 0)
        {
            BinaryPrimitives.WriteUInt16BigEndian(dst.Slice(offset), OuterVlanTpid == 0 ? EtherType.Vlan : OuterVlanTpid);
            BinaryPrimitives.WriteUInt16BigEndian(dst.Slice(offset + 2), OuterVlanTci);
            offset += EthernetFrame.VlanTagLength;
            if (VlanCount > 1)
            {
                // The inner (customer) tag of QinQ is always an 802.1Q C-tag (IEEE 802.1ad).
                BinaryPrimitives.WriteUInt16BigEndian(dst.Slice(offset), EtherType.Vlan);
                BinaryPrimitives.WriteUInt16BigEndian(dst.Slice(offset + 2), InnerVlanTci);
                offset += EthernetFrame.VlanTagLength;
            }
        }
        BinaryPrimitives.WriteUInt16BigEndian(dst.Slice(offset), IpVersion == 4 ? EtherType.Ipv4 : EtherType.Ipv6);
        return offset + 2;
    }
}
