using System.Buffers.Binary;
using System.Net;
using CookieProxy.Platform;
using Insn = CookieProxy.Platform.Interop.Pcap.bpf_insn;

namespace CookieProxy.Tests.Platform;

/// <summary>
/// The source-prefix fanout program, run through <see cref="ClassicBpf"/> over IP headers: every result is a
/// member, a prefix always gets the same member whatever else the packet says, and random sources spread.
/// </summary>
public class FanoutProgramTests
{
    private const int Sources = 10_000;

    public static TheoryData<int> MemberCounts => new() { 1, 2, 3, 4, 5, 6, 7, 8 };

    private static Insn[] Program(int members, int prefix4 = 32, int prefix6 = 64, uint seed = 0x5EED) =>
        FanoutProgram.Build(FanoutSteering.BySourcePrefix(members, prefix4, prefix6, seed));

    /// <summary>An IPv4 + TCP header; the fields that are not the source vary with <paramref name="noise"/>.</summary>
    private static byte[] Ipv4(IPAddress source, Random noise)
    {
        var header = new byte[40];
        noise.NextBytes(header);
        header[0] = (byte)(0x40 | (5 + noise.Next(11))); // any IHL: the source is at 12 regardless
        source.GetAddressBytes().CopyTo(header, 12);
        return header;
    }

    private static byte[] Ipv6(IPAddress source, Random noise)
    {
        var header = new byte[60];
        noise.NextBytes(header);
        header[0] = (byte)(0x60 | (header[0] & 0x0F)); // traffic class bits are noise too
        source.GetAddressBytes().CopyTo(header, 8);
        return header;
    }

    private static IPAddress RandomV4(Random r)
    {
        var bytes = new byte[4];
        r.NextBytes(bytes);
        return new IPAddress(bytes);
    }

    private static IPAddress RandomV6(Random r)
    {
        var bytes = new byte[16];
        r.NextBytes(bytes);
        bytes[0] = 0x20; // global unicast, never v4-mapped
        return new IPAddress(bytes);
    }

    /// <summary>Keeps the first <paramref name="prefix"/> bits of <paramref name="address"/> and randomises the rest.</summary>
    private static IPAddress SamePrefix(IPAddress address, int prefix, Random r)
    {
        byte[] bytes = address.GetAddressBytes();
        var random = new byte[bytes.Length];
        r.NextBytes(random);
        for (int bit = prefix; bit < bytes.Length * 8; bit++)
        {
            int mask = 0x80 >> (bit % 8);
            bytes[bit / 8] = (byte)((bytes[bit / 8] & ~mask) | (random[bit / 8] & mask));
        }
        return new IPAddress(bytes);
    }

    [Fact]
    public void TheProgramPassesTheKernelsStructuralChecksAndOnlyLoadsRelativeToTheNetworkHeader()
    {
        foreach ((int p4, int p6) in new[] { (32, 128), (24, 64), (16, 48), (1, 1), (0, 0), (32, 96), (20, 100) })
        {
            Insn[] program = Program(members: 4, p4, p6);
            ClassicBpf.Validate(program);
            Assert.True(program.Length <= 40, $"/{p4} /{p6}: {program.Length} instructions");
            // ClassicBpf.Run throws on any load that is not SKF_NET_OFF-relative; run both families once.
            var r = new Random(1);
            ClassicBpf.Run(program, Ipv4(RandomV4(r), r));
            ClassicBpf.Run(program, Ipv6(RandomV6(r), r));
        }
    }

    [Fact]
    public void FlowHashHasNoProgram() =>
        Assert.Throws<ArgumentException>(() => FanoutProgram.Build(FanoutSteering.FlowHash));

    [Theory]
    [InlineData(0)]
    [InlineData(257)]
    public void MemberCountOutsideTheKernelsLimitIsRefused(int members) =>
        Assert.Throws<ArgumentOutOfRangeException>(() => FanoutSteering.BySourcePrefix(members, 32, 64, 0));

    [Theory]
    [MemberData(nameof(MemberCounts))]
    public void EveryResultIsAMemberForBothFamilies(int members)
    {
        Insn[] program = Program(members);
        var r = new Random(members);
        for (int i = 0; i < 2000; i++)
        {
            Assert.InRange(ClassicBpf.Run(program, Ipv4(RandomV4(r), r)), 0u, (uint)members - 1);
            Assert.InRange(ClassicBpf.Run(program, Ipv6(RandomV6(r), r)), 0u, (uint)members - 1);
        }
    }

    [Theory]
    [InlineData(32, 128)]
    [InlineData(24, 64)]
    [InlineData(16, 56)]
    [InlineData(8, 48)]
    [InlineData(27, 97)]
    [InlineData(1, 1)]
    public void AddressesSharingThePrefixGetTheSameMemberWhateverElseThePacketSays(int prefix4, int prefix6)
    {
        var r = new Random(prefix4 * 1000 + prefix6);
        for (int members = 2; members <= 8; members++)
        {
            Insn[] program = Program(members, prefix4, prefix6);
            for (int source = 0; source < 200; source++)
            {
                IPAddress v4 = RandomV4(r);
                IPAddress v6 = RandomV6(r);
                uint member4 = ClassicBpf.Run(program, Ipv4(v4, r));
                uint member6 = ClassicBpf.Run(program, Ipv6(v6, r));
                for (int sibling = 0; sibling < 8; sibling++)
                {
                    IPAddress s4 = SamePrefix(v4, prefix4, r);
                    IPAddress s6 = SamePrefix(v6, prefix6, r);
                    Assert.True(member4 == ClassicBpf.Run(program, Ipv4(s4, r)), $"{v4} and {s4} (/{prefix4}, {members} members)");
                    Assert.True(member6 == ClassicBpf.Run(program, Ipv6(s6, r)), $"{v6} and {s6} (/{prefix6}, {members} members)");
                }
            }
        }
    }

    public static TheoryData<int, int, bool> Spreads()
    {
        var data = new TheoryData<int, int, bool>();
        for (int members = 2; members <= 8; members++)
        {
            data.Add(members, 32, false);
            data.Add(members, 24, false);
            data.Add(members, 64, true);
            data.Add(members, 48, true);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Spreads))]
    public void RandomSourcesSpreadRoughlyEvenly(int members, int prefix, bool ipv6)
    {
        Insn[] program = ipv6 ? Program(members, prefix6: prefix) : Program(members, prefix4: prefix);
        var r = new Random(members * 7919 + prefix);
        var counts = new int[members];
        for (int i = 0; i < Sources; i++)
        {
            counts[ClassicBpf.Run(program, ipv6 ? Ipv6(RandomV6(r), r) : Ipv4(RandomV4(r), r))]++;
        }
        AssertFair(counts, $"{members} members, {(ipv6 ? "IPv6" : "IPv4")} /{prefix}");
    }

    [Theory]
    [MemberData(nameof(MemberCounts))]
    public void NeighbouringPrefixesSpreadToo(int members)
    {
        // 198.18.0.0/24, 198.18.1.0/24, ...: prefixes that differ only in a few low bits of the key.
        Insn[] program = Program(members, prefix4: 24);
        var counts = new int[members];
        var r = new Random(3);
        for (int i = 0; i < 4096; i++)
        {
            var source = new IPAddress([198, (byte)(18 + (i >> 8)), (byte)i, (byte)r.Next(256)]);
            counts[ClassicBpf.Run(program, Ipv4(source, r))]++;
        }
        AssertFair(counts, $"{members} members, 4096 consecutive /24s");
    }

    [Fact]
    public void TheSeedChangesTheMapping()
    {
        var r = new Random(5);
        Insn[] one = Program(8, seed: 1);
        Insn[] other = Program(8, seed: 2);
        int differ = 0;
        for (int i = 0; i < 1000; i++)
        {
            byte[] header = Ipv4(RandomV4(r), r);
            differ += ClassicBpf.Run(one, header) != ClassicBpf.Run(other, header) ? 1 : 0;
        }
        Assert.InRange(differ, 700, 1000); // 7/8 expected
    }

    [Theory]
    [InlineData(new byte[] { 0x00, 0x01, 0x08, 0x00, 0x06, 0x04, 0x00, 0x01 })] // ARP request
    [InlineData(new byte[] { 0x88, 0xcc, 0x02, 0x07 })]                       // anything else
    [InlineData(new byte[0])]                                                    // nothing at all
    [InlineData(new byte[] { 0x45, 0x00, 0x00, 0x28, 0, 0, 0, 0, 64, 6, 0, 0 })] // IPv4 cut before the source
    [InlineData(new byte[] { 0x60, 0, 0, 0, 0, 20, 6, 64, 0x20, 0x01, 0x0d, 0xb8 })] // IPv6 cut inside the source
    public void NonIpAndTruncatedFramesGoToMemberZero(byte[] networkHeader)
    {
        for (int members = 1; members <= 8; members++)
        {
            Assert.Equal(0u, ClassicBpf.Run(Program(members), networkHeader));
        }
    }

    [Fact]
    public void PrefixZeroPutsEveryoneOnOneMember()
    {
        Insn[] program = Program(4, prefix4: 0, prefix6: 0);
        var r = new Random(9);
        uint v4 = ClassicBpf.Run(program, Ipv4(RandomV4(r), r));
        uint v6 = ClassicBpf.Run(program, Ipv6(RandomV6(r), r));
        for (int i = 0; i < 100; i++)
        {
            Assert.Equal(v4, ClassicBpf.Run(program, Ipv4(RandomV4(r), r)));
            Assert.Equal(v6, ClassicBpf.Run(program, Ipv6(RandomV6(r), r)));
        }
    }

    [Fact]
    public void TheMixIsMurmurFmix32OfTheMaskedSourceAndSeed()
    {
        // Pins the program to a plain C# statement of what it computes.
        const uint Seed = 0xC0FFEE;
        Insn[] program = Program(7, prefix4: 24, prefix6: 56, seed: Seed);
        var r = new Random(11);
        for (int i = 0; i < 500; i++)
        {
            IPAddress v4 = RandomV4(r);
            uint key4 = BinaryPrimitives.ReadUInt32BigEndian(v4.GetAddressBytes()) & 0xFFFFFF00;
            Assert.Equal(Fmix32(key4 ^ Seed) % 7, ClassicBpf.Run(program, Ipv4(v4, r)));

            IPAddress v6 = RandomV6(r);
            byte[] b = v6.GetAddressBytes();
            uint key6 = BinaryPrimitives.ReadUInt32BigEndian(b) ^ (BinaryPrimitives.ReadUInt32BigEndian(b.AsSpan(4)) & 0xFFFFFF00);
            Assert.Equal(Fmix32(key6 ^ Seed) % 7, ClassicBpf.Run(program, Ipv6(v6, r)));
        }

        static uint Fmix32(uint h)
        {
            h ^= h >> 16;
            h = unchecked(h * 0x85EBCA6B);
            h ^= h >> 13;
            h = unchecked(h * 0xC2B2AE35);
            h ^= h >> 16;
            return h;
        }
    }

    /// <summary>Each member gets at least half its fair share (a loose bound: 10,000 draws sit within a few %).</summary>
    private static void AssertFair(int[] counts, string what)
    {
        int total = counts.Sum();
        double fair = (double)total / counts.Length;
        Assert.True(counts.All(c => c >= fair / 2), $"{what}: {string.Join(' ', counts)} (fair share {fair:F0})");
    }
}
