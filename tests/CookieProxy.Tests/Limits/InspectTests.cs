using CookieProxy.Limits;
using static CookieProxy.Tests.Limits.LimiterFixture;

namespace CookieProxy.Tests.Limits;

/// <summary>The read-only view `cookieproxy top` takes of the limiter's tables.</summary>
public class InspectTests
{
    private const long T0 = 1_000_000;

    [Fact]
    public void APrefixThatSpentItsSynBudgetShowsAsLimitedAndAnIdleOneDoesNot()
    {
        SourceLimiter limiter = Create(new SourceLimitConfig { SynsPerSecond = 10, SynBurst = 5, Ipv4PrefixLength = 24 });
        for (int i = 0; i < 8; i++)
        {
            limiter.TryAcceptSyn(Ip("198.18.1.9"), T0);
        }
        limiter.TryAcceptSyn(Ip("198.18.2.1"), T0);

        SourceLimitState busy = limiter.Inspect(Ip("198.18.1.200"), T0);
        Assert.Equal(Ip("198.18.1.0"), busy.Prefix);
        Assert.True(busy.SynLimited);
        Assert.Equal(5, busy.SynTokensUsed, 3);
        Assert.True(busy.Limited);

        SourceLimitState light = limiter.Inspect(Ip("198.18.2.1"), T0);
        Assert.False(light.SynLimited);
        Assert.Equal(1, light.SynTokensUsed, 3);

        SourceLimitState later = limiter.Inspect(Ip("198.18.1.9"), T0 + 10_000);
        Assert.False(later.Limited);
        Assert.Equal(0, later.SynTokensUsed);
    }

    [Fact]
    public void APrefixAtItsConnectionCapShowsItsConnections()
    {
        SourceLimiter limiter = Create(new SourceLimitConfig { MaxConnectionsPerSource = 2 });
        Assert.True(limiter.TryOpenConnection(Ip("198.18.1.9"), T0));
        Assert.True(limiter.TryOpenConnection(Ip("198.18.1.9"), T0));
        Assert.True(limiter.TryOpenConnection(Ip("198.18.1.10"), T0));

        SourceLimitState capped = limiter.Inspect(Ip("198.18.1.9"), T0);
        Assert.Equal(2, capped.Connections);
        Assert.True(capped.ConnectionCapReached);
        Assert.False(limiter.Inspect(Ip("198.18.1.10"), T0).ConnectionCapReached);
        Assert.Equal(0, limiter.Inspect(Ip("198.18.1.11"), T0).Connections);
    }

    [Fact]
    public void TheBusiestPrefixesComeBestFirstFromBothTablesAndEachOnce()
    {
        SourceLimiter limiter = Create(new SourceLimitConfig { SynsPerSecond = 100, MaxConnectionsPerSource = 10 });
        for (int i = 0; i < 50; i++)
        {
            limiter.TryAcceptSyn(Ip("198.18.1.1"), T0);
        }
        for (int i = 0; i < 20; i++)
        {
            limiter.TryAcceptSyn(Ip("198.18.1.2"), T0);
        }
        for (uint i = 0; i < 200; i++)
        {
            limiter.TryAcceptSyn(SpoofedV4(i + 1000), T0);
        }
        for (int i = 0; i < 3; i++)
        {
            limiter.TryOpenConnection(Ip("198.18.1.2"), T0);
            limiter.TryOpenConnection(Ip("198.18.1.3"), T0);
        }

        var top = new SourceLimitState[4];
        int n = limiter.CopyBusiest(top, T0);

        Assert.Equal([Ip("198.18.1.1"), Ip("198.18.1.2"), Ip("198.18.1.3")], top[..3].Select(s => s.Prefix));
        Assert.True(n is 3 or 4, $"{n} entries");
        Assert.Equal(3, top[1].Connections);
        Assert.Equal(20, top[1].SynTokensUsed, 3);
        Assert.Equal(3, top[2].Connections);
        Assert.Equal(top[..n].Select(s => s.Prefix).Distinct().Count(), n);
    }

    [Fact]
    public void ALimiterWithItsLimitsOffHasNothingBusy()
    {
        SourceLimiter limiter = Create(new SourceLimitConfig());
        var top = new SourceLimitState[8];
        Assert.Equal(0, limiter.CopyBusiest(top, T0));
        Assert.Equal(0, limiter.CopyBusiest([], T0));
    }
}
