using CookieProxy.Diagnostics;
using CookieProxy.Wire;
using static CookieProxy.Tests.Wire.WireTestFrames;

namespace CookieProxy.Tests.Oracle;

/// <summary>
/// Differential: PacketDotNet and our parser read every frame of the corpus (tests/.../Wire/Corpus: curl and hping3
/// captures from the lab) the same way: addresses, ports, sequence numbers, flags, window, options, payload,
/// checksums; and the frames our parser refuses are the ones whose flags PacketDotNet shows to be invalid.
/// </summary>
public sealed class CorpusDifferentialTests
{
    public static TheoryData<string> CorpusFrames()
    {
        var data = new TheoryData<string>();
        foreach (string name in CorpusNames())
        {
            data.Add(name);
        }
        return data;
    }

    [Fact]
    public void TheCorpusIsThere()
    {
        Assert.True(CorpusNames().Count() >= 25);
    }

    [Theory]
    [MemberData(nameof(CorpusFrames))]
    public void PacketDotNetReadsEachCorpusFrameAsOurParserDoes(string name)
    {
        byte[] frame = Corpus(name);
        DropReason verdict = PacketParser.Parse(frame, out ParsedPacket p, verifyChecksums: true);
        OracleFrame o = PacketDotNetOracle.Decode(frame);

        if (name.StartsWith("bad-", StringComparison.Ordinal))
        {
            // Refused for its flags: SYN with FIN, or no flag at all (a "null scan").
            Assert.Equal(DropReason.TcpBadFlags, verdict);
            bool anyFlag = o.Syn || o.AckFlag || o.Rst || o.Fin || o.Psh || o.Urg;
            Assert.True((o.Syn && o.Fin) || !anyFlag, $"{name}: PacketDotNet sees acceptable flags");
            return;
        }

        Assert.Equal(DropReason.None, verdict);
        Assert.True(o.ChecksumsValid, $"{name}: PacketDotNet finds a bad checksum our parser accepted");
        Assert.Equal(p.IpVersion, o.IpVersion);
        Assert.Equal(p.VlanCount, o.Tags.Count);
        Assert.Equal(p.Flow.SrcAddr.ToIPAddress(), o.Source);
        Assert.Equal(p.Flow.DstAddr.ToIPAddress(), o.Destination);
        Assert.Equal(p.Ttl, o.Ttl);
        Assert.Equal(p.TrafficClass, o.TrafficClass);
        Assert.Equal(p.Tcp.SrcPort, o.SourcePort);
        Assert.Equal(p.Tcp.DstPort, o.DestinationPort);
        Assert.Equal(p.Tcp.Seq.Value, o.Seq);
        Assert.Equal(p.Tcp.Ack.Value, o.Ack);
        Assert.Equal((p.Tcp.Flags & TcpFlags.Syn) != 0, o.Syn);
        Assert.Equal((p.Tcp.Flags & TcpFlags.Ack) != 0, o.AckFlag);
        Assert.Equal((p.Tcp.Flags & TcpFlags.Rst) != 0, o.Rst);
        Assert.Equal((p.Tcp.Flags & TcpFlags.Fin) != 0, o.Fin);
        Assert.Equal((p.Tcp.Flags & TcpFlags.Psh) != 0, o.Psh);
        Assert.Equal((p.Tcp.Flags & TcpFlags.Urg) != 0, o.Urg);
        Assert.Equal(p.Tcp.Window, o.Window);
        Assert.Equal(p.TcpHeaderLength, o.TcpHeaderLength);
        Assert.Equal(p.GetPayload(frame).ToArray(), o.Payload);
        if (o.OptionsUnread)
        {
            // PacketDotNet 1.4.8 does not parse the options of a segment with URG set (hping3's Xmas scan).
            Assert.True(o.Urg, $"{name}: PacketDotNet left the options unread without URG");
            return;
        }
        Assert.Equal(p.Tcp.Options.Mss == 0 ? null : p.Tcp.Options.Mss, o.Mss);
        Assert.Equal(p.Tcp.Options.WindowScale < 0 ? null : p.Tcp.Options.WindowScale, o.WindowScale);
        Assert.Equal(p.Tcp.Options.SackPermitted, o.SackPermitted);
        Assert.Equal(p.Tcp.Options.HasTimestamp ? p.Tcp.Options.TsVal : null, o.TsVal);
        Assert.Equal(p.Tcp.Options.HasTimestamp ? p.Tcp.Options.TsEcr : null, o.TsEcr);
        Assert.Equal(p.Tcp.Options.SackCount, o.SackBlocks);
    }
}
