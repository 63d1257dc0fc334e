using System.Net;
using CookieProxy.Io;
using CookieProxy.Tcp;
using CookieProxy.Tests.Tcp;
using CookieProxy.Wire;
using PacketDotNet;

namespace CookieProxy.Tests.Oracle;

/// <summary>
/// The frames a flow sends (the endpoint's segments, built as the host builds them: one frame per segment with
/// <see cref="TcpFrameBuilder"/>, or a super-frame with <see cref="TcpSuperFrame"/> that the device cuts),
/// decoded by PacketDotNet: a challenge ACK (RFC 5961), the RST of an abort, data segments, and a super-frame
/// cut by an independent cutter written on PacketDotNet, which must give exactly the one-by-one frames.
/// </summary>
public sealed class FlowFramesOracleTests : TcpTestBase
{
    public static TheoryData<bool, Tagging> Families() => new()
    {
        { false, Tagging.None },
        { true, Tagging.None },
        { false, Tagging.Dot1Q },
        { true, Tagging.QinQ },
    };

    private static byte[] FrameOf(SentSegment s, bool v6, Tagging tagging)
    {
        L2L3Template server = OracleTemplates.Server(v6, tagging);
        var buffer = new byte[70_000];
        int n = TcpFrameBuilder.Write(buffer, server, s.Repr, s.Payload, default);
        Assert.True(n > 0);
        return buffer.AsSpan(0, n).ToArray();
    }

    /// <summary>What every frame of ours shares: our MAC and address to the client's, DF and TTL 64 (IPv4), tags, checksums.</summary>
    private static void AssertOurFrame(OracleFrame o, bool v6, Tagging tagging)
    {
        Assert.Equal("020000000001", o.SourceMac);
        Assert.Equal("020000000002", o.DestinationMac);
        OracleTemplates.AssertTags(tagging, o);
        Assert.Equal(v6 ? 6 : 4, o.IpVersion);
        Assert.Equal((v6 ? OracleTemplates.ServerV6 : OracleTemplates.ServerV4).Address, o.Source);
        Assert.Equal(IPAddress.Parse(v6 ? OracleTemplates.ClientV6 : OracleTemplates.ClientV4), o.Destination);
        Assert.Equal(L2L3Template.DefaultTtl, o.Ttl);
        Assert.Equal(!v6, o.DontFragment);
        Assert.Equal(LocalPort, o.SourcePort);
        Assert.Equal(RemotePort, o.DestinationPort);
        Assert.True(o.ChecksumsValid, $"IP checksum valid: {o.IpChecksumValid}, TCP checksum valid: {o.TcpChecksumValid}");
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void AChallengeAckForAnInWindowRstAcknowledgesRcvNxtFromSndNxt(bool v6, Tagging tagging)
    {
        InEstablished();
        Send(ClientNext + 10, flags: TcpFlags.Rst);
        SentSegment challenge = Recv();

        OracleFrame o = PacketDotNetOracle.Decode(FrameOf(challenge, v6, tagging));

        AssertOurFrame(o, v6, tagging);
        // RFC 5961 3.2: <SEQ=SND.NXT><ACK=RCV.NXT><CTL=ACK>.
        Assert.True(o.AckFlag);
        Assert.False(o.Syn || o.Rst || o.Fin || o.Psh);
        Assert.Equal(OurNext.Value, o.Seq);
        Assert.Equal(ClientNext.Value, o.Ack);
        Assert.Equal(challenge.Window, o.Window);
        Assert.Empty(o.Payload);
        Assert.Equal(1, Ep.ChallengeAcksSent);
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void AChallengeAckForAnInWindowSynCarriesTheTimestampEcho(bool v6, Tagging tagging)
    {
        InEstablished(handshake: Handshake(ts: true));
        Send(ClientNext + 100, flags: TcpFlags.Syn, tsVal: 5_001);
        SentSegment challenge = Recv();

        OracleFrame o = PacketDotNetOracle.Decode(FrameOf(challenge, v6, tagging));

        AssertOurFrame(o, v6, tagging);
        // RFC 5961 4.2: a SYN in the window is answered with an ACK, never a reset.
        Assert.True(o.AckFlag);
        Assert.False(o.Syn || o.Rst);
        Assert.Equal(OurNext.Value, o.Seq);
        Assert.Equal(ClientNext.Value, o.Ack);
        Assert.Equal(challenge.Repr.Options.TsVal, o.TsVal);
        Assert.Equal(challenge.Repr.Options.TsEcr, o.TsEcr);
        Assert.Equal(32, o.TcpHeaderLength); // 20 + NOP NOP TS
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void TheRstOfAnAbortIsAtSndNxtAndAcknowledgesRcvNxt(bool v6, Tagging tagging)
    {
        InEstablished();
        Ep.Abort();
        SentSegment rst = Recv();

        OracleFrame o = PacketDotNetOracle.Decode(FrameOf(rst, v6, tagging));

        AssertOurFrame(o, v6, tagging);
        Assert.True(o.Rst && o.AckFlag);
        Assert.False(o.Syn || o.Fin);
        Assert.Equal(OurNext.Value, o.Seq);
        Assert.Equal(ClientNext.Value, o.Ack);
        Assert.Empty(o.Payload);
    }

    /// <summary>The endpoint sends <paramref name="bytes"/> and emits its segments; each is one frame.</summary>
    private (List<SentSegment> Segments, byte[] Data) SendBurst(int bytes)
    {
        InEstablished(handshake: Handshake(ts: true, sack: true));
        var data = new byte[bytes];
        new Random(1234).NextBytes(data);
        Assert.Equal(bytes, Ep.Send(data));
        List<SentSegment> segments = DispatchAll();
        Assert.True(segments.Count >= 3, $"expected a burst, got {segments.Count} segment(s)");
        return (segments, data);
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void DataSegmentsCarryTheStreamInOrderWithValidChecksums(bool v6, Tagging tagging)
    {
        (List<SentSegment> segments, byte[] data) = SendBurst(4 * 1448 + 300);

        var stream = new List<byte>();
        uint expectedSeq = OurNext.Value;
        foreach (SentSegment s in segments)
        {
            OracleFrame o = PacketDotNetOracle.Decode(FrameOf(s, v6, tagging));
            AssertOurFrame(o, v6, tagging);
            Assert.True(o.AckFlag);
            Assert.Equal(expectedSeq, o.Seq);
            Assert.Equal(ClientNext.Value, o.Ack);
            Assert.Equal(s.Repr.Options.TsVal, o.TsVal);
            Assert.Equal(s.Payload, o.Payload);
            expectedSeq += (uint)o.Payload.Length;
            stream.AddRange(o.Payload);
        }
        Assert.Equal(data, stream.ToArray());
    }

    [Theory]
    [MemberData(nameof(Families))]
    public void ASuperFrameCutByAnIndependentCutterGivesExactlyTheOneByOneFrames(bool v6, Tagging tagging)
    {
        (List<SentSegment> segments, _) = SendBurst(5 * 1448);
        L2L3Template server = OracleTemplates.Server(v6, tagging);
        int segmentSize = segments[0].Payload.Length;
        var buffer = new byte[70_000];
        var super = new TcpSuperFrame();
        Assert.True(super.Start(buffer, server, segments[0].Repr, segments[0].Payload, default, segmentSize));
        for (int i = 1; i < segments.Count; i++)
        {
            Assert.True(super.TryAppend(segments[i].Repr, segments[i].Payload, default), $"segment {i} did not join the super-frame");
        }
        int length = super.Finish(out TxOffload offload);
        byte[] superFrame = buffer.AsSpan(0, length).ToArray();

        // The super-frame itself: one TCP header, the whole stream, and in the checksum field only the folded
        // pseudo-header sum (CHECKSUM_PARTIAL), computed here from what PacketDotNet reads.
        OracleFrame whole = PacketDotNetOracle.Decode(superFrame);
        Assert.Equal(segments.Sum(s => s.Payload.Length), whole.Payload.Length);
        Assert.Equal(PseudoHeaderSum(whole, whole.TcpHeaderLength + whole.Payload.Length), whole.TcpChecksum);
        Assert.Equal(segmentSize, offload.SegmentSize);

        List<byte[]> cut = Cut(superFrame, segmentSize);

        Assert.Equal(segments.Count, cut.Count);
        for (int i = 0; i < segments.Count; i++)
        {
            byte[] oneByOne = FrameOf(segments[i], v6, tagging);
            Assert.True(oneByOne.AsSpan().SequenceEqual(cut[i]),
                $"segment {i}: the cut frame differs from the one-by-one frame at byte {FirstDifference(oneByOne, cut[i])} "
                + $"(lengths {oneByOne.Length} and {cut[i].Length})");
            Assert.True(PacketDotNetOracle.Decode(cut[i]).ChecksumsValid);
        }
    }

    /// <summary>
    /// The cut a device makes (Linux tcp_gso_segment + skb_checksum_help), on PacketDotNet alone: the headers
    /// repeated, SEQ advanced by the segment size, PSH and FIN on the last segment only, each IP length its own,
    /// both checksums recomputed by PacketDotNet. The IPv4 ID stays as sent: the frames are DF (atomic, RFC 6864),
    /// as our one-by-one frames are.
    /// </summary>
    private static List<byte[]> Cut(byte[] superFrame, int segmentSize)
    {
        Packet packet = Packet.ParsePacket(LinkLayers.Ethernet, superFrame);
        IPPacket ip = packet.Extract<IPPacket>();
        PacketDotNet.TcpPacket tcp = packet.Extract<PacketDotNet.TcpPacket>();
        int headers = superFrame.Length - tcp.PayloadData.Length;
        byte[] payload = tcp.PayloadData;
        var result = new List<byte[]>();
        for (int offset = 0; offset < payload.Length; offset += segmentSize)
        {
            int size = Math.Min(segmentSize, payload.Length - offset);
            bool last = offset + size == payload.Length;
            byte[] bytes = [.. superFrame.AsSpan(0, headers), .. payload.AsSpan(offset, size)];
            Packet segment = Packet.ParsePacket(LinkLayers.Ethernet, bytes);
            IPPacket segmentIp = segment.Extract<IPPacket>();
            PacketDotNet.TcpPacket segmentTcp = segment.Extract<PacketDotNet.TcpPacket>();
            int tcpLength = tcp.DataOffset * 4 + size;
            if (segmentIp is IPv4Packet v4)
            {
                v4.TotalLength = v4.HeaderLength * 4 + tcpLength; // PacketDotNet's HeaderLength is the IHL, in 32-bit words
                v4.UpdateIPChecksum();
            }
            else
            {
                segmentIp.PayloadLength = (ushort)tcpLength;
            }
            segmentTcp.SequenceNumber = tcp.SequenceNumber + (uint)offset;
            segmentTcp.Push = last && tcp.Push;
            segmentTcp.Finished = last && tcp.Finished;
            segmentTcp.UpdateTcpChecksum();
            result.Add(segment.Bytes);
        }
        return result;
    }

    private static int FirstDifference(byte[] a, byte[] b)
    {
        int n = Math.Min(a.Length, b.Length);
        for (int i = 0; i < n; i++)
        {
            if (a[i] != b[i])
            {
                return i;
            }
        }
        return n;
    }

    /// <summary>RFC 9293 3.1 pseudo-header (IPv4) / RFC 8200 8.1 (IPv6) summed and folded, not complemented.</summary>
    private static ushort PseudoHeaderSum(OracleFrame o, int tcpLength)
    {
        long sum = 0;
        void Add(ReadOnlySpan<byte> bytes)
        {
            for (int i = 0; i < bytes.Length; i += 2)
            {
                sum += (bytes[i] << 8) | (i + 1 < bytes.Length ? bytes[i + 1] : 0);
            }
        }
        Add(o.Source.GetAddressBytes());
        Add(o.Destination.GetAddressBytes());
        sum += 6;             // protocol TCP
        sum += tcpLength >> 16;
        sum += tcpLength & 0xFFFF;
        while (sum > 0xFFFF)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        return (ushort)sum;
    }
}
