using CookieProxy.Diagnostics;
using CookieProxy.Responder;

namespace CookieProxy.Tests.Responder;

/// <summary>
/// The syncache's mode by state: Remember (low rate) and PureCookies (flood), and the hysteresis between them.
/// Enter rate 100/s, leave rate 25/s, 1 s windows, three quiet windows to leave; a fake clock.
/// </summary>
public class SynCacheModeTests
{
    private const long T0 = 1_000_000;
    private readonly ProxyCounters _counters = new();

    private SynCache NewCache() => new(new SynCacheConfig
    {
        Capacity = 1024,
        EnterCookiesPerSecond = 100,
        LeaveCookiesPerSecond = 25,
        WindowMs = 1000,
        QuietWindowsToLeave = 3,
    }, _counters, T0);

    private SynCache InPureCookies(out long now)
    {
        SynCache cache = NewCache();
        Assert.False(cache.OnSyns(101, T0));
        Assert.Equal(SynCacheMode.PureCookies, cache.Mode);
        now = T0 + 1000;
        return cache;
    }

    [Fact]
    public void ANewCacheRemembers()
    {
        SynCache cache = NewCache();
        Assert.Equal(SynCacheMode.Remember, cache.Mode);
        Assert.True(cache.OnSyns(1, T0));
        Assert.Equal(0, _counters[Counter.SynCacheFloodMode]);
    }

    [Fact]
    public void UpToTheEnterRateInAWindowItKeepsRemembering()
    {
        SynCache cache = NewCache();
        for (int i = 0; i < 100; i++)
        {
            Assert.True(cache.OnSyns(1, T0 + (i * 9)));
        }
        Assert.Equal(SynCacheMode.Remember, cache.Mode);
        Assert.Equal(0, _counters[Counter.SynCacheModeChanges]);
    }

    [Fact]
    public void TheSynThatTakesTheWindowPastTheEnterRateGetsAPureCookieAndSwitchesTheMode()
    {
        SynCache cache = NewCache();
        Assert.True(cache.OnSyns(100, T0 + 10));
        Assert.False(cache.OnSyns(1, T0 + 20));
        Assert.Equal(SynCacheMode.PureCookies, cache.Mode);
        Assert.Equal(1, _counters[Counter.SynCacheModeChanges]);
        Assert.Equal(1, _counters[Counter.SynCacheFloodMode]);
    }

    [Fact]
    public void TheRateIsCountedPerWindowSoASteadyRateBelowTheThresholdNeverSwitches()
    {
        SynCache cache = NewCache();
        for (int second = 0; second < 30; second++)
        {
            Assert.True(cache.OnSyns(90, T0 + (second * 1000) + 500));
        }
        Assert.Equal(0, _counters[Counter.SynCacheModeChanges]);
    }

    [Fact]
    public void InPureCookiesTwoQuietWindowsAreNotEnoughToLeave()
    {
        SynCache cache = InPureCookies(out long now);
        cache.OnSyns(10, now);          // window 2: quiet, window 1 (the flood) closed as not quiet
        cache.OnSyns(10, now + 1000);   // window 3: quiet; window 2 closed quiet (1)
        Assert.False(cache.OnSyns(10, now + 2000)); // window 3 closed quiet (2)
        Assert.Equal(SynCacheMode.PureCookies, cache.Mode);
    }

    [Fact]
    public void InPureCookiesThreeQuietWindowsInARowSwitchBackToRemembering()
    {
        SynCache cache = InPureCookies(out long now);
        cache.OnSyns(25, now);
        cache.OnSyns(25, now + 1000);
        cache.OnSyns(25, now + 2000);
        Assert.True(cache.OnSyns(1, now + 3000));
        Assert.Equal(SynCacheMode.Remember, cache.Mode);
        Assert.Equal(2, _counters[Counter.SynCacheModeChanges]);
        Assert.Equal(0, _counters[Counter.SynCacheFloodMode]);
    }

    [Fact]
    public void InPureCookiesABusyWindowBetweenQuietOnesStartsTheCountAgain()
    {
        SynCache cache = InPureCookies(out long now);
        cache.OnSyns(10, now);
        cache.OnSyns(10, now + 1000);
        cache.OnSyns(26, now + 2000);   // above the leave rate, below the enter rate: not quiet
        cache.OnSyns(10, now + 3000);
        cache.OnSyns(10, now + 4000);
        Assert.False(cache.OnSyns(10, now + 5000));
        Assert.True(cache.OnSyns(10, now + 6000));
    }

    [Fact]
    public void InPureCookiesARateBetweenLeaveAndEnterKeepsThePureCookies()
    {
        SynCache cache = InPureCookies(out long now);
        for (int second = 0; second < 20; second++)
        {
            Assert.False(cache.OnSyns(60, now + (second * 1000)));
        }
        Assert.Equal(1, _counters[Counter.SynCacheModeChanges]);
    }

    [Fact]
    public void InPureCookiesSilenceWithoutAnySynIsCountedByTheTick()
    {
        SynCache cache = InPureCookies(out long now);
        var dev = new Support.MemoryPacketDevice();
        cache.Tick(now + 100, dev);
        Assert.Equal(SynCacheMode.PureCookies, cache.Mode);
        cache.Tick(now + 3000, dev);    // windows 1 (flood), 2, 3, 4 closed: 3 quiet
        Assert.Equal(SynCacheMode.Remember, cache.Mode);
    }

    [Fact]
    public void AFloodThatPausesForOneSecondDoesNotFlipTheMode()
    {
        SynCache cache = InPureCookies(out long now);
        for (int second = 0; second < 10; second++)
        {
            int syns = second % 2 == 0 ? 0 : 5000;
            cache.OnSyns(syns, now + (second * 1000));
        }
        Assert.Equal(1, _counters[Counter.SynCacheModeChanges]);
    }

    [Fact]
    public void TheHandOverRatesFollowTheCapacity()
    {
        SynCacheConfig c = SynCacheConfig.For(4096);
        Assert.Equal(1024, c.EnterCookiesPerSecond);
        Assert.Equal(256, c.LeaveCookiesPerSecond);
        c.Validate();
        SynCacheConfig tiny = SynCacheConfig.For(1);
        tiny.Validate();
        Assert.True(tiny.LeaveCookiesPerSecond < tiny.EnterCookiesPerSecond);
    }

    [Fact]
    public void AConfigWhoseLeaveRateIsNotBelowItsEnterRateIsRefused()
    {
        var bad = new SynCacheConfig { Capacity = 16, EnterCookiesPerSecond = 10, LeaveCookiesPerSecond = 10 };
        Assert.Throws<ArgumentOutOfRangeException>(bad.Validate);
        Assert.Throws<ArgumentOutOfRangeException>(() => SynCacheConfig.For(SynCacheConfig.MaxCapacity + 1));
    }
}
