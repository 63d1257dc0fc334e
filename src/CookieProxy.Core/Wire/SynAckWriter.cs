using CookieProxy.Tcp;

namespace CookieProxy.Wire;

/// <summary>
/// Turns a received SYN into our SYN+ACK in the same buffer, for the SYN responder: nothing is copied out,
/// nothing allocated. Every header field is rewritten from the parsed SYN, so IPv4 options and IPv6 extension
/// headers simply vanish (the TCP header moves up to right after a 20/40-byte IP header).
/// </summary>
public static class SynAckWriter
{
    /// <summary>
    /// Rewrites the SYN at the start of <paramref name="frameBuffer"/> into the SYN+ACK: MACs, addresses and
    /// ports swapped, VLAN tags kept, seq = <paramref name="cookieIsn"/>, ack = SYN.seq + 1 (RFC 9293 3.5),
    /// flags SYN|ACK, our options only, TTL/hop limit 64, IPv4 id 0 with DF, no payload, fresh checksums.
    /// Returns the new frame length, or 0 if it would not fit in the buffer.
    /// </summary>
    public static int RewriteInPlace(Span<byte> frameBuffer, in ParsedPacket syn, uint cookieIsn, in TcpOptionsRepr ourOptions, ushort window)
    {
        int l2 = syn.EthernetHeaderLength;
        int l3Length = syn.IpVersion == 4 ? Ipv4Packet.MinHeaderLength : Ipv6Packet.HeaderLength;
        int tcpHeaderLength = TcpPacket.MinHeaderLength + TcpOptionsWriter.Length(ourOptions, isSyn: true);
        int frameLength = l2 + l3Length + tcpHeaderLength;
        if (frameLength > frameBuffer.Length || l2 < EthernetFrame.HeaderLength || syn.IpVersion is not (4 or 6))
        {
            return 0;
        }

        // Swap the MACs; VLAN tags and the EtherType stay where they are.
        ulong clientMac = EthernetFrame.ReadMac(frameBuffer.Slice(EthernetFrame.SrcOffset));
        ulong ourMac = EthernetFrame.ReadMac(frameBuffer.Slice(EthernetFrame.DstOffset));
        EthernetFrame.WriteMac(frameBuffer.Slice(EthernetFrame.DstOffset), clientMac);
        EthernetFrame.WriteMac(frameBuffer.Slice(EthernetFrame.SrcOffset), ourMac);

        TcpRepr reply = default;
        reply.SrcPort = syn.Tcp.DstPort;
        reply.DstPort = syn.Tcp.SrcPort;
        reply.Seq = new SeqNumber(cookieIsn);
        reply.Ack = syn.Tcp.Seq + 1;
        reply.Flags = TcpFlags.Syn | TcpFlags.Ack;
        reply.Window = window;
        reply.Options = ourOptions;

        Span<byte> segment = frameBuffer.Slice(l2 + l3Length, tcpHeaderLength);
        TcpPacket.Emit(segment, reply);

        L2L3Template tmpl = default;
        tmpl.IpVersion = syn.IpVersion;
        tmpl.OurIp = syn.Flow.DstAddr;
        tmpl.ClientIp = syn.Flow.SrcAddr;
        tmpl.Ttl = L2L3Template.DefaultTtl;
        TcpFrameBuilder.WriteIpHeader(frameBuffer.Slice(l2, l3Length), tmpl, tcpHeaderLength);

        new TcpPacket(segment).Checksum = Checksum.Tcp(tmpl.OurIp, tmpl.ClientIp, segment);
        return frameLength;
    }
}
