using CookieProxy.Diagnostics;
using CookieProxy.Wire;
using static CookieProxy.Tests.Wire.WireTestFrames;

namespace CookieProxy.Tests.Wire;

/// <summary>Hostile input never throws: every truncation and a seeded mutation fuzz of real frames.</summary>
public class RobustnessTests
{
    private static List<byte[]> Seeds()
    {
        var seeds = new List<byte[]>();
        foreach (string name in CorpusNames().Where(n => !n.StartsWith("bad-", StringComparison.Ordinal)))
        {
            seeds.Add(Corpus(name));
        }
        byte[] syn = LinuxSynSegment();
        seeds.Add(BuildV4(syn, tags: [(0x8100, 100)]));
        seeds.Add(BuildV4(syn, tags: [(0x88A8, 1), (0x8100, 2)]));
        seeds.Add(BuildV4(syn, ipOptions: Hex("94040000 01010100")));
        seeds.Add(BuildV6(syn, extensionHeaders: [.. OptionsHeader(60), .. OptionsHeader(6)], firstNextHeader: 0));
        seeds.Add(BuildV6(syn, extensionHeaders: [6, 2, 4, 0, 0, 0, 0, 0, .. new byte[16]], firstNextHeader: 43, tags: [(0x8100, 7)]));
        return seeds;
    }

    [Fact]
    public void Every_truncation_of_a_valid_frame_is_a_drop_reason()
    {
        foreach (byte[] frame in Seeds())
        {
            Assert.Equal(DropReason.None, PacketParser.Parse(frame, out _, verifyChecksums: true));
            for (int length = 0; length < frame.Length; length++)
            {
                // A fresh exact-size array, so reading past the end would throw.
                byte[] cut = frame[..length];
                DropReason r1 = PacketParser.Parse(cut, out _, verifyChecksums: true);
                DropReason r2 = PacketParser.Parse(cut, out _, verifyChecksums: false);
                Assert.NotEqual(DropReason.None, r1);
                Assert.NotEqual(DropReason.None, r2);
            }
        }
    }

    [Fact]
    public void Twenty_thousand_mutated_frames_never_throw_and_accepted_ones_are_consistent()
    {
        List<byte[]> seeds = Seeds();
        var rng = new Random(20_000);
        byte[] replyBuffer = new byte[256];
        int accepted = 0;
        int synAcks = 0;
        var reasons = new int[(int)DropReason.Count];

        for (int i = 0; i < 20_000; i++)
        {
            byte[] frame = Mutate(seeds[rng.Next(seeds.Count)], rng);
            bool verify = (i & 1) == 0;
            DropReason r = PacketParser.Parse(frame, out ParsedPacket p, verify);
            reasons[(int)r]++;
            if (r != DropReason.None)
            {
                continue;
            }

            accepted++;
            Assert.InRange(p.FrameLength, 54, frame.Length);
            Assert.True(p.L3Offset < p.L4Offset && p.L4Offset + 20 <= p.PayloadOffset);
            Assert.Equal(p.FrameLength, p.PayloadOffset + p.PayloadLength);
            Assert.InRange(p.Tcp.Options.WindowScale, -1, 14);

            // A SYN to a multicast/broadcast destination passes the parser (the protected-endpoint check drops
            // it, RFC 1122 4.2.3.10) but its reply would carry a bogus source, which the parser then refuses.
            bool replyable = p.IsV4 ? !Ipv4Packet.IsBadSource(p.Flow.DstAddr.V4) : !Ipv6Packet.IsBadSource(p.Flow.DstAddr);
            if (replyable && (p.Tcp.Flags & TcpFlags.Syn) != 0 && (p.Tcp.Flags & TcpFlags.Ack) == 0)
            {
                // Whatever passed the parser must come out as a valid SYN+ACK.
                Array.Fill(replyBuffer, (byte)0xA5);
                frame.AsSpan(0, Math.Min(frame.Length, replyBuffer.Length)).CopyTo(replyBuffer);
                TcpOptionsRepr ours = TcpOptionsRepr.None;
                ours.Mss = 1460;
                ours.WindowScale = 7;
                ours.SackPermitted = p.Tcp.Options.SackPermitted;
                ours.HasTimestamp = p.Tcp.Options.HasTimestamp;
                ours.TsEcr = p.Tcp.Options.TsVal;
                int n = SynAckWriter.RewriteInPlace(replyBuffer, p, (uint)i, ours, 1000);
                Assert.True(n > 0);
                Assert.Equal(DropReason.None, PacketParser.Parse(replyBuffer.AsSpan(0, n), out ParsedPacket reply, verifyChecksums: true));
                Assert.Equal(p.Flow.SrcAddr, reply.Flow.DstAddr);
                Assert.Equal(p.Tcp.Seq + 1, reply.Tcp.Ack);
                synAcks++;
            }
            else if (replyable && (p.Tcp.Flags & TcpFlags.Rst) == 0)
            {
                Array.Fill(replyBuffer, (byte)0xA5);
                frame.AsSpan(0, Math.Min(frame.Length, replyBuffer.Length)).CopyTo(replyBuffer);
                int n = RstWriter.RewriteInPlace(replyBuffer, p);
                Assert.True(n > 0);
                Assert.Equal(DropReason.None, PacketParser.Parse(replyBuffer.AsSpan(0, n), out ParsedPacket rst, verifyChecksums: true));
                Assert.True((rst.Tcp.Flags & TcpFlags.Rst) != 0);
            }
        }

        // The mutations must still leave a fair share of frames for the deeper layers.
        Assert.True(accepted > 1000, $"only {accepted} accepted");
        Assert.True(synAcks > 100, $"only {synAcks} SYN+ACKs");
        Assert.True(reasons[(int)DropReason.TcpOptionMalformed] > 0);
        Assert.True(reasons[(int)DropReason.Ipv4BadTotalLength] > 0);
    }

    private static byte[] Mutate(byte[] seed, Random rng)
    {
        byte[] f = (byte[])seed.Clone();
        int mutations = rng.Next(1, 4);
        for (int m = 0; m < mutations; m++)
        {
            switch (rng.Next(8))
            {
                case 0:
                case 1:
                    // Flip a bit anywhere.
                    int at = rng.Next(f.Length);
                    f[at] ^= (byte)(1 << rng.Next(8));
                    break;
                case 2:
                    // Random byte in the headers, where it matters most.
                    f[rng.Next(Math.Min(f.Length, 100))] = (byte)rng.Next(256);
                    break;
                case 3:
                    // Small values are the interesting ones for length fields.
                    f[rng.Next(Math.Min(f.Length, 100))] = (byte)rng.Next(0, 8);
                    break;
                case 4:
                    f = f[..rng.Next(f.Length + 1)];
                    break;
                case 5:
                    byte[] longer = new byte[f.Length + rng.Next(1, 40)];
                    rng.NextBytes(longer);
                    f.CopyTo(longer, 0);
                    f = longer;
                    break;
                case 6:
                    // Mutate within the TCP options area of a plain IPv4 or IPv6 frame.
                    int start = f.Length > 54 ? 54 : 0;
                    if (f.Length > start)
                    {
                        f[rng.Next(start, f.Length)] = (byte)rng.Next(0, 12);
                    }
                    break;
                default:
                    // Leave as is (also exercises the valid path).
                    break;
            }
            if (f.Length == 0)
            {
                break;
            }
        }
        return f;
    }
}
