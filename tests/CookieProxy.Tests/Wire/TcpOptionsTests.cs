using CookieProxy.Diagnostics;
using CookieProxy.Tcp;
using CookieProxy.Wire;
using static CookieProxy.Tests.Wire.WireTestFrames;

namespace CookieProxy.Tests.Wire;

public class TcpOptionsTests
{
    // tcpdump: options [mss 1460,sackOK,TS val 180637476 ecr 0,nop,wscale 7]
    private static readonly byte[] s_linuxSynOptions = Hex("020405b4 0402080a 0ac44f24 00000000 01030307");

    [Fact]
    public void Parses_the_options_of_a_Linux_SYN()
    {
        Assert.Equal(DropReason.None, TcpOptionsReader.Parse(s_linuxSynOptions, out TcpOptionsRepr o));
        Assert.Equal(1460, o.Mss);
        Assert.True(o.SackPermitted);
        Assert.True(o.HasTimestamp);
        Assert.Equal(180637476u, o.TsVal);
        Assert.Equal(0u, o.TsEcr);
        Assert.Equal(7, o.WindowScale);
        Assert.Equal(0, o.SackCount);
    }

    [Fact]
    public void Absent_options_leave_defaults()
    {
        Assert.Equal(DropReason.None, TcpOptionsReader.Parse([], out TcpOptionsRepr o));
        Assert.Equal(0, o.Mss);
        Assert.Equal(-1, o.WindowScale);
        Assert.False(o.SackPermitted);
        Assert.False(o.HasTimestamp);
    }

    [Fact]
    public void Window_scale_above_14_is_clamped_to_14()
    {
        Assert.Equal(DropReason.None, TcpOptionsReader.Parse(Hex("01030315"), out TcpOptionsRepr o));
        Assert.Equal(14, o.WindowScale);
    }

    [Fact]
    public void Parses_four_sack_blocks()
    {
        byte[] opts = Hex("0101 0522 00000001 00000002 00000003 00000004 00000005 00000006 fffffff0 00000010");
        Assert.Equal(DropReason.None, TcpOptionsReader.Parse(opts, out TcpOptionsRepr o));
        Assert.Equal(4, o.SackCount);
        Assert.Equal(new SackBlock(new SeqNumber(1), new SeqNumber(2)), o.Sack[0]);
        Assert.Equal(new SackBlock(new SeqNumber(0xfffffff0), new SeqNumber(0x10)), o.Sack[3]);
    }

    [Fact]
    public void Unknown_options_are_skipped_by_length()
    {
        // MPTCP (30) MP_CAPABLE, then TFO cookie request (34, len 2), then MSS.
        byte[] opts = Hex("1e0c0081 00000000 00000000 2202 020405b4 0000");
        Assert.Equal(DropReason.None, TcpOptionsReader.Parse(opts, out TcpOptionsRepr o));
        Assert.Equal(1460, o.Mss);
    }

    [Fact]
    public void End_of_list_stops_parsing_and_ignores_the_rest()
    {
        Assert.Equal(DropReason.None, TcpOptionsReader.Parse(Hex("020405b4 00 ff01ff"), out TcpOptionsRepr o));
        Assert.Equal(1460, o.Mss);
    }

    [Theory]
    [InlineData("02")]              // kind without length
    [InlineData("0201")]            // length < 2
    [InlineData("0200")]            // length 0 would loop forever
    [InlineData("020605b40000")]    // MSS with length 6
    [InlineData("0204 05")]         // MSS running past the end
    [InlineData("030407ff")]        // window scale with length 4
    [InlineData("0403 00 00")]      // SACK-permitted with length 3
    [InlineData("0809 0000000000000000")] // timestamps with length 9
    [InlineData("080a 0000000000")] // timestamps truncated
    [InlineData("0509 000000000000000000")] // SACK with a partial block
    [InlineData("0502")]            // SACK with no block
    [InlineData("1e28 00000000000000000000000000000000000000000000000000000000000000000000000000")] // unknown, past the end
    public void Malformed_options_are_rejected(string hex)
    {
        Assert.Equal(DropReason.TcpOptionMalformed, TcpOptionsReader.Parse(Hex(hex), out _));
    }

    [Fact]
    public void Writer_reproduces_the_Linux_SYN_ACK_option_bytes()
    {
        TcpOptionsRepr o = TcpOptionsRepr.None;
        o.Mss = 1460;
        o.SackPermitted = true;
        o.HasTimestamp = true;
        o.TsVal = 4287047038;
        o.TsEcr = 180637476;
        o.WindowScale = 10;

        byte[] dst = new byte[48];
        Array.Fill(dst, (byte)0xA5);
        int n = TcpOptionsWriter.Write(dst, o, isSyn: true);
        Assert.Equal(20, n);
        Assert.Equal(TcpOptionsWriter.Length(o, isSyn: true), n);
        Assert.Equal(ToHex(Hex(LinuxSynAckV4).AsSpan(54, 20)), ToHex(dst.AsSpan(0, n)));
        Assert.All(dst[n..], b => Assert.Equal(0xA5, b));
    }

    [Theory]
    // isSyn, mss, sackPerm, ts, wscale, sackBlocks, expected length
    [InlineData(true, 1460, true, true, 7, 0, 20)]
    [InlineData(true, 1460, true, false, 7, 0, 12)]   // MSS, NOP NOP SACKOK, NOP WS
    [InlineData(true, 1460, false, true, -1, 0, 16)]  // MSS, NOP NOP TS
    [InlineData(true, 0, false, false, -1, 0, 0)]
    [InlineData(true, 536, false, false, -1, 0, 4)]
    [InlineData(false, 1460, true, true, 7, 0, 12)]   // MSS, SACKOK, WS only on SYN
    [InlineData(false, 0, false, false, -1, 1, 12)]
    [InlineData(false, 0, false, false, -1, 4, 36)]
    [InlineData(false, 0, false, true, -1, 3, 40)]
    [InlineData(false, 0, false, true, -1, 4, 40)]    // 4 blocks do not fit beside TS: 3 written
    [InlineData(true, 1460, true, true, 7, 4, 40)]    // 20 + 4 + 2 blocks
    public void Writer_lengths(bool isSyn, int mss, bool sackPerm, bool ts, int wscale, int blocks, int expected)
    {
        TcpOptionsRepr o = Make(mss, sackPerm, ts, wscale, blocks);
        int length = TcpOptionsWriter.Length(o, isSyn);
        Assert.Equal(expected, length);
        Assert.Equal(0, length % 4);
        byte[] dst = new byte[40];
        Assert.Equal(expected, TcpOptionsWriter.Write(dst, o, isSyn));
        if (expected > 0)
        {
            Assert.Equal(0, TcpOptionsWriter.Write(new byte[expected - 1], o, isSyn)); // too small: nothing
        }

        // What was written parses back to what was meant.
        Assert.Equal(DropReason.None, TcpOptionsReader.Parse(dst.AsSpan(0, length), out TcpOptionsRepr back));
        Assert.Equal(isSyn ? mss : 0, back.Mss);
        Assert.Equal(isSyn && sackPerm, back.SackPermitted);
        Assert.Equal(isSyn ? wscale : -1, back.WindowScale);
        Assert.Equal(ts, back.HasTimestamp);
        if (ts)
        {
            Assert.Equal(o.TsVal, back.TsVal);
            Assert.Equal(o.TsEcr, back.TsEcr);
        }
        for (int i = 0; i < back.SackCount; i++)
        {
            Assert.Equal(o.Sack[i], back.Sack[i]);
        }
    }

    [Fact]
    public void Writer_clamps_window_scale_to_14()
    {
        TcpOptionsRepr o = TcpOptionsRepr.None;
        o.WindowScale = 20;
        byte[] dst = new byte[4];
        Assert.Equal(4, TcpOptionsWriter.Write(dst, o, isSyn: true));
        Assert.Equal("0103030e", ToHex(dst));
    }

    [Fact]
    public void Random_option_bytes_never_throw()
    {
        var rng = new Random(7323);
        byte[] buf = new byte[40];
        for (int i = 0; i < 20_000; i++)
        {
            int len = rng.Next(0, 41);
            rng.NextBytes(buf);
            // Bias towards known kinds so the length checks get exercised.
            for (int k = 0; k < len; k += rng.Next(1, 6))
            {
                buf[k] = (byte)rng.Next(0, 10);
            }
            DropReason r = TcpOptionsReader.Parse(buf.AsSpan(0, len), out TcpOptionsRepr o);
            Assert.True(r is DropReason.None or DropReason.TcpOptionMalformed);
            if (r == DropReason.None)
            {
                Assert.InRange(o.WindowScale, -1, 14);
                Assert.InRange(o.SackCount, 0, 4);
            }
        }
    }

    private static TcpOptionsRepr Make(int mss, bool sackPerm, bool ts, int wscale, int blocks)
    {
        TcpOptionsRepr o = TcpOptionsRepr.None;
        o.Mss = (ushort)mss;
        o.SackPermitted = sackPerm;
        o.HasTimestamp = ts;
        o.TsVal = 0x01020304;
        o.TsEcr = 0xA0B0C0D0;
        o.WindowScale = (sbyte)wscale;
        o.SackCount = (byte)blocks;
        for (int i = 0; i < blocks; i++)
        {
            o.Sack[i] = new SackBlock(new SeqNumber((uint)(1000 * i)), new SeqNumber((uint)((1000 * i) + 500)));
        }
        return o;
    }
}
