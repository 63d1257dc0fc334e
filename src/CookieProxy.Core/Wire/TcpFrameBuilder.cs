namespace CookieProxy.Wire;

/// <summary>
/// Builds the complete frames CookieProxy sends to clients: Ethernet (+VLAN), IPv4 (no options, DF, id 0)
/// or IPv6 (no extension headers), TCP with our options, and both checksums.
/// </summary>
public static class TcpFrameBuilder
{
    /// <summary>Frame length <see cref="Write"/> would produce.</summary>
    public static int FrameLength(in L2L3Template tmpl, in TcpRepr tcp, int payloadLength) =>
        tmpl.HeaderLength + TcpPacket.HeaderLengthFor(tcp) + payloadLength;

    /// <summary>
    /// Writes one frame into <paramref name="dst"/>; the payload is the concatenation of
    /// <paramref name="payloadHead"/> and <paramref name="payloadTail"/> (a ring buffer's two halves).
    /// The payload spans must not overlap <paramref name="dst"/>. Returns the frame length, or 0 if it does not
    /// fit in dst or in the 16-bit IP length fields, or the template has no IP version.
    /// With <paramref name="checksumOffload"/> the TCP checksum field gets only the pseudo-header sum and the
    /// device completes it (see <see cref="PartialChecksum"/>): the payload is copied but never summed.
    /// </summary>
    public static int Write(Span<byte> dst, in L2L3Template tmpl, in TcpRepr tcp, ReadOnlySpan<byte> payloadHead, ReadOnlySpan<byte> payloadTail,
        bool checksumOffload = false)
    {
        int tcpHeaderLength = TcpPacket.HeaderLengthFor(tcp);
        int payloadLength = payloadHead.Length + payloadTail.Length;
        int segmentLength = tcpHeaderLength + payloadLength;
        int l2 = tmpl.L2Length;
        int l3Length = tmpl.L3Length;
        int frameLength = l2 + l3Length + segmentLength;
        if (frameLength > dst.Length || l3Length + segmentLength > ushort.MaxValue || tmpl.IpVersion is not (4 or 6))
        {
            return 0;
        }

        tmpl.WriteEthernet(dst);

        // Payload first, so the TCP checksum below covers it in one contiguous pass.
        int l4 = l2 + l3Length;
        Span<byte> segment = dst.Slice(l4, segmentLength);
        payloadHead.CopyTo(segment.Slice(tcpHeaderLength));
        payloadTail.CopyTo(segment.Slice(tcpHeaderLength + payloadHead.Length));

        TcpPacket.Emit(segment, tcp);
        WriteIpHeader(dst.Slice(l2, l3Length), tmpl, segmentLength);
        var view = new TcpPacket(segment);
        view.Checksum = checksumOffload ? PartialChecksum(tmpl, segmentLength) : Checksum.Tcp(tmpl.OurIp, tmpl.ClientIp, segment);
        return frameLength;
    }

    /// <summary>
    /// The TCP checksum field of a frame whose checksum the device completes: the folded pseudo-header sum,
    /// not complemented (Linux CHECKSUM_PARTIAL, as tcp_v4_send_check / __tcp_v6_send_check leave it). The
    /// device sums from the TCP header to the end, adds this and stores the complement; when it cuts a
    /// super-frame it swaps <paramref name="segmentLength"/> for each segment's own length (tcp_gso_segment).
    /// </summary>
    public static ushort PartialChecksum(in L2L3Template tmpl, int segmentLength) =>
        (ushort)Checksum.Fold(Checksum.PseudoHeader(tmpl.OurIp, tmpl.ClientIp, IpProtocol.Tcp, segmentLength));

    /// <summary>Writes the IP header for a TCP segment of <paramref name="segmentLength"/> bytes from us to the client.</summary>
    internal static void WriteIpHeader(Span<byte> l3, in L2L3Template tmpl, int segmentLength)
    {
        if (tmpl.IpVersion == 4)
        {
            var v4 = new Ipv4Packet(l3);
            v4.SetVersionAndHeaderLength(Ipv4Packet.MinHeaderLength);
            v4.TrafficClass = 0;
            v4.TotalLength = (ushort)(Ipv4Packet.MinHeaderLength + segmentLength);
            // id 0 with DF: RFC 6864 4.1 allows any id on atomic datagrams (Linux sends 0 on SYN+ACKs too).
            v4.Identification = 0;
            v4.FlagsAndFragmentOffset = Ipv4Packet.FlagDontFragment;
            v4.Ttl = tmpl.Ttl;
            v4.Protocol = IpProtocol.Tcp;
            v4.SrcAddress = tmpl.OurIp.V4;
            v4.DstAddress = tmpl.ClientIp.V4;
            v4.FillChecksum();
        }
        else
        {
            var v6 = new Ipv6Packet(l3);
            v6.SetVersionClassFlow(0, 0);
            v6.PayloadLength = (ushort)segmentLength;
            v6.NextHeader = IpProtocol.Tcp;
            v6.HopLimit = tmpl.Ttl;
            v6.SrcAddress = tmpl.OurIp;
            v6.DstAddress = tmpl.ClientIp;
        }
    }
}
