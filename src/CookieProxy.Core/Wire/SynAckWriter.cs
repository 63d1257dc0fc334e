using CookieProxy.Tcp;

namespace CookieProxy.Wire;

/// <summary>
/// Turns a received segment into our payload-less reply in the same buffer: nothing is copied out, nothing
/// allocated. Every header field is rewritten from the parsed packet, so IPv4 options and IPv6 extension
/// headers simply vanish (the TCP header moves up to right after a 20/40-byte IP header); MACs are swapped
/// and VLAN tags stay where they are.
/// </summary>
public static class ReplyWriter
{
    /// <summary>
    /// Rewrites the frame <paramref name="received"/> was parsed from (at the start of
    /// <paramref name="frameBuffer"/>) into a reply carrying <paramref name="reply"/> and no payload:
    /// addresses swapped, TTL/hop limit 64, IPv4 id 0 with DF, fresh checksums. The caller fills the ports
    /// of <paramref name="reply"/>. Returns the new frame length, or 0 if it would not fit in the buffer.
    /// </summary>
    public static int RewriteInPlace(Span<byte> frameBuffer, in ParsedPacket received, in TcpRepr reply)
    {
        int l2 = received.EthernetHeaderLength;
        int l3Length = received.IpVersion == 4 ? Ipv4Packet.MinHeaderLength : Ipv6Packet.HeaderLength;
        int tcpHeaderLength = TcpPacket.HeaderLengthFor(reply);
        int frameLength = l2 + l3Length + tcpHeaderLength;
        if (frameLength > frameBuffer.Length || l2 < EthernetFrame.HeaderLength || received.IpVersion is not (4 or 6))
        {
            return 0;
        }

        ulong clientMac = EthernetFrame.ReadMac(frameBuffer.Slice(EthernetFrame.SrcOffset));
        ulong ourMac = EthernetFrame.ReadMac(frameBuffer.Slice(EthernetFrame.DstOffset));
        EthernetFrame.WriteMac(frameBuffer.Slice(EthernetFrame.DstOffset), clientMac);
        EthernetFrame.WriteMac(frameBuffer.Slice(EthernetFrame.SrcOffset), ourMac);

        Span<byte> segment = frameBuffer.Slice(l2 + l3Length, tcpHeaderLength);
        TcpPacket.Emit(segment, reply);

        L2L3Template tmpl = default;
        tmpl.IpVersion = received.IpVersion;
        tmpl.OurIp = received.Flow.DstAddr;
        tmpl.ClientIp = received.Flow.SrcAddr;
        tmpl.Ttl = L2L3Template.DefaultTtl;
        TcpFrameBuilder.WriteIpHeader(frameBuffer.Slice(l2, l3Length), tmpl, tcpHeaderLength);

        new TcpPacket(segment).Checksum = Checksum.Tcp(tmpl.OurIp, tmpl.ClientIp, segment);
        return frameLength;
    }
}

/// <summary>The SYN responder's reply: a received SYN becomes our cookie SYN+ACK in place.</summary>
public static class SynAckWriter
{
    /// <summary>
    /// Rewrites the SYN at the start of <paramref name="frameBuffer"/> into the SYN+ACK (see
    /// <see cref="ReplyWriter"/>): seq = <paramref name="cookieIsn"/>, ack = SYN.seq + 1 (RFC 9293 3.5),
    /// flags SYN|ACK, <paramref name="window"/>, our options only (never the client's unknown ones), any SYN
    /// payload dropped. Returns the new frame length, or 0 if it would not fit in the buffer.
    /// </summary>
    public static int RewriteInPlace(Span<byte> frameBuffer, in ParsedPacket syn, uint cookieIsn, in TcpOptionsRepr ourOptions, ushort window)
    {
        TcpRepr reply = default;
        reply.SrcPort = syn.Tcp.DstPort;
        reply.DstPort = syn.Tcp.SrcPort;
        reply.Seq = new SeqNumber(cookieIsn);
        reply.Ack = syn.Tcp.Seq + 1;
        reply.Flags = TcpFlags.Syn | TcpFlags.Ack;
        reply.Window = window;
        reply.Options = ourOptions;
        return ReplyWriter.RewriteInPlace(frameBuffer, syn, reply);
    }
}

/// <summary>Resets answering a received segment, built in place (RFC 9293 3.10.7.1, "reset generation").</summary>
public static class RstWriter
{
    /// <summary>
    /// The RST for <paramref name="segment"/>: if it carried an ACK, &lt;SEQ=SEG.ACK&gt;&lt;CTL=RST&gt;;
    /// otherwise &lt;SEQ=0&gt;&lt;ACK=SEG.SEQ+SEG.LEN&gt;&lt;CTL=RST,ACK&gt;, where SYN and FIN count in
    /// SEG.LEN. Never answers a RST (RFC 9293 3.10.7.1): returns 0 for one, as when it does not fit.
    /// </summary>
    public static int RewriteInPlace(Span<byte> frameBuffer, in ParsedPacket segment)
    {
        if ((segment.Tcp.Flags & TcpFlags.Rst) != 0)
        {
            return 0;
        }
        TcpRepr reply = default;
        reply.SrcPort = segment.Tcp.DstPort;
        reply.DstPort = segment.Tcp.SrcPort;
        reply.Options = TcpOptionsRepr.None;
        if ((segment.Tcp.Flags & TcpFlags.Ack) != 0)
        {
            reply.Seq = segment.Tcp.Ack;
            reply.Flags = TcpFlags.Rst;
        }
        else
        {
            int length = segment.PayloadLength
                + ((segment.Tcp.Flags & TcpFlags.Syn) != 0 ? 1 : 0)
                + ((segment.Tcp.Flags & TcpFlags.Fin) != 0 ? 1 : 0);
            reply.Ack = segment.Tcp.Seq + length;
            reply.Flags = TcpFlags.Rst | TcpFlags.Ack;
        }
        return ReplyWriter.RewriteInPlace(frameBuffer, segment, reply);
    }
}
