using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using CookieProxy.Diagnostics;

namespace CookieProxy.Wire;

/// <summary>
/// The one-shot capture-path parser: Ethernet (+ up to two VLAN tags), IPv4 or IPv6, TCP with options,
/// into a <see cref="ParsedPacket"/>. Validates once at the edge; never throws on hostile input.
/// </summary>
public static class PacketParser
{
    /// <summary>
    /// Parses <paramref name="frame"/>. On anything but <see cref="DropReason.None"/> the content of
    /// <paramref name="packet"/> is unspecified. Checksums (IPv4 header, TCP) are verified only when asked:
    /// capture with RX offload may already have done it, and the cookie check rejects forgeries anyway.
    /// </summary>
    public static DropReason Parse(Span<byte> frame, out ParsedPacket packet, bool verifyChecksums)
    {
        packet = default;
        DropReason reason = EthernetFrame.Walk(frame, out EthernetHeaderInfo eth);
        if (reason != DropReason.None)
        {
            return reason;
        }

        int l3 = eth.HeaderLength;
        packet.EthernetHeaderLength = l3;
        packet.L3Offset = l3;
        packet.VlanCount = eth.VlanCount;
        packet.OuterVlanTpid = eth.OuterTpid;
        packet.OuterVlanTci = eth.OuterTci;
        packet.InnerVlanTci = eth.InnerTci;

        IpAddr src;
        IpAddr dst;
        int l4;
        int end;
        if (eth.EtherType == EtherType.Ipv4)
        {
            reason = ParseIpv4(frame.Slice(l3), ref packet, verifyChecksums, out src, out dst, out l4, out end);
        }
        else if (eth.EtherType == EtherType.Ipv6)
        {
            reason = ParseIpv6(frame.Slice(l3), ref packet, out src, out dst, out l4, out end);
        }
        else
        {
            return DropReason.EtherTypeUnsupported;
        }
        if (reason != DropReason.None)
        {
            return reason;
        }

        l4 += l3;
        end += l3;
        packet.L4Offset = l4;
        packet.FrameLength = end;

        Span<byte> segment = frame.Slice(l4, end - l4);
        reason = TcpPacket.Validate(segment);
        if (reason != DropReason.None)
        {
            return reason;
        }

        var tcp = new TcpPacket(segment);
        reason = tcp.ToRepr(out packet.Tcp);
        if (reason != DropReason.None)
        {
            return reason;
        }
        if (packet.Tcp.SrcPort == 0 || packet.Tcp.DstPort == 0)
        {
            return DropReason.TcpBadPort;
        }
        if (HasBadFlags(packet.Tcp.Flags))
        {
            return DropReason.TcpBadFlags;
        }
        if (verifyChecksums && !Checksum.VerifyTcp(src, dst, segment))
        {
            return DropReason.TcpBadChecksum;
        }

        int headerLength = tcp.HeaderLength;
        packet.PayloadOffset = l4 + headerLength;
        packet.PayloadLength = segment.Length - headerLength;
        packet.Flow = new FlowKey(src, dst, packet.Tcp.SrcPort, packet.Tcp.DstPort);
        return DropReason.None;
    }

    /// <summary>
    /// Flag combinations no legitimate stack sends and that scanners use for fingerprinting: SYN with FIN or
    /// RST (RFC 9293 3.10.7 has no state that wants them) and a segment with no control bits at all.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool HasBadFlags(TcpFlags flags)
    {
        const TcpFlags Control = TcpFlags.Fin | TcpFlags.Syn | TcpFlags.Rst | TcpFlags.Ack | TcpFlags.Urg | TcpFlags.Psh;
        if ((flags & Control) == 0)
        {
            return true;
        }
        return (flags & TcpFlags.Syn) != 0 && (flags & (TcpFlags.Fin | TcpFlags.Rst)) != 0;
    }

    private static DropReason ParseIpv4(
        Span<byte> ip, ref ParsedPacket packet, bool verifyChecksums, out IpAddr src, out IpAddr dst, out int l4, out int end)
    {
        src = default;
        dst = default;
        l4 = 0;
        end = 0;
        DropReason reason = Ipv4Packet.Validate(ip);
        if (reason != DropReason.None)
        {
            return reason;
        }

        var v4 = new Ipv4Packet(ip);
        int headerLength = v4.HeaderLength;
        if (verifyChecksums && !v4.VerifyChecksum())
        {
            return DropReason.Ipv4BadChecksum;
        }
        // A cookie SYN or ACK is never fragmented; reassembly would be a memory-exhaustion vector.
        if ((v4.FlagsAndFragmentOffset & (Ipv4Packet.FlagMoreFragments | Ipv4Packet.FragmentOffsetMask)) != 0)
        {
            return DropReason.Ipv4Fragment;
        }
        if (v4.Protocol != IpProtocol.Tcp)
        {
            return DropReason.NotTcp;
        }
        uint s = v4.SrcAddress;
        if (Ipv4Packet.IsBadSource(s))
        {
            return DropReason.Ipv4BadSourceAddress;
        }

        src = IpAddr.FromV4(s);
        dst = IpAddr.FromV4(v4.DstAddress);
        packet.IpVersion = 4;
        packet.Ttl = v4.Ttl;
        packet.TrafficClass = v4.TrafficClass;
        l4 = headerLength;
        end = v4.TotalLength;
        return DropReason.None;
    }

    private static DropReason ParseIpv6(Span<byte> ip, ref ParsedPacket packet, out IpAddr src, out IpAddr dst, out int l4, out int end)
    {
        src = default;
        dst = default;
        end = 0;
        l4 = 0;
        DropReason reason = Ipv6Packet.Validate(ip);
        if (reason != DropReason.None)
        {
            return reason;
        }

        var v6 = new Ipv6Packet(ip);
        end = Ipv6Packet.HeaderLength + v6.PayloadLength;
        reason = Ipv6Packet.WalkExtensionHeaders(ip.Slice(0, end), out l4);
        if (reason != DropReason.None)
        {
            return reason;
        }
        src = v6.SrcAddress;
        dst = v6.DstAddress;
        if (Ipv6Packet.IsBadSource(src) || Ipv6Packet.IsBadDestination(dst))
        {
            return DropReason.Ipv6BadSourceAddress;
        }

        packet.IpVersion = 6;
        packet.Ttl = v6.HopLimit;
        packet.TrafficClass = v6.TrafficClass;
        return DropReason.None;
    }
}
