using CookieProxy.Limits;
using CookieProxy.Wire;
using static CookieProxy.Tests.Limits.LimiterFixture;

namespace CookieProxy.Tests.Limits;

/// <summary>The SYN bucket's refill arithmetic, driven by a fake millisecond clock.</summary>
public class TokenBucketTests
{
    private static readonly IpAddr s_source = Ip("198.18.1.1");

    private static int Accepted(SourceLimiter limiter, long nowMs, int attempts)
    {
        int accepted = 0;
        for (int i = 0; i < attempts; i++)
        {
            accepted += limiter.TryAcceptSyn(s_source, nowMs) ? 1 : 0;
        }
        return accepted;
    }

    [Fact]
    public void A_fresh_source_gets_exactly_its_burst_then_is_limited()
    {
        var limiter = Create(new SourceLimitConfig { SynsPerSecond = 10, SynBurst = 5 });

        Assert.Equal(5, Accepted(limiter, nowMs: 1000, attempts: 8));
        Assert.Equal(3, limiter.SynsLimited);
    }

    [Fact]
    public void One_token_comes_back_per_interval_and_not_a_millisecond_earlier()
    {
        var limiter = Create(new SourceLimitConfig { SynsPerSecond = 10, SynBurst = 5 });
        Assert.Equal(5, Accepted(limiter, 1000, 5));

        Assert.Equal(0, Accepted(limiter, 1099, 3));  // 10/s: one token per 100 ms
        Assert.Equal(1, Accepted(limiter, 1100, 3));
        Assert.Equal(0, Accepted(limiter, 1199, 3));
        Assert.Equal(1, Accepted(limiter, 1200, 3));
    }

    [Fact]
    public void Partial_tokens_carry_over_between_refills()
    {
        var limiter = Create(new SourceLimitConfig { SynsPerSecond = 10, SynBurst = 5 });
        Assert.Equal(5, Accepted(limiter, 0, 5));

        Assert.Equal(2, Accepted(limiter, 250, 5));   // 2.5 tokens: two whole ones, half a token left
        Assert.Equal(1, Accepted(limiter, 300, 5));   // the half plus 50 ms make one more
    }

    [Fact]
    public void An_idle_source_refills_to_its_burst_and_no_further()
    {
        var limiter = Create(new SourceLimitConfig { SynsPerSecond = 10, SynBurst = 5 });
        Assert.Equal(5, Accepted(limiter, 0, 5));

        Assert.Equal(5, Accepted(limiter, 3_600_000, 50));
    }

    [Fact]
    public void SynBurst_zero_means_one_second_of_rate()
    {
        var limiter = Create(new SourceLimitConfig { SynsPerSecond = 7 });

        Assert.Equal(7, Accepted(limiter, 0, 20));
    }

    [Fact]
    public void A_steady_overload_is_held_to_the_rate()
    {
        var limiter = Create(new SourceLimitConfig { SynsPerSecond = 100, SynBurst = 10 });

        // 1000 SYNs/s from 0 to 9999 ms: the burst plus 9.999 s of refill at 100/s (999 whole tokens).
        int accepted = 0;
        for (long ms = 0; ms < 10_000; ms++)
        {
            accepted += Accepted(limiter, ms, 1);
        }

        Assert.Equal(10 + 999, accepted);
    }

    [Fact]
    public void A_fractional_connection_rate_is_exact()
    {
        var limiter = Create(new SourceLimitConfig { NewConnectionsPerSecond = 0.5, Burst = 1 });

        Assert.True(limiter.TryOpenConnection(s_source, 10_000));
        Assert.False(limiter.TryOpenConnection(s_source, 11_999));
        Assert.True(limiter.TryOpenConnection(s_source, 12_000));
        Assert.Equal(1, limiter.ConnectionsRefusedRate);
    }

    [Fact]
    public void A_clock_that_steps_back_grants_nothing_and_does_not_throw()
    {
        var limiter = Create(new SourceLimitConfig { SynsPerSecond = 10, SynBurst = 2 });
        Assert.Equal(2, Accepted(limiter, 5000, 2));

        Assert.Equal(0, Accepted(limiter, 0, 5));
        Assert.Equal(0, Accepted(limiter, -1_000_000, 5));
        Assert.Equal(1, Accepted(limiter, 5100, 5));
    }

    [Fact]
    public void Unix_epoch_milliseconds_work_as_the_clock()
    {
        var limiter = Create(new SourceLimitConfig { SynsPerSecond = 1, SynBurst = 1 });
        long now = 1_795_000_000_000;   // late 2026

        Assert.Equal(1, Accepted(limiter, now, 3));
        Assert.Equal(1, Accepted(limiter, now + 1000, 3));
    }
}
