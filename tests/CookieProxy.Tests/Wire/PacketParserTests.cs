using System.Buffers.Binary;
using CookieProxy.Diagnostics;
using CookieProxy.Wire;
using static CookieProxy.Tests.Wire.WireTestFrames;

namespace CookieProxy.Tests.Wire;

public class PacketParserTests
{
    [Fact]
    public void Parses_a_real_Linux_ipv4_SYN()
    {
        byte[] frame = Hex(LinuxSynV4);
        Assert.Equal(DropReason.None, PacketParser.Parse(frame, out ParsedPacket p, verifyChecksums: true));

        Assert.Equal(14, p.EthernetHeaderLength);
        Assert.Equal(0, p.VlanCount);
        Assert.Equal(14, p.L3Offset);
        Assert.Equal(34, p.L4Offset);
        Assert.Equal(74, p.PayloadOffset);
        Assert.Equal(0, p.PayloadLength);
        Assert.Equal(74, p.FrameLength);
        Assert.Equal(40, p.TcpHeaderLength);
        Assert.Equal(4, p.IpVersion);
        Assert.Equal(64, p.Ttl);
        Assert.Equal(0, p.TrafficClass);

        Assert.Equal("198.19.77.1:52276 -> 198.19.77.2:80", p.Flow.ToString());
        Assert.Equal(TcpFlags.Syn, p.Tcp.Flags);
        Assert.Equal(2846813053u, p.Tcp.Seq.Value);
        Assert.Equal(0u, p.Tcp.Ack.Value);
        Assert.Equal(64240, p.Tcp.Window);
        Assert.Equal(1460, p.Tcp.Options.Mss);
        Assert.True(p.Tcp.Options.SackPermitted);
        Assert.True(p.Tcp.Options.HasTimestamp);
        Assert.Equal(180637476u, p.Tcp.Options.TsVal);
        Assert.Equal(10, p.Tcp.Options.WindowScale);
    }

    [Fact]
    public void Parses_a_real_Linux_ipv6_SYN()
    {
        byte[] frame = Hex(LinuxSynV6);
        Assert.Equal(DropReason.None, PacketParser.Parse(frame, out ParsedPacket p, verifyChecksums: true));
        Assert.Equal(6, p.IpVersion);
        Assert.Equal(54, p.L4Offset);
        Assert.Equal(94, p.PayloadOffset);
        Assert.Equal(94, p.FrameLength);
        Assert.Equal(64, p.Ttl);
        Assert.Equal(0, p.TrafficClass);
        Assert.False(p.Flow.IsV4);
        Assert.Equal("[fd00:77::1]:55514 -> [fd00:77::2]:80", p.Flow.ToString());
        Assert.Equal(3418860433u, p.Tcp.Seq.Value);
        Assert.Equal(1440, p.Tcp.Options.Mss);
        Assert.Equal(10, p.Tcp.Options.WindowScale);
    }

    [Fact]
    public void Every_captured_curl_frame_parses_with_checksums_and_direction()
    {
        int count = 0;
        foreach (string name in CorpusNames().Where(n => n.StartsWith("v4-", StringComparison.Ordinal) || n.StartsWith("v6-", StringComparison.Ordinal)))
        {
            byte[] frame = Corpus(name);
            Assert.True(DropReason.None == PacketParser.Parse(frame, out ParsedPacket p, verifyChecksums: true), name);
            bool clientToServer = name.Contains("-c2s-", StringComparison.Ordinal);
            Assert.Equal(clientToServer, p.Tcp.DstPort is 80 or 81);
            Assert.Equal(name.StartsWith("v4", StringComparison.Ordinal) ? 4 : 6, p.IpVersion);
            Assert.Equal(frame.Length, p.FrameLength);
            Assert.Equal(p.FrameLength, p.PayloadOffset + p.PayloadLength);
            count++;
        }
        Assert.True(count >= 20);
    }

    [Theory]
    [InlineData("hping3-syn", DropReason.None)]
    [InlineData("hping3-syn-record-route", DropReason.None)]
    [InlineData("hping3-syn-timestamp", DropReason.None)]
    [InlineData("hping3-syn-payload", DropReason.None)]
    [InlineData("hping3-xmas", DropReason.None)]
    [InlineData("bad-hping3-synfin", DropReason.TcpBadFlags)]
    [InlineData("bad-hping3-null", DropReason.TcpBadFlags)]
    public void Captured_hping3_frames_get_the_expected_verdict(string name, DropReason expected)
    {
        Assert.Equal(expected, PacketParser.Parse(Corpus(name), out _, verifyChecksums: true));
    }

    [Fact]
    public void Parses_a_real_SYN_with_a_full_60_byte_ipv4_header()
    {
        byte[] frame = Corpus("hping3-syn-record-route");
        Assert.Equal(DropReason.None, PacketParser.Parse(frame, out ParsedPacket p, verifyChecksums: true));
        Assert.Equal(14 + 60, p.L4Offset);
        Assert.Equal(40002, p.Tcp.SrcPort);
        Assert.Equal(0, p.Tcp.Options.Mss);
        Assert.Equal(-1, p.Tcp.Options.WindowScale);

        // The SYN+ACK drops the 40 option bytes and still fits in the SYN's own frame.
        TcpOptionsRepr ours = TcpOptionsRepr.None;
        ours.Mss = 536;
        int n = SynAckWriter.RewriteInPlace(frame, p, 99, ours, 512);
        Assert.Equal(14 + 20 + 24, n);
        Assert.Equal(DropReason.None, PacketParser.Parse(frame.AsSpan(0, n), out ParsedPacket reply, verifyChecksums: true));
        Assert.Equal(536, reply.Tcp.Options.Mss);
    }

    [Fact]
    public void A_real_SYN_with_payload_reports_it()
    {
        Assert.Equal(DropReason.None, PacketParser.Parse(Corpus("hping3-syn-payload"), out ParsedPacket p, verifyChecksums: true));
        Assert.Equal(TcpFlags.Syn, p.Tcp.Flags);
        Assert.Equal(20, p.PayloadLength);
    }

    [Fact]
    public void Parses_a_data_segment_payload()
    {
        byte[] frame = Corpus("v4-c2s-PA-1");
        Assert.Equal(DropReason.None, PacketParser.Parse(frame, out ParsedPacket p, verifyChecksums: true));
        Assert.Equal(75, p.PayloadLength);
        Assert.Equal("GET / HTTP/1.1", System.Text.Encoding.ASCII.GetString(frame, p.PayloadOffset, 14));
        Assert.Equal(TcpFlags.Psh | TcpFlags.Ack, p.Tcp.Flags);
    }

    [Fact]
    public void Parses_an_8021Q_tagged_SYN()
    {
        byte[] frame = BuildV4(LinuxSynSegment(), tags: [(0x8100, 0x2064)]); // PCP 1, VID 100
        Assert.Equal(DropReason.None, PacketParser.Parse(frame, out ParsedPacket p, verifyChecksums: true));
        Assert.Equal(18, p.EthernetHeaderLength);
        Assert.Equal(1, p.VlanCount);
        Assert.Equal(0x8100, p.OuterVlanTpid);
        Assert.Equal(0x2064, p.OuterVlanTci);
        Assert.Equal(38, p.L4Offset);
        Assert.Equal(1460, p.Tcp.Options.Mss);
    }

    [Fact]
    public void Parses_a_QinQ_SYN_and_refuses_three_tags()
    {
        byte[] frame = BuildV6(LinuxSynSegment(), tags: [(0x88A8, 10), (0x8100, 20)]);
        Assert.Equal(DropReason.None, PacketParser.Parse(frame, out ParsedPacket p, verifyChecksums: true));
        Assert.Equal(22, p.EthernetHeaderLength);
        Assert.Equal(2, p.VlanCount);
        Assert.Equal(0x88A8, p.OuterVlanTpid);
        Assert.Equal(10, p.OuterVlanTci);
        Assert.Equal(20, p.InnerVlanTci);
        Assert.Equal(62, p.L4Offset);

        byte[] deep = BuildV4(LinuxSynSegment(), tags: [(0x88A8, 1), (0x8100, 2), (0x8100, 3)]);
        Assert.Equal(DropReason.VlanStackTooDeep, PacketParser.Parse(deep, out _, verifyChecksums: true));
    }

    [Fact]
    public void Parses_ipv4_with_options()
    {
        // Router Alert (RFC 2113) then NOP NOP NOP EOL: IHL 7.
        byte[] frame = BuildV4(LinuxSynSegment(), ipOptions: Hex("94040000 01010100"));
        Assert.Equal(DropReason.None, PacketParser.Parse(frame, out ParsedPacket p, verifyChecksums: true));
        Assert.Equal(42, p.L4Offset);
        Assert.Equal(82, p.FrameLength);
        Assert.Equal(2846813053u, p.Tcp.Seq.Value);
    }

    [Fact]
    public void Ethernet_padding_is_trimmed()
    {
        // A bare RST is 54 bytes; on a real wire it is padded to the 60-byte minimum.
        byte[] rst = Corpus("v4-s2c-RA-1");
        byte[] padded = [.. rst, 0, 0, 0, 0, 0, 0];
        Assert.Equal(DropReason.None, PacketParser.Parse(padded, out ParsedPacket p, verifyChecksums: true));
        Assert.Equal(54, p.FrameLength);
        Assert.Equal(0, p.PayloadLength);
        Assert.Equal(TcpFlags.Rst | TcpFlags.Ack, p.Tcp.Flags);

        byte[] v6 = BuildV6(LinuxSynSegment(), padding: 8);
        Assert.Equal(DropReason.None, PacketParser.Parse(v6, out p, verifyChecksums: true));
        Assert.Equal(v6.Length - 8, p.FrameLength);
    }

    [Fact]
    public void Parses_ipv6_with_hop_by_hop_and_destination_options()
    {
        byte[] ext = [.. OptionsHeader(60), .. OptionsHeader(6)];
        byte[] frame = BuildV6(LinuxSynSegment(), extensionHeaders: ext, firstNextHeader: 0);
        Assert.Equal(DropReason.None, PacketParser.Parse(frame, out ParsedPacket p, verifyChecksums: true));
        Assert.Equal(14 + 40 + 16, p.L4Offset);
        Assert.Equal(frame.Length, p.FrameLength);
        Assert.Equal(1460, p.Tcp.Options.Mss);
    }

    [Fact]
    public void Parses_ipv6_with_a_spent_routing_header()
    {
        // Type 4 (SRH) header, 16+8 bytes, Segments Left 0.
        byte[] routing = [6, 2, 4, 0, 0, 0, 0, 0, .. new byte[16]];
        byte[] frame = BuildV6(LinuxSynSegment(), extensionHeaders: routing, firstNextHeader: 43);
        Assert.Equal(DropReason.None, PacketParser.Parse(frame, out ParsedPacket p, verifyChecksums: true));
        Assert.Equal(14 + 40 + 24, p.L4Offset);

        routing[3] = 1;
        frame = BuildV6(LinuxSynSegment(), extensionHeaders: routing, firstNextHeader: 43);
        Assert.Equal(DropReason.Ipv6ExtensionHeaderUnsupported, PacketParser.Parse(frame, out _, verifyChecksums: true));
    }

    [Theory]
    [InlineData(44, DropReason.Ipv6ExtensionHeaderUnsupported)] // fragment
    [InlineData(50, DropReason.Ipv6ExtensionHeaderUnsupported)] // ESP
    [InlineData(51, DropReason.Ipv6ExtensionHeaderUnsupported)] // AH
    [InlineData(59, DropReason.NotTcp)]                          // no next header
    [InlineData(17, DropReason.NotTcp)]                          // UDP
    [InlineData(58, DropReason.NotTcp)]                          // ICMPv6
    public void Refuses_ipv6_next_headers_it_does_not_walk(byte nextHeader, DropReason expected)
    {
        byte[] frame = BuildV6(LinuxSynSegment(), extensionHeaders: [.. OptionsHeader(nextHeader)], firstNextHeader: 60);
        Assert.Equal(expected, PacketParser.Parse(frame, out _, verifyChecksums: false));
    }

    [Fact]
    public void Refuses_malformed_ipv6_extension_chains()
    {
        // Hop-by-Hop anywhere but first (RFC 8200 4.1).
        byte[] frame = BuildV6(LinuxSynSegment(), extensionHeaders: [.. OptionsHeader(0), .. OptionsHeader(6)], firstNextHeader: 60);
        Assert.Equal(DropReason.Ipv6ExtensionHeaderMalformed, PacketParser.Parse(frame, out _, verifyChecksums: false));

        // A header claiming 64 bytes in a 40-byte payload.
        byte[] big = [6, 7, 1, 4, 0, 0, 0, 0];
        frame = BuildV6([.. big, .. new byte[32]], firstNextHeader: 60, fixTcpChecksum: false);
        Assert.Equal(DropReason.Ipv6ExtensionHeaderMalformed, PacketParser.Parse(frame, out _, verifyChecksums: false));

        // Nine Destination Options headers: over the walk bound.
        var chain = new List<byte>();
        for (int i = 0; i < 9; i++)
        {
            chain.AddRange(OptionsHeader(i == 8 ? (byte)6 : (byte)60));
        }
        frame = BuildV6(LinuxSynSegment(), extensionHeaders: [.. chain], firstNextHeader: 60);
        Assert.Equal(DropReason.Ipv6ExtensionHeaderUnsupported, PacketParser.Parse(frame, out _, verifyChecksums: false));
    }

    [Fact]
    public void Refuses_ipv4_fragments_but_not_DF()
    {
        Assert.Equal(DropReason.None, PacketParser.Parse(BuildV4(LinuxSynSegment(), flagsFragment: 0), out _, true));
        Assert.Equal(DropReason.Ipv4Fragment, PacketParser.Parse(BuildV4(LinuxSynSegment(), flagsFragment: 0x2000), out _, true));
        Assert.Equal(DropReason.Ipv4Fragment, PacketParser.Parse(BuildV4(LinuxSynSegment(), flagsFragment: 0x0001), out _, true));
        Assert.Equal(DropReason.Ipv4Fragment, PacketParser.Parse(BuildV4(LinuxSynSegment(), flagsFragment: 0x4000 | 0x00B9), out _, true));
    }

    [Fact]
    public void Refuses_bad_ipv4_headers()
    {
        byte[] frame = Hex(LinuxSynV4);

        byte[] f = (byte[])frame.Clone();
        f[14] = 0x55;
        Assert.Equal(DropReason.Ipv4BadVersion, PacketParser.Parse(f, out _, false));

        f = (byte[])frame.Clone();
        f[14] = 0x44;
        Assert.Equal(DropReason.Ipv4BadHeaderLength, PacketParser.Parse(f, out _, false));

        f = (byte[])frame.Clone();
        f[14] = 0x4F; // 60-byte header in a 60-byte packet: TCP is left with nothing
        Assert.Equal(DropReason.TcpTooShort, PacketParser.Parse(f, out _, false));

        f = (byte[])frame.Clone();
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(16), 61);
        Assert.Equal(DropReason.Ipv4BadTotalLength, PacketParser.Parse(f, out _, false));

        f = (byte[])frame.Clone();
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(16), 19);
        Assert.Equal(DropReason.Ipv4BadTotalLength, PacketParser.Parse(f, out _, false));

        f = (byte[])frame.Clone();
        f[23] = 17;
        Assert.Equal(DropReason.NotTcp, PacketParser.Parse(f, out _, false));
    }

    [Fact]
    public void Checksums_are_verified_only_when_asked()
    {
        byte[] badIp = Hex(LinuxSynV4);
        badIp[24] ^= 0x01;
        Assert.Equal(DropReason.Ipv4BadChecksum, PacketParser.Parse(badIp, out _, verifyChecksums: true));
        Assert.Equal(DropReason.None, PacketParser.Parse(badIp, out _, verifyChecksums: false));

        byte[] badTcp = Hex(LinuxSynV4);
        badTcp[38] ^= 0x80; // a sequence number bit
        Assert.Equal(DropReason.TcpBadChecksum, PacketParser.Parse(badTcp, out _, verifyChecksums: true));
        Assert.Equal(DropReason.None, PacketParser.Parse(badTcp, out _, verifyChecksums: false));

        byte[] badV6 = Hex(LinuxSynV6);
        badV6[^1] ^= 0x01;
        Assert.Equal(DropReason.TcpBadChecksum, PacketParser.Parse(badV6, out _, verifyChecksums: true));
    }

    [Theory]
    [InlineData("e0000001")]
    [InlineData("efffffff")]
    [InlineData("ffffffff")]
    [InlineData("00000000")]
    [InlineData("00010203")]
    public void Refuses_bogus_ipv4_sources(string src)
    {
        byte[] frame = BuildV4(LinuxSynSegment(), src: Hex(src));
        Assert.Equal(DropReason.Ipv4BadSourceAddress, PacketParser.Parse(frame, out _, true));
    }

    [Theory]
    [InlineData("ff020000000000000000000000000001")]
    [InlineData("00000000000000000000000000000000")]
    [InlineData("00000000000000000000ffffc6134d01")] // IPv4-mapped
    public void Refuses_bogus_ipv6_sources(string src)
    {
        byte[] frame = BuildV6(LinuxSynSegment(), src: Hex(src));
        Assert.Equal(DropReason.Ipv6BadSourceAddress, PacketParser.Parse(frame, out _, true));
    }

    [Fact]
    public void Refuses_ports_zero()
    {
        Assert.Equal(DropReason.TcpBadPort, PacketParser.Parse(BuildV4(Segment(0, 80, 1, 0, 0x02, 1000)), out _, true));
        Assert.Equal(DropReason.TcpBadPort, PacketParser.Parse(BuildV4(Segment(1234, 0, 1, 0, 0x02, 1000)), out _, true));
    }

    [Theory]
    [InlineData(0x03)] // SYN FIN
    [InlineData(0x06)] // SYN RST
    [InlineData(0x2B)] // SYN FIN PSH URG ("christmas")
    [InlineData(0x00)] // null scan
    [InlineData(0xC0)] // only ECE CWR
    public void Refuses_nonsense_flags(byte flags)
    {
        Assert.Equal(DropReason.TcpBadFlags, PacketParser.Parse(BuildV4(Segment(1234, 80, 1, 0, flags, 1000)), out _, true));
    }

    [Theory]
    [InlineData(0x02)] // SYN
    [InlineData(0xC2)] // SYN ECE CWR (RFC 3168 ECN setup)
    [InlineData(0x10)] // ACK
    [InlineData(0x04)] // RST
    [InlineData(0x11)] // FIN ACK
    public void Accepts_ordinary_flags(byte flags)
    {
        Assert.Equal(DropReason.None, PacketParser.Parse(BuildV4(Segment(1234, 80, 1, 0, flags, 1000)), out _, true));
    }

    [Fact]
    public void Refuses_bad_tcp_data_offsets()
    {
        byte[] seg = Segment(1234, 80, 1, 0, 0x02, 1000);
        seg[12] = 0x40;
        Assert.Equal(DropReason.TcpBadDataOffset, PacketParser.Parse(BuildV4(seg), out _, false));
        seg[12] = 0x60; // 24-byte header in a 20-byte segment
        Assert.Equal(DropReason.TcpBadDataOffset, PacketParser.Parse(BuildV4(seg), out _, false));
    }

    [Fact]
    public void Refuses_malformed_tcp_options()
    {
        byte[] seg = Segment(1234, 80, 1, 0, 0x02, 1000, options: Hex("02050000"));
        Assert.Equal(DropReason.TcpOptionMalformed, PacketParser.Parse(BuildV4(seg), out _, true));
    }

    [Fact]
    public void Refuses_other_ethertypes_and_runt_frames()
    {
        byte[] arp = [.. Ethernet(0x0806), .. new byte[28]];
        Assert.Equal(DropReason.EtherTypeUnsupported, PacketParser.Parse(arp, out _, true));
        Assert.Equal(DropReason.FrameTooShort, PacketParser.Parse(new byte[13], out _, true));
        Assert.Equal(DropReason.VlanTooShort, PacketParser.Parse(Hex(LinuxSynV4)[..12].Concat(Hex("8100 0064")).ToArray(), out _, true));
    }

    [Fact]
    public void Refuses_ipv6_payload_lengths_beyond_the_buffer_and_jumbograms()
    {
        byte[] frame = Hex(LinuxSynV6);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(18), 41);
        Assert.Equal(DropReason.Ipv6BadPayloadLength, PacketParser.Parse(frame, out _, false));
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(18), 0);
        Assert.Equal(DropReason.Ipv6BadPayloadLength, PacketParser.Parse(frame, out _, false));
        frame[14] = 0x40;
        Assert.Equal(DropReason.Ipv6BadVersion, PacketParser.Parse(frame, out _, false));
    }

    [Fact]
    public void Parsed_packets_can_be_stored_in_arrays()
    {
        var batch = new ParsedPacket[2];
        Assert.Equal(DropReason.None, PacketParser.Parse(Hex(LinuxSynV4), out batch[0], true));
        Assert.Equal(DropReason.None, PacketParser.Parse(Hex(LinuxSynV6), out batch[1], true));
        Assert.NotEqual(batch[0].Flow, batch[1].Flow);
    }
}
