using System.Diagnostics;
using CookieProxy.Diagnostics;
using CookieProxy.ProxyProtocol;
using CookieProxy.Tcp;
using CookieProxy.Tests.ProxyProtocol;
using CookieProxy.Tests.Support;
using CookieProxy.Wire;
using Xunit.Abstractions;

namespace CookieProxy.Tests.Fuzz;

/// <summary>
/// Issue 12.1: the TCP option parser and the PROXY header parser as fuzz targets of their own (the frame target
/// reaches the option parser too, but behind the IP and TCP checks). Inputs are what our writers produce, mutated
/// (bit flips, interesting bytes, truncation, insertion, random bytes). Invariants: no exception; only the verdicts
/// each parser documents; what parses writes back and parses again to the same thing; a PROXY header is
/// self-delimiting (the bytes after it change nothing) and a header cut short asks for more data, never a verdict.
/// </summary>
[Trait("Category", "Fuzz")]
[Collection(SerialCollection.Name)]
public class ParserFuzzTests
{
    private static readonly byte[] s_interesting = [0, 1, 2, 3, 4, 5, 8, 10, 13, 18, 26, 34, 40, 0x0A, 0x0D, 0x20, 0x2E, 0x30, 0x39, 0x3A, 0x7F, 0x80, 0xFF];
    private readonly ITestOutputHelper _output;

    public ParserFuzzTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void Half_a_million_mutated_option_blocks_parse_or_are_malformed_and_what_parses_round_trips()
    {
        long total = FuzzSettings.Count(500_000);
        string what = FuzzSettings.Describe("tcp-options");
        var rng = new Random(FuzzSettings.SeedFor("tcp-options"));
        Span<byte> block = stackalloc byte[64];
        Span<byte> again = stackalloc byte[64];
        long parsed = 0, malformed = 0;
        var clock = Stopwatch.StartNew();
        for (long n = 0; n < total; n++)
        {
            bool isSyn = rng.Next(2) == 0;
            TcpOptionsRepr source = RandomOptions(rng);
            int length = TcpOptionsWriter.Write(block, source, isSyn);
            int mutations = rng.Next(8) switch { 0 => 0, < 5 => 1, < 7 => 2, _ => 3 + rng.Next(4) };
            if (mutations == 0)
            {
                // Unmutated: parses back to what was written.
                DropReason clean = TcpOptionsReader.Parse(block[..length], out TcpOptionsRepr back);
                Assert.True(clean == DropReason.None, $"{what}: our own options do not parse ({clean}): {Hex(block[..length])}");
                AssertSameOptions(Written(source, isSyn, length), back, $"{what}: written and parsed differ: {Hex(block[..length])}");
            }
            for (int m = 0; m < mutations; m++)
            {
                length = Mutate(rng, block, length, maxLength: 40);
            }
            DropReason r;
            TcpOptionsRepr repr;
            try
            {
                r = TcpOptionsReader.Parse(block[..length], out repr);
            }
            catch (Exception e)
            {
                Assert.Fail($"{what}: {e.GetType().Name} escaped the option parser on {Hex(block[..length])}\n{e}");
                return;
            }
            if (r == DropReason.TcpOptionMalformed)
            {
                malformed++;
                continue;
            }
            Assert.True(r == DropReason.None, $"{what}: verdict {r} on {Hex(block[..length])}");
            parsed++;
            Assert.True(repr.WindowScale is >= -1 and <= 14 && repr.SackCount <= 4, $"{what}: out of range on {Hex(block[..length])}");
            // What parsed writes back (as a SYN's options: every kind) and parses to the same again.
            int written = TcpOptionsWriter.Write(again, repr, isSyn: true);
            Assert.True(written > 0 || TcpOptionsWriter.Length(repr, isSyn: true) == 0, $"{what}: cannot write back {Hex(block[..length])}");
            Assert.True(TcpOptionsReader.Parse(again[..written], out TcpOptionsRepr twice) == DropReason.None,
                $"{what}: the written-back options do not parse: {Hex(block[..length])} -> {Hex(again[..written])}");
            AssertSameOptions(Written(repr, isSyn: true, written), twice, $"{what}: round trip of {Hex(block[..length])} -> {Hex(again[..written])}");
        }
        _output.WriteLine($"{what}: {total} option blocks in {clock.Elapsed.TotalSeconds:F1} s; parsed {parsed}, malformed {malformed}");
        Assert.True(parsed > 0 && malformed > 0, $"{what}: the mutants did not reach both verdicts");
    }

    [Fact]
    public void Half_a_million_mutated_proxy_headers_never_throw_and_every_header_delimits_itself()
    {
        long total = FuzzSettings.Count(500_000);
        string what = FuzzSettings.Describe("proxy-header");
        var rng = new Random(FuzzSettings.SeedFor("proxy-header"));
        var data = new byte[512];
        var copy = new byte[600];
        var verdicts = new long[(int)ProxyParseResult.V2BadLength + 1];
        var clock = Stopwatch.StartNew();
        for (long n = 0; n < total; n++)
        {
            bool v4 = rng.Next(2) == 0;
            IpAddr src = RandomAddress(rng, v4), dst = RandomAddress(rng, v4);
            ushort sport = (ushort)rng.Next(65536), dport = (ushort)rng.Next(65536);
            bool v1 = rng.Next(2) == 0;
            int length = v1 ? ProxyHeaderWriter.WriteV1(data, src, dst, sport, dport) : ProxyHeaderWriter.WriteV2(data, src, dst, sport, dport);
            int headerLength = length;
            int trailing = rng.Next(4) == 0 ? 0 : rng.Next(64);
            rng.NextBytes(data.AsSpan(length, trailing));
            length += trailing;
            int mutations = rng.Next(8) switch { 0 => 0, < 5 => 1, < 7 => 2, _ => 3 + rng.Next(4) };
            if (mutations == 0)
            {
                ProxyParseResult clean = ProxyHeaderParser.TryParse(data.AsSpan(0, length), out ProxyHeader h);
                Assert.True(clean == ProxyParseResult.Success && h.Length == headerLength && h.SourceAddress == src && h.DestinationAddress == dst
                    && h.SourcePort == sport && h.DestinationPort == dport && h.Transport == (v4 ? ProxyTransport.Tcp4 : ProxyTransport.Tcp6),
                    $"{what}: our own header does not parse back ({clean}, {h}): {Hex(data.AsSpan(0, length))}");
            }
            for (int m = 0; m < mutations; m++)
            {
                length = Mutate(rng, data, length, maxLength: data.Length);
            }
            ReadOnlySpan<byte> input = data.AsSpan(0, length);
            ProxyParseResult r;
            ProxyHeader header;
            try
            {
                r = ProxyHeaderParser.TryParse(input, out header);
            }
            catch (Exception e)
            {
                Assert.Fail($"{what}: {e.GetType().Name} escaped the PROXY parser on {Hex(input)}\n{e}");
                return;
            }
            Assert.True(r <= ProxyParseResult.V2BadLength, $"{what}: undocumented verdict {r} on {Hex(input)}");
            verdicts[(int)r]++;
            if (r != ProxyParseResult.Success)
            {
                continue;
            }
            Assert.True(header.Length > 0 && header.Length <= length, $"{what}: header length {header.Length} of {length} bytes: {Hex(input)}");
            // Self-delimiting: the header alone, or followed by other bytes, parses the same.
            input[..header.Length].CopyTo(copy);
            int extra = rng.Next(64);
            rng.NextBytes(copy.AsSpan(header.Length, extra));
            foreach (int cut in (ReadOnlySpan<int>)[header.Length, header.Length + extra])
            {
                ProxyParseResult again = ProxyHeaderParser.TryParse(copy.AsSpan(0, cut), out ProxyHeader same);
                Assert.True(again == ProxyParseResult.Success && same == header,
                    $"{what}: the header parses differently with {cut - header.Length} bytes after it ({again}): {Hex(input)}");
            }
            // Cut short, it asks for more.
            int shorter = rng.Next(header.Length);
            ProxyParseResult partial = ProxyHeaderParser.TryParse(copy.AsSpan(0, shorter), out _);
            Assert.True(partial == ProxyParseResult.NeedMoreData,
                $"{what}: its first {shorter} bytes got {partial}, not NeedMoreData: {Hex(input)}");
        }
        _output.WriteLine($"{what}: {total} inputs in {clock.Elapsed.TotalSeconds:F1} s; "
            + string.Join(", ", Enumerable.Range(0, verdicts.Length).Where(i => verdicts[i] > 0).Select(i => $"{(ProxyParseResult)i} {verdicts[i]}")));
        Assert.True(verdicts[(int)ProxyParseResult.Success] > 0 && verdicts[(int)ProxyParseResult.NeedMoreData] > 0
            && verdicts[(int)ProxyParseResult.V1BadSyntax] > 0 && verdicts[(int)ProxyParseResult.V2BadFamily] > 0,
            $"{what}: the mutants did not reach the parser's verdicts");
    }

    private static TcpOptionsRepr RandomOptions(Random rng)
    {
        TcpOptionsRepr o = TcpOptionsRepr.None;
        o.Mss = rng.Next(3) == 0 ? (ushort)0 : (ushort)rng.Next(1, 65536);
        o.WindowScale = rng.Next(3) == 0 ? (sbyte)-1 : (sbyte)rng.Next(15);
        o.SackPermitted = rng.Next(2) == 0;
        o.HasTimestamp = rng.Next(3) != 0;
        o.TsVal = (uint)rng.NextInt64(1L << 32);
        o.TsEcr = (uint)rng.NextInt64(1L << 32);
        o.SackCount = (byte)rng.Next(5);
        for (int i = 0; i < o.SackCount; i++)
        {
            uint left = (uint)rng.NextInt64(1L << 32);
            o.Sack[i] = new SackBlock(new SeqNumber(left), new SeqNumber(left + (uint)rng.Next(1, 100_000)));
        }
        return o;
    }

    /// <summary>What of <paramref name="o"/> the writer put into <paramref name="length"/> bytes (SYN-only kinds, the SACK blocks that fit).</summary>
    private static TcpOptionsRepr Written(in TcpOptionsRepr o, bool isSyn, int length)
    {
        TcpOptionsRepr w = TcpOptionsRepr.None;
        w.HasTimestamp = o.HasTimestamp;
        w.TsVal = o.HasTimestamp ? o.TsVal : 0;
        w.TsEcr = o.HasTimestamp ? o.TsEcr : 0;
        int used = 0;
        if (isSyn)
        {
            w.Mss = o.Mss;
            w.WindowScale = o.WindowScale;
            w.SackPermitted = o.SackPermitted;
            used = (o.Mss != 0 ? 4 : 0) + (!o.HasTimestamp && o.SackPermitted ? 4 : 0) + (o.WindowScale >= 0 ? 4 : 0);
        }
        used += o.HasTimestamp ? 12 : 0;
        w.SackCount = length > used ? (byte)((length - used - 4) / 8) : (byte)0;
        for (int i = 0; i < w.SackCount; i++)
        {
            w.Sack[i] = o.Sack[i];
        }
        return w;
    }

    private static void AssertSameOptions(in TcpOptionsRepr expected, in TcpOptionsRepr actual, string message)
    {
        bool same = expected.Mss == actual.Mss && expected.WindowScale == actual.WindowScale && expected.SackPermitted == actual.SackPermitted
            && expected.HasTimestamp == actual.HasTimestamp && expected.TsVal == actual.TsVal && expected.TsEcr == actual.TsEcr
            && expected.SackCount == actual.SackCount;
        for (int i = 0; same && i < expected.SackCount; i++)
        {
            same = expected.Sack[i] == actual.Sack[i];
        }
        Assert.True(same, message);
    }

    private static IpAddr RandomAddress(Random rng, bool v4)
    {
        if (v4)
        {
            return IpAddr.FromV4((uint)rng.NextInt64(1L << 32));
        }
        Span<byte> bytes = stackalloc byte[16];
        rng.NextBytes(bytes);
        if (rng.Next(2) == 0)
        {
            bytes[4..12].Clear();    // runs of zero groups, so the text form uses "::"
        }
        if (bytes[..10].IndexOfAnyExcept((byte)0) < 0 && bytes[10] == 0xFF && bytes[11] == 0xFF)
        {
            bytes[0] = 0x20;        // not an IPv4-mapped address, which IpAddr treats as IPv4
        }
        return IpAddr.FromBytes(bytes);
    }

    /// <summary>One mutation of <paramref name="buffer"/>[..length]; returns the new length (at most <paramref name="maxLength"/>).</summary>
    private static int Mutate(Random rng, Span<byte> buffer, int length, int maxLength)
    {
        switch (rng.Next(7))
        {
            case 0 when length > 0:
                buffer[rng.Next(length)] ^= (byte)(1 << rng.Next(8));
                return length;
            case 1 when length > 0:
                buffer[rng.Next(length)] = s_interesting[rng.Next(s_interesting.Length)];
                return length;
            case 2 when length > 0:
                buffer[rng.Next(length)] = (byte)rng.Next(256);
                return length;
            case 3:
                return rng.Next(length + 1);
            case 4 when length < maxLength:
            {
                int at = rng.Next(length + 1);
                buffer[at..length].CopyTo(buffer[(at + 1)..]);
                buffer[at] = s_interesting[rng.Next(s_interesting.Length)];
                return length + 1;
            }
            case 5 when length > 1:
            {
                int at = rng.Next(length);
                buffer[(at + 1)..length].CopyTo(buffer[at..]);
                return length - 1;
            }
            default:
            {
                int at = rng.Next(length + 1), n = Math.Min(rng.Next(1, 9), maxLength - at);
                rng.NextBytes(buffer.Slice(at, n));
                return Math.Max(length, at + n);
            }
        }
    }

    private static string Hex(ReadOnlySpan<byte> bytes) => Convert.ToHexString(bytes).ToLowerInvariant();
}
