using CookieProxy.Diagnostics;
using CookieProxy.Tcp;
using CookieProxy.Wire;
using static CookieProxy.Tests.Wire.WireTestFrames;

namespace CookieProxy.Tests.Wire;

public class FrameBuilderTests
{
    private static TcpOptionsRepr LinuxSynAckOptions(ushort mss, uint tsVal, uint tsEcr)
    {
        TcpOptionsRepr o = TcpOptionsRepr.None;
        o.Mss = mss;
        o.SackPermitted = true;
        o.HasTimestamp = true;
        o.TsVal = tsVal;
        o.TsEcr = tsEcr;
        o.WindowScale = 10;
        return o;
    }

    private static byte[] Filled(int length)
    {
        byte[] b = new byte[length];
        Array.Fill(b, (byte)0xA5);
        return b;
    }

    [Fact]
    public void Template_from_a_received_SYN_swaps_ends_and_keeps_the_vlan()
    {
        byte[] frame = BuildV4(LinuxSynSegment(), tags: [(0x8100, 100)]);
        Assert.Equal(DropReason.None, PacketParser.Parse(frame, out ParsedPacket p, true));
        L2L3Template t = L2L3Template.FromReceived(p, frame);
        Assert.Equal(0xae39131312bfUL, t.OurMac);
        Assert.Equal(0xfa9b4d126a1dUL, t.ClientMac);
        Assert.Equal(1, t.VlanCount);
        Assert.Equal(100, t.OuterVlanTci);
        Assert.Equal(4, t.IpVersion);
        Assert.Equal(IpAddr.FromBytes(ServerV4), t.OurIp);
        Assert.Equal(IpAddr.FromBytes(ClientV4), t.ClientIp);
        Assert.Equal(64, t.Ttl);
        Assert.Equal(38, t.HeaderLength);
    }

    [Fact]
    public void Builds_the_same_bytes_as_Linux_for_an_ipv4_SYN_ACK()
    {
        byte[] syn = Hex(LinuxSynV4);
        Assert.Equal(DropReason.None, PacketParser.Parse(syn, out ParsedPacket p, true));
        L2L3Template t = L2L3Template.FromReceived(p, syn);
        TcpRepr tcp = new()
        {
            SrcPort = p.Tcp.DstPort,
            DstPort = p.Tcp.SrcPort,
            Seq = new SeqNumber(3486402050),
            Ack = p.Tcp.Seq + 1,
            Flags = TcpFlags.Syn | TcpFlags.Ack,
            Window = 65160,
            Options = LinuxSynAckOptions(1460, 4287047038, p.Tcp.Options.TsVal),
        };

        byte[] dst = Filled(128);
        int n = TcpFrameBuilder.Write(dst, t, tcp, [], []);
        Assert.Equal(74, n);
        Assert.Equal(n, TcpFrameBuilder.FrameLength(t, tcp, 0));
        Assert.Equal(ToHex(Hex(LinuxSynAckV4)), ToHex(dst.AsSpan(0, n)));
        Assert.All(dst[n..], b => Assert.Equal(0xA5, b));
    }

    [Fact]
    public void Builds_the_same_bytes_as_Linux_for_an_ipv6_SYN_ACK_except_the_flow_label()
    {
        byte[] syn = Hex(LinuxSynV6);
        Assert.Equal(DropReason.None, PacketParser.Parse(syn, out ParsedPacket p, true));
        L2L3Template t = L2L3Template.FromReceived(p, syn);
        TcpRepr tcp = new()
        {
            SrcPort = p.Tcp.DstPort,
            DstPort = p.Tcp.SrcPort,
            Seq = new SeqNumber(309955882),
            Ack = p.Tcp.Seq + 1,
            Flags = TcpFlags.Syn | TcpFlags.Ack,
            Window = 64260,
            Options = LinuxSynAckOptions(1440, 272860811, p.Tcp.Options.TsVal),
        };

        byte[] dst = Filled(128);
        int n = TcpFrameBuilder.Write(dst, t, tcp, [], []);
        byte[] expected = Hex(LinuxSynAckV6);
        Assert.Equal(expected.Length, n);
        // Linux picks a random flow label (RFC 6437); we send 0. It is not covered by any checksum.
        expected[15] = 0;
        expected[16] = 0;
        expected[17] = 0;
        Assert.Equal(ToHex(expected), ToHex(dst.AsSpan(0, n)));
        Assert.All(dst[n..], b => Assert.Equal(0xA5, b));
    }

    [Theory]
    [InlineData(4, 0, 0, 0)]
    [InlineData(4, 1, 1, 0)]
    [InlineData(6, 0, 7, 5)]
    [InlineData(6, 2, 100, 1)]
    [InlineData(4, 2, 0, 1401)]
    public void Parse_of_a_built_frame_round_trips(int version, int vlans, int headLength, int tailLength)
    {
        L2L3Template t = default;
        t.OurMac = 0x0200_0000_0001;
        t.ClientMac = 0x0200_0000_0002;
        t.VlanCount = (byte)vlans;
        t.OuterVlanTpid = vlans == 2 ? EtherType.QinQ : EtherType.Vlan;
        t.OuterVlanTci = 0x0123;
        t.InnerVlanTci = 0x0456;
        t.IpVersion = (byte)version;
        t.OurIp = version == 4 ? IpAddr.FromBytes(ServerV4) : IpAddr.FromBytes(ServerV6);
        t.ClientIp = version == 4 ? IpAddr.FromBytes(ClientV4) : IpAddr.FromBytes(ClientV6);
        t.Ttl = 61;

        TcpOptionsRepr o = TcpOptionsRepr.None;
        o.HasTimestamp = true;
        o.TsVal = 11;
        o.TsEcr = 22;
        o.SackCount = 2;
        o.Sack[0] = new SackBlock(new SeqNumber(100), new SeqNumber(200));
        o.Sack[1] = new SackBlock(new SeqNumber(300), new SeqNumber(400));
        TcpRepr tcp = new()
        {
            SrcPort = 80,
            DstPort = 40000,
            Seq = new SeqNumber(0xFFFF_FFF0),
            Ack = new SeqNumber(12345),
            Flags = TcpFlags.Ack | TcpFlags.Psh,
            Window = 501,
            Options = o,
        };
        var rng = new Random(headLength + tailLength);
        byte[] head = new byte[headLength];
        byte[] tail = new byte[tailLength];
        rng.NextBytes(head);
        rng.NextBytes(tail);

        byte[] dst = Filled(1600);
        int n = TcpFrameBuilder.Write(dst, t, tcp, head, tail);
        Assert.True(n > 0);
        Assert.All(dst[n..], b => Assert.Equal(0xA5, b));

        Assert.Equal(DropReason.None, PacketParser.Parse(dst.AsSpan(0, n), out ParsedPacket p, verifyChecksums: true));
        Assert.Equal(version, p.IpVersion);
        Assert.Equal(vlans, p.VlanCount);
        Assert.Equal(61, p.Ttl);
        if (vlans > 0)
        {
            Assert.Equal(0x0123, p.OuterVlanTci);
        }
        if (vlans > 1)
        {
            Assert.Equal(0x0456, p.InnerVlanTci);
        }
        Assert.Equal(new FlowKey(t.OurIp, t.ClientIp, 80, 40000), p.Flow);
        Assert.Equal(tcp.Seq, p.Tcp.Seq);
        Assert.Equal(tcp.Ack, p.Tcp.Ack);
        Assert.Equal(tcp.Flags, p.Tcp.Flags);
        Assert.Equal(tcp.Window, p.Tcp.Window);
        Assert.True(p.Tcp.Options.HasTimestamp);
        Assert.Equal(22u, p.Tcp.Options.TsEcr);
        Assert.Equal(2, p.Tcp.Options.SackCount);
        Assert.Equal(o.Sack[1], p.Tcp.Options.Sack[1]);
        Assert.Equal(headLength + tailLength, p.PayloadLength);
        Assert.Equal([.. head, .. tail], dst.AsSpan(p.PayloadOffset, p.PayloadLength).ToArray());

        L2L3Template back = L2L3Template.FromReceived(p, dst);
        Assert.Equal(t.ClientMac, back.OurMac);
        Assert.Equal(t.OurIp, back.ClientIp);
    }

    [Fact]
    public void Write_returns_zero_when_the_frame_does_not_fit()
    {
        byte[] syn = Hex(LinuxSynV4);
        PacketParser.Parse(syn, out ParsedPacket p, true);
        L2L3Template t = L2L3Template.FromReceived(p, syn);
        TcpRepr tcp = new() { SrcPort = 80, DstPort = 1, Flags = TcpFlags.Ack, Options = TcpOptionsRepr.None };
        byte[] dst = Filled(63);
        Assert.Equal(0, TcpFrameBuilder.Write(dst, t, tcp, new byte[10], []));
        Assert.All(dst, b => Assert.Equal(0xA5, b));
        Assert.Equal(64, TcpFrameBuilder.Write(Filled(64), t, tcp, new byte[10], []));
    }
}
