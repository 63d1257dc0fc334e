using System.Buffers.Binary;
using CookieProxy.Diagnostics;
using CookieProxy.Wire;
using static CookieProxy.Tests.Wire.WireTestFrames;

namespace CookieProxy.Tests.Wire;

public class SynAckWriterTests
{
    private static TcpOptionsRepr OurOptions(uint tsVal, uint tsEcr, ushort mss = 1460)
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

    private static byte[] InBuffer(byte[] frame, int size)
    {
        byte[] b = new byte[size];
        Array.Fill(b, (byte)0xA5);
        frame.CopyTo(b, 0);
        return b;
    }

    [Fact]
    public void Rewrites_a_real_Linux_SYN_into_the_SYN_ACK_Linux_sent()
    {
        byte[] buffer = InBuffer(Hex(LinuxSynV4), 134);
        Assert.Equal(DropReason.None, PacketParser.Parse(buffer.AsSpan(0, 74), out ParsedPacket syn, true));

        int n = SynAckWriter.RewriteInPlace(buffer, syn, 3486402050, OurOptions(4287047038, syn.Tcp.Options.TsVal), 65160);

        Assert.Equal(74, n);
        Assert.Equal(ToHex(Hex(LinuxSynAckV4)), ToHex(buffer.AsSpan(0, n)));
        Assert.All(buffer[n..], b => Assert.Equal(0xA5, b));
    }

    [Fact]
    public void Rewrites_an_ipv6_SYN_with_extension_headers_dropping_them()
    {
        byte[] ext = [.. OptionsHeader(60), .. OptionsHeader(6)];
        byte[] frame = BuildV6(LinuxSynSegment(), extensionHeaders: ext, firstNextHeader: 0);
        byte[] buffer = InBuffer(frame, 200);
        Assert.Equal(DropReason.None, PacketParser.Parse(buffer.AsSpan(0, frame.Length), out ParsedPacket syn, true));

        int n = SynAckWriter.RewriteInPlace(buffer, syn, 0xDEADBEEF, OurOptions(1, syn.Tcp.Options.TsVal, 1440), 1000);
        Assert.Equal(14 + 40 + 40, n);
        AssertIsSynAckFor(buffer.AsSpan(0, n), syn, 0xDEADBEEF, 1000);
        Assert.Equal(0, buffer[14] & 0x0F); // flow label 0
    }

    [Fact]
    public void Rewrites_an_ipv4_SYN_with_options_to_a_plain_header_and_truncates_payload()
    {
        byte[] seg = [.. LinuxSynSegment(), .. "hello"u8.ToArray()];
        byte[] frame = BuildV4(seg, ipOptions: Hex("94040000 01010100"), tags: [(0x8100, 0x0064)]);
        byte[] buffer = InBuffer(frame, frame.Length);
        Assert.Equal(DropReason.None, PacketParser.Parse(buffer, out ParsedPacket syn, true));
        Assert.Equal(5, syn.PayloadLength);

        int n = SynAckWriter.RewriteInPlace(buffer, syn, 42, OurOptions(7, syn.Tcp.Options.TsVal), 29200);
        Assert.Equal(18 + 20 + 40, n);
        ParsedPacket reply = AssertIsSynAckFor(buffer.AsSpan(0, n), syn, 42, 29200);
        Assert.Equal(1, reply.VlanCount);
        Assert.Equal(0x0064, reply.OuterVlanTci);
        Assert.Equal(0, reply.PayloadLength);
        Assert.Equal(0x45, buffer[18]);
        Assert.Equal(0, BinaryPrimitives.ReadUInt16BigEndian(buffer.AsSpan(18 + 4))); // id 0
        Assert.Equal(0x4000, BinaryPrimitives.ReadUInt16BigEndian(buffer.AsSpan(18 + 6))); // DF
    }

    [Fact]
    public void Never_reflects_the_clients_unknown_options()
    {
        // A SYN with only an MPTCP option and MSS; we answer with our own set.
        byte[] seg = Segment(40000, 80, 5, 0, 0x02, 1000, options: Hex("1e0c0081 00000000 00000000 020405b4"));
        byte[] frame = BuildV4(seg);
        byte[] buffer = InBuffer(frame, 128);
        Assert.Equal(DropReason.None, PacketParser.Parse(buffer.AsSpan(0, frame.Length), out ParsedPacket syn, true));
        TcpOptionsRepr ours = TcpOptionsRepr.None;
        ours.Mss = 1400;
        int n = SynAckWriter.RewriteInPlace(buffer, syn, 1, ours, 1000);
        Assert.Equal(14 + 20 + 24, n);
        Assert.Equal("02040578", ToHex(buffer.AsSpan(54, 4)));
    }

    [Fact]
    public void Returns_zero_when_the_reply_does_not_fit()
    {
        byte[] frame = Hex(LinuxSynV4);
        Assert.Equal(DropReason.None, PacketParser.Parse(frame, out ParsedPacket syn, true));
        byte[] copy = (byte[])frame.Clone();
        TcpOptionsRepr big = OurOptions(1, 2);
        big.SackCount = 1; // 20 + 12 option bytes: one more than the SYN had
        Assert.Equal(0, SynAckWriter.RewriteInPlace(copy.AsSpan(0, 74), syn, 1, big, 1));
        Assert.Equal(frame, copy);
    }

    [Fact]
    public void Handles_the_wrap_of_the_acknowledgment_number()
    {
        byte[] seg = Segment(40000, 80, 0xFFFF_FFFF, 0, 0x02, 1000);
        byte[] buffer = InBuffer(BuildV4(seg), 100);
        Assert.Equal(DropReason.None, PacketParser.Parse(buffer.AsSpan(0, 54), out ParsedPacket syn, true));
        int n = SynAckWriter.RewriteInPlace(buffer, syn, 7, TcpOptionsRepr.None, 1000);
        Assert.Equal(54, n);
        Assert.Equal(DropReason.None, PacketParser.Parse(buffer.AsSpan(0, n), out ParsedPacket reply, true));
        Assert.Equal(0u, reply.Tcp.Ack.Value);
    }

    internal static ParsedPacket AssertIsSynAckFor(Span<byte> frame, in ParsedPacket syn, uint isn, ushort window)
    {
        Assert.Equal(DropReason.None, PacketParser.Parse(frame, out ParsedPacket reply, verifyChecksums: true));
        Assert.Equal(syn.IpVersion, reply.IpVersion);
        Assert.Equal(syn.Flow.SrcAddr, reply.Flow.DstAddr);
        Assert.Equal(syn.Flow.DstAddr, reply.Flow.SrcAddr);
        Assert.Equal(syn.Flow.SrcPort, reply.Flow.DstPort);
        Assert.Equal(syn.Flow.DstPort, reply.Flow.SrcPort);
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, reply.Tcp.Flags);
        Assert.Equal(isn, reply.Tcp.Seq.Value);
        Assert.Equal(syn.Tcp.Seq.Value + 1, reply.Tcp.Ack.Value);
        Assert.Equal(window, reply.Tcp.Window);
        Assert.Equal(64, reply.Ttl);
        Assert.Equal(syn.VlanCount, reply.VlanCount);
        Assert.Equal(syn.OuterVlanTci, reply.OuterVlanTci);
        Assert.Equal(0, reply.PayloadLength);
        Assert.Equal(frame.Length, reply.FrameLength);
        Assert.Equal(0xfa9b4d126a1dUL, EthernetFrame.ReadMac(frame.Slice(EthernetFrame.DstOffset)));
        return reply;
    }
}

public class RstWriterTests
{
    [Fact]
    public void Answers_an_ACK_with_a_bare_RST_at_its_ack_number()
    {
        byte[] frame = Corpus("v4-c2s-PA-1");
        byte[] buffer = (byte[])frame.Clone();
        Assert.Equal(DropReason.None, PacketParser.Parse(buffer, out ParsedPacket seg, true));

        int n = RstWriter.RewriteInPlace(buffer, seg);
        Assert.Equal(54, n);
        Assert.Equal(DropReason.None, PacketParser.Parse(buffer.AsSpan(0, n), out ParsedPacket rst, verifyChecksums: true));
        Assert.Equal(TcpFlags.Rst, rst.Tcp.Flags);
        Assert.Equal(seg.Tcp.Ack, rst.Tcp.Seq);
        Assert.Equal(0u, rst.Tcp.Ack.Value);
        Assert.Equal(seg.Flow.SrcAddr, rst.Flow.DstAddr);
        Assert.Equal(seg.Flow.SrcPort, rst.Flow.DstPort);
        Assert.Equal(0, rst.PayloadLength);
    }

    [Fact]
    public void Answers_a_SYN_like_Linux_answers_a_closed_port()
    {
        // The captured SYN to port 81 and the RST+ACK Linux sent for it.
        byte[] buffer = Corpus("v4-c2s-S-2");
        Assert.Equal(DropReason.None, PacketParser.Parse(buffer, out ParsedPacket syn, true));
        int n = RstWriter.RewriteInPlace(buffer, syn);
        Assert.Equal(ToHex(Corpus("v4-s2c-RA-1")), ToHex(buffer.AsSpan(0, n)));
    }

    [Fact]
    public void Never_answers_a_RST()
    {
        byte[] buffer = Corpus("v4-s2c-RA-1");
        Assert.Equal(DropReason.None, PacketParser.Parse(buffer, out ParsedPacket rst, true));
        Assert.Equal(0, RstWriter.RewriteInPlace(buffer, rst));
    }

    [Fact]
    public void Counts_payload_and_FIN_in_the_acknowledgment()
    {
        byte[] seg = Segment(40000, 80, 1000, 0, 0x01 | 0x08, 1000, payload: new byte[10]); // FIN PSH, no ACK
        byte[] buffer = BuildV6(seg);
        Assert.Equal(DropReason.None, PacketParser.Parse(buffer, out ParsedPacket p, true));
        int n = RstWriter.RewriteInPlace(buffer, p);
        Assert.Equal(DropReason.None, PacketParser.Parse(buffer.AsSpan(0, n), out ParsedPacket rst, true));
        Assert.Equal(TcpFlags.Rst | TcpFlags.Ack, rst.Tcp.Flags);
        Assert.Equal(1011u, rst.Tcp.Ack.Value);
        Assert.Equal(0u, rst.Tcp.Seq.Value);
    }
}
