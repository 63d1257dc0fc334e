using System.Net;
using CookieProxy.Cookies;
using CookieProxy.Crypto;
using CookieProxy.Diagnostics;
using CookieProxy.Tcp;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Cookies;

public class SynCookieCodecTests
{
    private static readonly SipKey s_key = new(0x0706050403020100UL, 0x0F0E0D0C0B0A0908UL);
    private const long Now = 1_763_700_000_000; // ms, a Unix time in 2025

    private static FlowKey V4(ushort sport = 40000) => new(
        IpAddr.FromIPAddress(IPAddress.Parse("198.18.0.2")), IpAddr.FromIPAddress(IPAddress.Parse("198.18.0.1")), sport, 80);

    private static FlowKey V6(ushort sport = 40000) => new(
        IpAddr.FromIPAddress(IPAddress.Parse("2001:db8::2")), IpAddr.FromIPAddress(IPAddress.Parse("2001:db8::1")), sport, 443);

    /// <summary>The ACK a real client sends back for our SYN+ACK.</summary>
    private static TcpRepr AckFor(uint clientIsn, uint cookie, bool timestamps, uint tsVal)
    {
        var ack = new TcpRepr
        {
            SrcPort = 40000,
            DstPort = 80,
            Seq = new SeqNumber(clientIsn + 1),
            Ack = new SeqNumber(cookie + 1),
            Flags = TcpFlags.Ack,
            Window = 502,
            Options = TcpOptionsRepr.None,
        };
        if (timestamps)
        {
            ack.Options.HasTimestamp = true;
            ack.Options.TsVal = 12345;
            ack.Options.TsEcr = tsVal;
        }
        return ack;
    }

    public static IEnumerable<object[]> AllOptionCombinations()
    {
        ushort[] mssValues = [0, 100, 536, 1220, 1300, 1360, 1400, 1420, 1440, 1452, 1460, 8960];
        sbyte[] wsValues = [-1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14];
        foreach (bool v6 in new[] { false, true })
        {
            foreach (ushort mss in mssValues)
            {
                foreach (sbyte ws in wsValues)
                {
                    foreach (bool sack in new[] { false, true })
                    {
                        foreach (bool ts in new[] { false, true })
                        {
                            yield return [v6, mss, ws, sack, ts];
                        }
                    }
                }
            }
        }
    }

    [Theory]
    [MemberData(nameof(AllOptionCombinations))]
    public void EveryOptionCombinationSurvivesTheRoundTrip(bool v6, ushort mss, sbyte ws, bool sack, bool ts)
    {
        var codec = new SynCookieCodec(s_key);
        FlowKey tuple = v6 ? V6() : V4();
        var syn = new SynOptions { Mss = mss, WindowScale = ws, SackPermitted = sack, Timestamps = ts };
        uint clientIsn = 0xDEADBEEF;

        uint cookie = codec.Encode(tuple, clientIsn, syn, Now, out uint tsVal);
        DropReason verdict = codec.Validate(tuple, AckFor(clientIsn, cookie, ts, tsVal), Now + 1500, out CookieDecoded d);

        Assert.Equal(DropReason.None, verdict);
        Assert.Equal(clientIsn, d.ClientIsn);
        Assert.Equal(cookie, d.LocalIsn);
        Assert.Equal(sack, d.SackPermitted);
        Assert.Equal(ts, d.Timestamps);
        // MSS: the largest table value not above the client's (536 floor).
        Assert.True(d.Mss <= Math.Max(mss, (ushort)536));
        Assert.Equal(CookieTables.Mss[CookieTables.EncodeMss(mss)], d.Mss);
        if (ts)
        {
            // Timestamps carry the exact shift (clamped to 14, RFC 7323 2.3).
            Assert.Equal(ws, d.WindowScale);
            Assert.Equal(tsVal, d.LocalTsVal);
        }
        else
        {
            // Without timestamps the shift survives rounded down: never larger than what the client uses.
            Assert.Equal(ws < 0, d.WindowScale < 0);
            Assert.True(d.WindowScale <= ws);
        }
    }

    [Fact]
    public void WindowScaleAndSackSurviveWithoutTimestamps()
    {
        // The case Linux SYNPROXY loses (it clears WSCALE and SACK_PERM when the client sent no TS).
        var codec = new SynCookieCodec(s_key);
        var syn = new SynOptions { Mss = 1460, WindowScale = 7, SackPermitted = true };
        uint cookie = codec.Encode(V4(), 1, syn, Now, out _);
        Assert.Equal(DropReason.None, codec.Validate(V4(), AckFor(1, cookie, false, 0), Now, out CookieDecoded d));
        Assert.Equal(7, d.WindowScale);
        Assert.True(d.SackPermitted);
        Assert.Equal(1460, d.Mss);
    }

    [Fact]
    public void CookieIsAcceptedForOneToTwoSlotsAndThenReportedExpired()
    {
        var codec = new SynCookieCodec(s_key);
        var syn = new SynOptions { Mss = 1460, WindowScale = -1 };
        long slotStart = (Now / 1000 / codec.SlotSeconds) * codec.SlotSeconds * 1000L;
        uint cookie = codec.Encode(V4(), 7, syn, slotStart, out _);
        TcpRepr ack = AckFor(7, cookie, false, 0);

        Assert.Equal(DropReason.None, codec.Validate(V4(), ack, slotStart, out _));
        Assert.Equal(DropReason.None, codec.Validate(V4(), ack, slotStart + codec.SlotSeconds * 1000L - 1, out _));
        Assert.Equal(DropReason.None, codec.Validate(V4(), ack, slotStart + 2 * codec.SlotSeconds * 1000L - 1, out _));
        Assert.Equal(DropReason.CookieExpired, codec.Validate(V4(), ack, slotStart + 2 * codec.SlotSeconds * 1000L, out _));
        Assert.Equal(DropReason.CookieExpired, codec.Validate(V4(), ack, slotStart + 3 * codec.SlotSeconds * 1000L, out _));
        // Far beyond: just invalid.
        Assert.Equal(DropReason.CookieInvalid, codec.Validate(V4(), ack, slotStart + 10 * codec.SlotSeconds * 1000L, out _));
    }

    [Fact]
    public void ACookieFromTheFutureIsRejected()
    {
        var codec = new SynCookieCodec(s_key);
        uint cookie = codec.Encode(V4(), 7, default, Now + 5 * 60_000, out _);
        Assert.NotEqual(DropReason.None, codec.Validate(V4(), AckFor(7, cookie, false, 0), Now, out _));
    }

    [Theory]
    [InlineData("src")]
    [InlineData("dst")]
    [InlineData("sport")]
    [InlineData("dport")]
    public void AnyOtherTupleIsRejected(string field)
    {
        var codec = new SynCookieCodec(s_key);
        foreach (FlowKey tuple in new[] { V4(), V6() })
        {
            uint cookie = codec.Encode(tuple, 99, default, Now, out _);
            FlowKey other = field switch
            {
                "src" => new FlowKey(new IpAddr(tuple.SrcAddr.Hi, tuple.SrcAddr.Lo ^ 1), tuple.DstAddr, tuple.SrcPort, tuple.DstPort),
                "dst" => new FlowKey(tuple.SrcAddr, new IpAddr(tuple.DstAddr.Hi, tuple.DstAddr.Lo ^ 0x100), tuple.SrcPort, tuple.DstPort),
                "sport" => new FlowKey(tuple.SrcAddr, tuple.DstAddr, (ushort)(tuple.SrcPort + 1), tuple.DstPort),
                _ => new FlowKey(tuple.SrcAddr, tuple.DstAddr, tuple.SrcPort, (ushort)(tuple.DstPort + 1)),
            };
            Assert.Equal(DropReason.CookieInvalid, codec.Validate(other, AckFor(99, cookie, false, 0), Now, out _));
        }
    }

    [Fact]
    public void WrongAckNumberOrClientSequenceIsRejected()
    {
        var codec = new SynCookieCodec(s_key);
        uint cookie = codec.Encode(V4(), 1000, default, Now, out _);
        Assert.Equal(DropReason.CookieInvalid, codec.Validate(V4(), AckFor(1000, cookie + 1, false, 0), Now, out _));
        Assert.Equal(DropReason.CookieInvalid, codec.Validate(V4(), AckFor(1000, cookie ^ 0x100, false, 0), Now, out _));
        // Client ISN is in the MAC: a different SEG.SEQ fails.
        Assert.Equal(DropReason.CookieInvalid, codec.Validate(V4(), AckFor(1001, cookie, false, 0), Now, out _));
    }

    [Fact]
    public void AnotherKeyRejectsAndTheSameKeyFromAFileAccepts()
    {
        var a = new SynCookieCodec(s_key);
        var b = new SynCookieCodec(CookieKey.Generate());
        Assert.True(CookieKey.TryParse("000102030405060708090a0b0c0d0e0f\n", out SipKey fromFile, out _));
        var c = new SynCookieCodec(fromFile);
        uint cookie = a.Encode(V4(), 5, default, Now, out _);
        Assert.Equal(DropReason.CookieInvalid, b.Validate(V4(), AckFor(5, cookie, false, 0), Now, out _));
        Assert.Equal(DropReason.None, c.Validate(V4(), AckFor(5, cookie, false, 0), Now, out _));
    }

    [Fact]
    public void AckWithRstOrSynIsNeverACookieAck()
    {
        var codec = new SynCookieCodec(s_key);
        uint cookie = codec.Encode(V4(), 5, default, Now, out _);
        TcpRepr ack = AckFor(5, cookie, false, 0);
        ack.Flags = TcpFlags.Ack | TcpFlags.Rst; // gVisor #6076
        Assert.Equal(DropReason.CookieAckWithRstOrSyn, codec.Validate(V4(), ack, Now, out _));
        ack.Flags = TcpFlags.Ack | TcpFlags.Syn;
        Assert.Equal(DropReason.CookieAckWithRstOrSyn, codec.Validate(V4(), ack, Now, out _));
        ack.Flags = TcpFlags.Psh;
        Assert.Equal(DropReason.CookieNoAck, codec.Validate(V4(), ack, Now, out _));
    }

    [Fact]
    public void ForgedTimestampEchoIsRejectedEvenWithAValidIsn()
    {
        var codec = new SynCookieCodec(s_key);
        var syn = new SynOptions { Mss = 1460, WindowScale = 7, Timestamps = true };
        uint cookie = codec.Encode(V4(), 5, syn, Now, out uint tsVal);
        Assert.Equal(DropReason.CookieInvalid, codec.Validate(V4(), AckFor(5, cookie, true, tsVal ^ 0x100), Now, out _));
        Assert.Equal(DropReason.CookieInvalid, codec.Validate(V4(), AckFor(5, cookie, true, tsVal | 0x80), Now, out _));
        Assert.Equal(DropReason.None, codec.Validate(V4(), AckFor(5, cookie, true, tsVal), Now, out _));
    }

    [Fact]
    public void RandomForgeriesAlmostNeverPass()
    {
        // 24-bit MAC: expect ~2^-24 per try; 200k random tries should essentially never pass.
        var codec = new SynCookieCodec(s_key);
        var rng = new Random(1234);
        int accepted = 0;
        for (int i = 0; i < 200_000; i++)
        {
            uint isn = (uint)rng.Next() ^ ((uint)rng.Next() << 1);
            if (codec.Validate(V4((ushort)rng.Next(1024, 65535)), AckFor(77, isn, false, 0), Now, out _) == DropReason.None)
            {
                accepted++;
            }
        }
        Assert.True(accepted <= 1, $"{accepted} forged cookies accepted");
    }

    [Fact]
    public void OptionBitsAreNotVisibleInClear()
    {
        // Same options, different tuples: the low byte (options XOR MAC bits) should vary.
        var codec = new SynCookieCodec(s_key);
        var syn = new SynOptions { Mss = 1460, WindowScale = 7, SackPermitted = true };
        var lowBytes = new HashSet<uint>();
        for (ushort port = 1000; port < 1100; port++)
        {
            lowBytes.Add((codec.Encode(V4(port), 1, syn, Now, out _) >> 1) & 0x7F);
        }
        Assert.True(lowBytes.Count > 30);
    }

    [Fact]
    public void BatchMessageLayoutMatchesTheScalarMac()
    {
        var codec = new SynCookieCodec(s_key);
        const int count = 10;
        var words = new ulong[SynCookieCodec.WordsV6 * count];
        var hashes = new ulong[count];
        foreach (bool v6 in new[] { false, true })
        {
            int wordsPer = 0;
            for (int i = 0; i < count; i++)
            {
                FlowKey t = v6 ? V6((ushort)(2000 + i)) : V4((ushort)(2000 + i));
                wordsPer = SynCookieCodec.WriteMessage(t, 55, (uint)i * 7919, words.AsSpan(i), count);
            }
            SipHash.HashBatch(s_key, words, wordsPer, count, hashes);
            for (int i = 0; i < count; i++)
            {
                FlowKey t = v6 ? V6((ushort)(2000 + i)) : V4((ushort)(2000 + i));
                Assert.Equal(codec.Mac(t, 55, (uint)i * 7919), hashes[i]);
            }
        }
    }

    [Theory]
    [InlineData(29)]
    [InlineData(61)]
    public void SlotOutsideThirtySecondsToTwoMinutesIsRefused(int slot)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new SynCookieCodec(s_key, slot));
    }

    [Theory]
    [InlineData("")]
    [InlineData("0011")]
    [InlineData("zz0102030405060708090a0b0c0d0e0f")]
    public void BadKeyFilesGiveAClearError(string text)
    {
        Assert.False(CookieKey.TryParse(text, out _, out string error));
        Assert.False(string.IsNullOrEmpty(error));
    }
}
