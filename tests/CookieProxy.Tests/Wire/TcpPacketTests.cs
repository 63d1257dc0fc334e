using CookieProxy.Diagnostics;
using CookieProxy.Wire;
using static CookieProxy.Tests.Wire.WireTestFrames;

namespace CookieProxy.Tests.Wire;

public class TcpPacketTests
{
    /// <summary>Linux writes options in the order we do, so parse then emit reproduces its bytes exactly.</summary>
    [Theory]
    [InlineData("v4-c2s-S-1")]
    [InlineData("v4-s2c-SA-1")]
    [InlineData("v4-c2s-A-1")]
    [InlineData("v4-c2s-PA-1")]
    [InlineData("v4-s2c-FA-1")]
    [InlineData("v4-s2c-RA-1")]
    [InlineData("v6-c2s-S-1")]
    [InlineData("v6-s2c-PA-1")]
    public void Parse_then_emit_reproduces_real_Linux_segments(string name)
    {
        byte[] frame = Corpus(name);
        Assert.Equal(DropReason.None, PacketParser.Parse(frame, out ParsedPacket p, verifyChecksums: true));
        Span<byte> original = p.GetTcpSegment(frame);

        byte[] dst = new byte[original.Length + 8];
        Array.Fill(dst, (byte)0xA5);
        int headerLength = TcpPacket.Emit(dst, p.Tcp);
        Assert.Equal(p.TcpHeaderLength, headerLength);
        Assert.Equal(headerLength, TcpPacket.HeaderLengthFor(p.Tcp));
        p.GetPayload(frame).CopyTo(dst.AsSpan(headerLength));
        Span<byte> segment = dst.AsSpan(0, original.Length);
        new TcpPacket(segment).Checksum = Checksum.Tcp(p.Flow.SrcAddr, p.Flow.DstAddr, segment);

        Assert.Equal(ToHex(original), ToHex(segment));
        Assert.All(dst[original.Length..], b => Assert.Equal(0xA5, b));
    }

    [Fact]
    public void View_accessors_read_and_write_every_field()
    {
        byte[] seg = LinuxSynSegment();
        var tcp = new TcpPacket(seg);
        Assert.Equal(52276, tcp.SrcPort);
        Assert.Equal(80, tcp.DstPort);
        Assert.Equal(2846813053u, tcp.Seq.Value);
        Assert.Equal(10, tcp.DataOffset);
        Assert.Equal(40, tcp.HeaderLength);
        Assert.Equal(20, tcp.Options.Length);
        Assert.Equal(0, tcp.Payload.Length);
        Assert.Equal(0x6b48, tcp.Checksum);

        tcp.SrcPort = 1;
        tcp.DstPort = 2;
        tcp.Seq = new CookieProxy.Tcp.SeqNumber(3);
        tcp.Ack = new CookieProxy.Tcp.SeqNumber(4);
        tcp.Flags = TcpFlags.Ack | TcpFlags.Fin;
        tcp.Window = 5;
        tcp.UrgentPointer = 6;
        Assert.Equal("000100020000000300000004a0110005", ToHex(seg.AsSpan(0, 16)));
        Assert.Equal(5, tcp.Window);
        Assert.Equal(6, tcp.UrgentPointer);
    }

    [Fact]
    public void Emit_returns_zero_when_the_header_does_not_fit()
    {
        TcpRepr r = new() { SrcPort = 1, DstPort = 2, Flags = TcpFlags.Syn, Options = TcpOptionsRepr.None };
        r.Options.Mss = 1460;
        Assert.Equal(0, TcpPacket.Emit(new byte[23], r));
        Assert.Equal(24, TcpPacket.Emit(new byte[24], r));
    }
}
