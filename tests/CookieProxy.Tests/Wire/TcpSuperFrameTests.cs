using System.Buffers.Binary;
using CookieProxy.Diagnostics;
using CookieProxy.Io;
using CookieProxy.Tcp;
using CookieProxy.Wire;
using static CookieProxy.Tests.Wire.WireTestFrames;

namespace CookieProxy.Tests.Wire;

/// <summary>
/// Super-frames must cut back into exactly the frames we would have sent one by one. The cut here follows
/// Linux's tcp_gso_segment (net/ipv4/tcp_offload.c) and skb_checksum_help: copy the header, advance SEQ by
/// the segment size, PSH/FIN on the last segment only, per-segment IP length, full checksums.
/// </summary>
public class TcpSuperFrameTests
{
    private const int Mss = 1448;

    private static L2L3Template Template(bool v6)
    {
        byte[] syn = Hex(v6 ? LinuxSynV6 : LinuxSynV4);
        Assert.Equal(DropReason.None, PacketParser.Parse(syn, out ParsedPacket p, true));
        return L2L3Template.FromReceived(p, syn);
    }

    private static TcpRepr Segment(uint seq, TcpFlags flags = TcpFlags.Ack, uint tsVal = 1000, int sackBlocks = 0)
    {
        TcpRepr r = default;
        r.SrcPort = 80;
        r.DstPort = 40000;
        r.Seq = new SeqNumber(seq);
        r.Ack = new SeqNumber(77);
        r.Flags = flags;
        r.Window = 502;
        r.Options = TcpOptionsRepr.None;
        r.Options.HasTimestamp = true;
        r.Options.TsVal = tsVal;
        r.Options.TsEcr = 99;
        for (int i = 0; i < sackBlocks; i++)
        {
            r.Options.Sack[i] = new SackBlock(new SeqNumber(5000u + (uint)(i * 100)), new SeqNumber(5050u + (uint)(i * 100)));
        }
        r.Options.SackCount = (byte)sackBlocks;
        return r;
    }

    private static byte[] Payload(int length, int seed)
    {
        byte[] b = new byte[length];
        new Random(seed).NextBytes(b);
        return b;
    }

    /// <summary>What the device does with an offloaded frame: cut (if segmented) and complete checksums.</summary>
    private static List<byte[]> Cut(ReadOnlySpan<byte> frame, in TxOffload o, in L2L3Template t)
    {
        var result = new List<byte[]>();
        int hdr = o.HeaderLength;
        int payload = frame.Length - hdr;
        int size = o.IsSegmented ? o.SegmentSize : payload;
        var tcpIn = new TcpPacket(frame.Slice(o.ChecksumStart).ToArray());
        TcpFlags flags = tcpIn.Flags;
        for (int off = 0, i = 0; off < payload || (payload == 0 && i == 0); off += size, i++)
        {
            int len = Math.Min(size, payload - off);
            bool last = off + len >= payload;
            byte[] seg = new byte[hdr + len];
            frame.Slice(0, hdr).CopyTo(seg);
            frame.Slice(hdr + off, len).CopyTo(seg.AsSpan(hdr));
            int l3 = t.L2Length;
            int segmentLength = seg.Length - o.ChecksumStart;
            if (t.IpVersion == 4)
            {
                var ip = new Ipv4Packet(seg.AsSpan(l3));
                ip.TotalLength = (ushort)(seg.Length - l3);
                ip.HeaderChecksum = 0;
                ip.FillChecksum();
            }
            else
            {
                BinaryPrimitives.WriteUInt16BigEndian(seg.AsSpan(l3 + Ipv6Packet.PayloadLengthOffset), (ushort)segmentLength);
            }
            var tcp = new TcpPacket(seg.AsSpan(o.ChecksumStart));
            tcp.Seq = tcpIn.Seq + off;
            tcp.Flags = last ? flags : flags & ~(TcpFlags.Psh | TcpFlags.Fin);
            // The partial sum in the field must be the pseudo-header sum of the whole super-frame: check it,
            // then complete this segment's checksum the way the kernel does (swap the length, sum the rest).
            Assert.Equal(TcpFrameBuilder.PartialChecksum(t, frame.Length - o.ChecksumStart), tcpIn.Checksum);
            tcp.Checksum = 0;
            tcp.Checksum = Checksum.Tcp(t.OurIp, t.ClientIp, seg.AsSpan(o.ChecksumStart));
            result.Add(seg);
            if (last)
            {
                break;
            }
        }
        return result;
    }

    private static byte[] Single(in L2L3Template t, in TcpRepr seg, ReadOnlySpan<byte> payload)
    {
        byte[] dst = new byte[70000];
        int n = TcpFrameBuilder.Write(dst, t, seg, payload, default);
        Assert.True(n > 0);
        return dst[..n];
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Full_segments_then_a_short_PSH_cut_back_into_the_frames_sent_one_by_one(bool v6)
    {
        L2L3Template t = Template(v6);
        byte[] data = Payload((3 * Mss) + 500, 1);
        var segs = new List<(TcpRepr Repr, int Off, int Len)>
        {
            (Segment(1000), 0, Mss),
            (Segment(1000 + Mss), Mss, Mss),
            (Segment(1000 + (2 * Mss)), 2 * Mss, Mss),
            (Segment(1000 + (3 * Mss), TcpFlags.Ack | TcpFlags.Psh), 3 * Mss, 500),
        };

        byte[] buffer = new byte[70000];
        var frame = new TcpSuperFrame();
        Assert.True(frame.Start(buffer, t, segs[0].Repr, data.AsSpan(0, Mss), default));
        for (int i = 1; i < segs.Count; i++)
        {
            // Split the payload across head and tail, as a ring buffer wrap would.
            ReadOnlySpan<byte> p = data.AsSpan(segs[i].Off, segs[i].Len);
            Assert.True(frame.TryAppend(segs[i].Repr, p[..100], p[100..]));
        }
        Assert.Equal(4, frame.Segments);
        Assert.False(frame.IsOpen);
        int n = frame.Finish(out TxOffload o);
        Assert.False(frame.IsStarted);
        Assert.Equal(Mss, o.SegmentSize);
        Assert.Equal(t.HeaderLength, o.ChecksumStart);
        Assert.Equal(t.HeaderLength + 32, o.HeaderLength);
        Assert.Equal(v6 ? 6 : 4, o.IpVersion);

        List<byte[]> cut = Cut(buffer.AsSpan(0, n), o, t);
        Assert.Equal(4, cut.Count);
        for (int i = 0; i < segs.Count; i++)
        {
            byte[] expected = Single(t, segs[i].Repr, data.AsSpan(segs[i].Off, segs[i].Len));
            Assert.Equal(Convert.ToHexString(expected), Convert.ToHexString(cut[i]));
        }
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void A_declared_super_segment_cuts_into_the_MSS_pieces_the_sender_meant_and_may_be_followed(bool v6)
    {
        L2L3Template t = Template(v6);
        byte[] data = Payload((5 * Mss) + 300, 8);
        byte[] buffer = new byte[70000];
        var frame = new TcpSuperFrame();
        // A sender with SegmentOffloadBytes emits 3 MSS at once, then 2 MSS + 300 with PSH.
        Assert.True(frame.Start(buffer, t, Segment(1), data.AsSpan(0, 3 * Mss), default, segmentSize: Mss));
        Assert.True(frame.IsOpen);
        TcpRepr last = Segment(1 + (3 * (uint)Mss), TcpFlags.Ack | TcpFlags.Psh);
        Assert.True(frame.TryAppend(last, data.AsSpan(3 * Mss), default));
        Assert.Equal(6, frame.Segments);
        int n = frame.Finish(out TxOffload o);
        Assert.Equal(Mss, o.SegmentSize);
        List<byte[]> cut = Cut(buffer.AsSpan(0, n), o, t);
        Assert.Equal(6, cut.Count);
        for (int i = 0; i < 6; i++)
        {
            int len = Math.Min(Mss, data.Length - (i * Mss));
            TcpRepr seg = Segment(1 + (uint)(i * Mss), i == 5 ? TcpFlags.Ack | TcpFlags.Psh : TcpFlags.Ack);
            Assert.Equal(Convert.ToHexString(Single(t, seg, data.AsSpan(i * Mss, len))), Convert.ToHexString(cut[i]));
        }
    }

    [Fact]
    public void An_undeclared_sender_s_longer_segment_is_never_split()
    {
        L2L3Template t = Template(false);
        byte[] data = Payload(3 * Mss, 9);
        byte[] buffer = new byte[70000];
        var frame = new TcpSuperFrame();
        Assert.True(frame.Start(buffer, t, Segment(1), data.AsSpan(0, Mss), default));
        Assert.False(frame.TryAppend(Segment(1 + (uint)Mss), data.AsSpan(Mss, 2 * Mss), default));
    }

    [Fact]
    public void A_FIN_rides_on_the_last_segment_only()
    {
        L2L3Template t = Template(false);
        byte[] data = Payload(2 * Mss, 2);
        byte[] buffer = new byte[70000];
        var frame = new TcpSuperFrame();
        Assert.True(frame.Start(buffer, t, Segment(1), data.AsSpan(0, Mss), default));
        TcpRepr last = Segment(1 + Mss, TcpFlags.Ack | TcpFlags.Psh | TcpFlags.Fin);
        Assert.True(frame.TryAppend(last, data.AsSpan(Mss), default));
        int n = frame.Finish(out TxOffload o);
        List<byte[]> cut = Cut(buffer.AsSpan(0, n), o, t);
        Assert.Equal(Convert.ToHexString(Single(t, Segment(1), data.AsSpan(0, Mss))), Convert.ToHexString(cut[0]));
        Assert.Equal(Convert.ToHexString(Single(t, last, data.AsSpan(Mss))), Convert.ToHexString(cut[1]));
    }

    [Fact]
    public void A_lone_segment_is_not_cut_and_its_checksum_completes_correctly()
    {
        L2L3Template t = Template(false);
        byte[] data = Payload(700, 3);
        byte[] buffer = new byte[70000];
        var frame = new TcpSuperFrame();
        TcpRepr seg = Segment(5, TcpFlags.Ack | TcpFlags.Psh);
        Assert.True(frame.Start(buffer, t, seg, data, default));
        Assert.False(frame.IsOpen);    // PSH ends it
        int n = frame.Finish(out TxOffload o);
        Assert.False(o.IsSegmented);
        List<byte[]> cut = Cut(buffer.AsSpan(0, n), o, t);
        Assert.Single(cut);
        Assert.Equal(Convert.ToHexString(Single(t, seg, data)), Convert.ToHexString(cut[0]));
    }

    [Fact]
    public void Pure_ACKs_SACK_carriers_and_short_first_segments_travel_alone()
    {
        L2L3Template t = Template(false);
        byte[] buffer = new byte[70000];
        byte[] data = Payload(Mss, 4);
        var frame = new TcpSuperFrame();

        Assert.True(frame.Start(buffer, t, Segment(1), default, default));
        Assert.False(frame.IsOpen);
        frame.Finish(out _);

        Assert.True(frame.Start(buffer, t, Segment(1, sackBlocks: 1), data, default));
        Assert.False(frame.IsOpen);
        frame.Finish(out _);

        Assert.True(frame.Start(buffer, t, Segment(1), data.AsSpan(0, 100), default));
        Assert.True(frame.IsOpen);    // a short first segment sets a short cut size...
        Assert.False(frame.TryAppend(Segment(101), data.AsSpan(0, 200), default));    // ...that larger ones cannot follow
        Assert.True(frame.TryAppend(Segment(101), data.AsSpan(0, 100), default));
        Assert.Equal(2, frame.Segments);
    }

    [Fact]
    public void Segments_that_differ_in_more_than_SEQ_PSH_and_FIN_are_refused()
    {
        L2L3Template t = Template(false);
        byte[] buffer = new byte[70000];
        byte[] data = Payload(Mss, 5);
        var frame = new TcpSuperFrame();
        Assert.True(frame.Start(buffer, t, Segment(1), data, default));

        Assert.False(frame.TryAppend(Segment(1 + Mss + 1), data, default));             // a gap
        Assert.False(frame.TryAppend(Segment(1 + Mss, tsVal: 1001), data, default));    // another TSval
        Assert.False(frame.TryAppend(Segment(1 + Mss, sackBlocks: 1), data, default));  // SACK blocks
        TcpRepr otherWindow = Segment(1 + Mss);
        otherWindow.Window = 503;
        Assert.False(frame.TryAppend(otherWindow, data, default));
        TcpRepr otherAck = Segment(1 + Mss);
        otherAck.Ack = new SeqNumber(78);
        Assert.False(frame.TryAppend(otherAck, data, default));
        Assert.False(frame.TryAppend(Segment(1 + Mss, TcpFlags.Ack | TcpFlags.Rst), data, default));
        Assert.False(frame.TryAppend(Segment(1 + Mss), default, default));             // no payload
        Assert.Equal(1, frame.Segments);
        Assert.True(frame.TryAppend(Segment(1 + Mss), data, default));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Grows_to_the_16_bit_IP_length_limit_and_no_further(bool v6)
    {
        L2L3Template t = Template(v6);
        byte[] buffer = new byte[70000];
        byte[] data = Payload(Mss, 6);
        var frame = new TcpSuperFrame();
        Assert.True(frame.Start(buffer, t, Segment(0), data, default));
        uint seq = Mss;
        while (frame.TryAppend(Segment(seq), data, default))
        {
            seq += Mss;
        }
        int n = frame.Finish(out TxOffload o);
        int ipLength = n - t.L2Length - (v6 ? Ipv6Packet.HeaderLength : 0);
        Assert.True(ipLength <= ushort.MaxValue);
        Assert.True(ipLength + Mss > ushort.MaxValue);    // one more would not have fitted
        Assert.Equal((int)(seq / Mss), (n - o.HeaderLength) / Mss);
        Assert.Equal(Cut(buffer.AsSpan(0, n), o, t).Count, (n - o.HeaderLength) / Mss);
    }

    [Fact]
    public void Stops_at_the_buffer_end()
    {
        L2L3Template t = Template(false);
        byte[] data = Payload(Mss, 7);
        byte[] buffer = new byte[t.HeaderLength + 32 + (2 * Mss) + 10];
        var frame = new TcpSuperFrame();
        Assert.True(frame.Start(buffer, t, Segment(0), data, default));
        Assert.True(frame.TryAppend(Segment(Mss), data, default));
        Assert.False(frame.TryAppend(Segment(2 * Mss), data, default));
        Assert.False(frame.Start(new byte[40], t, Segment(0), data, default));
        Assert.False(frame.IsStarted);
    }
}
