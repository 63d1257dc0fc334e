using System.Net;
using CookieProxy.Diagnostics;
using CookieProxy.Responder;
using CookieProxy.Tests.Support;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Responder;

/// <summary>
/// The syncache's table, by the state of one entry: remembered (waiting for the 1 s retransmission), retransmitted
/// once (waiting for the 3 s one), ended (ACKed, reset, expired), and the table full. A fake clock: every time is
/// milliseconds since the SYN.
/// </summary>
public class SynCacheTests
{
    private const long T0 = 5_000;
    private readonly ProxyCounters _counters = new();
    private readonly MemoryPacketDevice _dev = new();

    private SynCache NewCache(int capacity = 16) => new(SynCacheConfig.For(capacity), _counters, T0);

    private static FlowKey Key(ushort sport, string client = "198.18.0.2") =>
        new(IpAddr.FromIPAddress(IPAddress.Parse(client)), IpAddr.FromIPAddress(IPAddress.Parse("198.18.0.1")), sport, 80);

    /// <summary>A recognisable stand-in for a SYN+ACK frame: the cache stores and resends bytes, it never parses them.</summary>
    private static byte[] FrameFor(ushort sport, int length = 74, byte fill = 0) =>
        Enumerable.Range(0, length).Select(i => (byte)(i == 0 ? sport : i == 1 ? sport >> 8 : fill + i)).ToArray();

    private SynCache InRemembered(ushort sport = 40000, uint isn = 0x11223344)
    {
        SynCache cache = NewCache();
        Assert.True(cache.Remember(Key(sport), isn, FrameFor(sport), T0));
        return cache;
    }

    private SynCache InRetransmittedOnce(ushort sport = 40000, uint isn = 0x11223344)
    {
        SynCache cache = InRemembered(sport, isn);
        cache.Tick(T0 + 1000, _dev);
        Assert.Single(_dev.Sent);
        _dev.Sent.Clear();
        return cache;
    }

    private byte[] ExpectOneFrame(SynCache cache, long now)
    {
        cache.Tick(now, _dev);
        byte[] sent = Assert.Single(_dev.Sent);
        _dev.Sent.Clear();
        return sent;
    }

    private void ExpectSilence(SynCache cache, long now)
    {
        cache.Tick(now, _dev);
        Assert.Empty(_dev.Sent);
    }

    [Fact]
    public void ARememberedSynIsSilentUntilOneSecondThenItsSynAckGoesOutOnceUnchanged()
    {
        SynCache cache = InRemembered();
        Assert.Equal(1, cache.Count);
        Assert.Equal(T0 + 1000, cache.NextDeadlineMs);
        ExpectSilence(cache, T0 + 999);
        Assert.Equal(FrameFor(40000), ExpectOneFrame(cache, T0 + 1000));
        ExpectSilence(cache, T0 + 1500);
        Assert.Equal(1, _counters[Counter.SynCacheRetransmits]);
        Assert.Equal(1, _counters[Counter.SynAckSent]);
        Assert.Equal(1, _counters[Counter.SynCacheAdded]);
        Assert.Equal(1, _counters[Counter.SynCacheEntries]);
    }

    [Fact]
    public void RetransmittedOnceTheSecondCopyGoesAtThreeSecondsAndThenTheEntryExpires()
    {
        SynCache cache = InRetransmittedOnce();
        Assert.Equal(T0 + 3000, cache.NextDeadlineMs);
        ExpectSilence(cache, T0 + 2999);
        Assert.Equal(FrameFor(40000), ExpectOneFrame(cache, T0 + 3000));
        Assert.Equal(0, cache.Count);
        Assert.Equal(long.MaxValue, cache.NextDeadlineMs);
        ExpectSilence(cache, T0 + 60_000);
        Assert.Equal(1, _counters[Counter.SynCacheExpired]);
        Assert.Equal(0, _counters[Counter.SynCacheEntries]);
    }

    [Fact]
    public void ATickLongAfterBothDeadlinesSendsBothCopiesAtOnce()
    {
        SynCache cache = InRemembered();
        cache.Tick(T0 + 10_000, _dev);
        Assert.Equal(2, _dev.Sent.Count);
        Assert.Equal(0, cache.Count);
    }

    [Fact]
    public void RememberedThenAckedNothingIsRetransmitted()
    {
        SynCache cache = InRemembered();
        Assert.True(cache.ForgetAcked(Key(40000)));
        Assert.Equal(0, cache.Count);
        ExpectSilence(cache, T0 + 10_000);
        Assert.Equal(1, _counters[Counter.SynCacheAcked]);
        Assert.Equal(0, _counters[Counter.SynCacheExpired]);
    }

    [Fact]
    public void RetransmittedOnceThenAckedTheSecondCopyNeverGoes()
    {
        SynCache cache = InRetransmittedOnce();
        Assert.True(cache.ForgetAcked(Key(40000)));
        ExpectSilence(cache, T0 + 10_000);
    }

    [Fact]
    public void AnAckOfAnotherFlowLeavesTheEntryAlone()
    {
        SynCache cache = InRemembered();
        Assert.False(cache.ForgetAcked(Key(40001)));
        Assert.False(cache.ForgetAcked(Key(40000, "198.18.0.3")));
        Assert.Equal(FrameFor(40000), ExpectOneFrame(cache, T0 + 1000));
    }

    [Fact]
    public void ARstAtExactlyTheNextSequenceNumberEndsTheEntry()
    {
        SynCache cache = InRemembered(isn: 0xFFFF_FFFF);
        Assert.True(cache.ForgetReset(Key(40000), 0)); // ISN + 1 wraps
        ExpectSilence(cache, T0 + 10_000);
        Assert.Equal(1, _counters[Counter.SynCacheReset]);
    }

    [Theory]
    [InlineData(0x11223344u)]
    [InlineData(0x11223346u)]
    [InlineData(0u)]
    public void ARstAtAnyOtherSequenceNumberIsIgnored(uint seq)
    {
        SynCache cache = InRemembered(isn: 0x11223344);
        Assert.False(cache.ForgetReset(Key(40000), seq));
        Assert.Equal(FrameFor(40000), ExpectOneFrame(cache, T0 + 1000));
    }

    [Fact]
    public void TheSameSynAgainReplacesTheSynAckAndKeepsTheSchedule()
    {
        SynCache cache = InRemembered();
        Assert.True(cache.Remember(Key(40000), 0x11223344, FrameFor(40000, fill: 7), T0 + 900));
        Assert.Equal(1, cache.Count);
        Assert.Equal(1, _counters[Counter.SynCacheAdded]);
        Assert.Equal(FrameFor(40000, fill: 7), ExpectOneFrame(cache, T0 + 1000));
    }

    [Fact]
    public void EntriesGoOutInTheOrderTheyCameEachOnItsOwnSchedule()
    {
        SynCache cache = NewCache();
        cache.Remember(Key(1), 1, FrameFor(1), T0);
        cache.Remember(Key(2), 2, FrameFor(2), T0 + 400);
        cache.Remember(Key(3), 3, FrameFor(3), T0 + 2500);
        Assert.Equal(FrameFor(1), ExpectOneFrame(cache, T0 + 1000));
        Assert.Equal(FrameFor(2), ExpectOneFrame(cache, T0 + 1400));
        Assert.Equal(FrameFor(1), ExpectOneFrame(cache, T0 + 3000));
        Assert.Equal(FrameFor(2), ExpectOneFrame(cache, T0 + 3400));
        Assert.Equal(FrameFor(3), ExpectOneFrame(cache, T0 + 3500));
        Assert.Equal(FrameFor(3), ExpectOneFrame(cache, T0 + 5500));
        Assert.Equal(0, cache.Count);
    }

    [Fact]
    public void AFullTableRefusesTheNextSynAndCountsAnOverflow()
    {
        SynCache cache = NewCache(capacity: 4);
        for (ushort p = 1; p <= 4; p++)
        {
            Assert.True(cache.Remember(Key(p), p, FrameFor(p), T0));
        }
        Assert.False(cache.Remember(Key(5), 5, FrameFor(5), T0));
        Assert.Equal(1, _counters[Counter.SynCacheOverflow]);
        Assert.Equal(4, cache.Count);
        cache.Tick(T0 + 1000, _dev);
        Assert.Equal(4, _dev.Sent.Count);
        Assert.DoesNotContain(_dev.Sent, f => f[0] == 5);
    }

    [Fact]
    public void AFullTableTakesNewSynsAgainOnceItsOldestEntriesWereAcked()
    {
        SynCache cache = NewCache(capacity: 4);
        for (ushort p = 1; p <= 4; p++)
        {
            cache.Remember(Key(p), p, FrameFor(p), T0);
        }
        Assert.True(cache.ForgetAcked(Key(1)));
        Assert.True(cache.ForgetAcked(Key(2)));
        Assert.True(cache.Remember(Key(5), 5, FrameFor(5), T0 + 10));
        Assert.True(cache.Remember(Key(6), 6, FrameFor(6), T0 + 10));
        Assert.False(cache.Remember(Key(7), 7, FrameFor(7), T0 + 10));
        cache.Tick(T0 + 1010, _dev);
        Assert.Equal(new[] { 3, 4, 5, 6 }, _dev.Sent.Select(f => (int)f[0]));
    }

    [Fact]
    public void AFullTableWhoseOldestEntryIsStillWaitingStaysFullEvenIfANewerOneWasAcked()
    {
        SynCache cache = NewCache(capacity: 4);
        for (ushort p = 1; p <= 4; p++)
        {
            cache.Remember(Key(p), p, FrameFor(p), T0);
        }
        Assert.True(cache.ForgetAcked(Key(3)));
        Assert.False(cache.Remember(Key(5), 5, FrameFor(5), T0 + 10));
        // Once the oldest ones are done, the table takes SYNs again.
        cache.Tick(T0 + 3000, _dev);
        Assert.True(cache.Remember(Key(5), 5, FrameFor(5), T0 + 3000));
    }

    [Fact]
    public void TheRingWrapsAroundManyTimesWithoutLosingOrDuplicatingAnEntry()
    {
        // 3 SYNs a second that each live 3 s: 9 entries at the peak, exactly the capacity.
        SynCache cache = NewCache(capacity: 9);
        long now = T0;
        int sent = 0;
        for (int round = 0; round < 100; round++)
        {
            for (ushort p = 0; p < 3; p++)
            {
                Assert.True(cache.Remember(Key((ushort)((round * 3) + p + 1)), 1, FrameFor(p), now));
            }
            now += 1000;
            cache.Tick(now, _dev);
            sent += _dev.Sent.Count;
            _dev.Sent.Clear();
        }
        cache.Tick(now + 10_000, _dev);
        sent += _dev.Sent.Count;
        Assert.Equal(100 * 3 * 2, sent);
        Assert.Equal(0, cache.Count);
        Assert.Equal(300, _counters[Counter.SynCacheExpired]);
    }

    [Fact]
    public void AFrameLargerThanASlotIsNotStored()
    {
        SynCache cache = NewCache();
        Assert.False(cache.Remember(Key(1), 1, new byte[SynCacheConfig.FrameSlotBytes + 1], T0));
        Assert.True(cache.Remember(Key(2), 1, new byte[SynCacheConfig.FrameSlotBytes], T0));
        Assert.Equal(1, cache.Count);
    }

    [Fact]
    public void IPv6FlowsAreKeptApartFromIPv4FlowsWithTheSamePorts()
    {
        SynCache cache = NewCache();
        var v6 = new FlowKey(IpAddr.FromIPAddress(IPAddress.Parse("2001:db8::2")), IpAddr.FromIPAddress(IPAddress.Parse("2001:db8::1")), 40000, 80);
        cache.Remember(Key(40000), 1, FrameFor(1), T0);
        cache.Remember(v6, 1, FrameFor(2), T0);
        Assert.Equal(2, cache.Count);
        Assert.True(cache.ForgetAcked(v6));
        Assert.Equal(FrameFor(1), ExpectOneFrame(cache, T0 + 1000));
    }

    [Fact]
    public void AFailedSendIsCountedAsATxDropAndTheScheduleGoesOn()
    {
        SynCache cache = InRemembered();
        _dev.FailSends = true;
        ExpectSilence(cache, T0 + 1000);
        Assert.Equal(1, _counters.Drops(DropReason.TxFailed));
        _dev.FailSends = false;
        Assert.Equal(FrameFor(40000), ExpectOneFrame(cache, T0 + 3000));
    }

    [Fact]
    public void ThousandsOfFlowsInOneTableAreEachFoundAgain()
    {
        SynCache cache = NewCache(capacity: 4096);
        for (int i = 0; i < 4096; i++)
        {
            Assert.True(cache.Remember(Key((ushort)(i + 1), $"198.18.{1 + (i >> 8)}.{i & 0xFF}"), (uint)i, FrameFor(1), T0));
        }
        for (int i = 4095; i >= 0; i -= 2)
        {
            Assert.True(cache.ForgetAcked(Key((ushort)(i + 1), $"198.18.{1 + (i >> 8)}.{i & 0xFF}")));
        }
        Assert.Equal(2048, cache.Count);
        cache.Tick(T0 + 1000, _dev);
        Assert.Equal(2048, _dev.Sent.Count);
    }
}
