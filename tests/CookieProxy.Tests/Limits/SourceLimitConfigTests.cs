using CookieProxy.Limits;
using static CookieProxy.Tests.Limits.LimiterFixture;

namespace CookieProxy.Tests.Limits;

public class SourceLimitConfigTests
{
    [Fact]
    public void Defaults_are_valid_and_limit_nothing()
    {
        var limiter = Create(new SourceLimitConfig());

        for (int i = 0; i < 1000; i++)
        {
            Assert.True(limiter.TryAcceptSyn(Ip("198.18.1.1"), 0));
            Assert.True(limiter.TryOpenConnection(Ip("198.18.1.1"), 0));
        }
        limiter.CloseConnection(Ip("198.18.1.1"));

        Assert.Equal(0, limiter.LiveEntries);
        Assert.Equal(0, limiter.SynsLimited + limiter.ConnectionsRefusedConcurrent + limiter.ConnectionsRefusedRate);
        Assert.Equal(0, limiter.UnmatchedCloses);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(33)]
    public void A_bad_IPv4_prefix_length_is_refused_by_name(int bits)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => Create(new SourceLimitConfig { Ipv4PrefixLength = bits }));
        Assert.Equal(nameof(SourceLimitConfig.Ipv4PrefixLength), ex.ParamName);
        Assert.Contains("0..32", ex.Message);
        Assert.Contains($"got {bits}", ex.Message);
    }

    [Theory]
    [InlineData(-1)]
    [InlineData(129)]
    public void A_bad_IPv6_prefix_length_is_refused_by_name(int bits)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => Create(new SourceLimitConfig { Ipv6PrefixLength = bits }));
        Assert.Equal(nameof(SourceLimitConfig.Ipv6PrefixLength), ex.ParamName);
        Assert.Contains("0..128", ex.Message);
    }

    [Theory]
    [InlineData(0)]
    [InlineData(2)]
    [InlineData(6)]
    [InlineData(1000)]
    [InlineData(SourceLimitConfig.MaxTableSize * 2)]
    public void A_table_size_that_is_not_a_power_of_two_in_range_is_refused(int size)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => Create(new SourceLimitConfig { TableSize = size }));
        Assert.Equal(nameof(SourceLimitConfig.TableSize), ex.ParamName);
        Assert.Contains("power of two", ex.Message);
    }

    [Theory]
    [InlineData(-1.0)]
    [InlineData(double.NaN)]
    [InlineData(double.PositiveInfinity)]
    [InlineData(0.0001)]
    [InlineData(2_000_000.0)]
    public void A_bad_connection_rate_is_refused(double rate)
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => Create(new SourceLimitConfig { NewConnectionsPerSecond = rate }));
        Assert.Equal(nameof(SourceLimitConfig.NewConnectionsPerSecond), ex.ParamName);
        Assert.Contains("0 (off)", ex.Message);
    }

    [Fact]
    public void A_connection_rate_needs_a_burst_of_at_least_one()
    {
        var ex = Assert.Throws<ArgumentOutOfRangeException>(
            () => Create(new SourceLimitConfig { NewConnectionsPerSecond = 5, Burst = 0 }));
        Assert.Equal(nameof(SourceLimitConfig.Burst), ex.ParamName);

        // Without a rate the burst is unused, so 0 is fine.
        Create(new SourceLimitConfig { Burst = 0 });
    }

    [Theory]
    [InlineData(nameof(SourceLimitConfig.SynsPerSecond))]
    [InlineData(nameof(SourceLimitConfig.SynBurst))]
    [InlineData(nameof(SourceLimitConfig.MaxConnectionsPerSource))]
    public void Negative_counts_are_refused_by_name(string name)
    {
        SourceLimitConfig config = name switch
        {
            nameof(SourceLimitConfig.SynsPerSecond) => new SourceLimitConfig { SynsPerSecond = -5 },
            nameof(SourceLimitConfig.SynBurst) => new SourceLimitConfig { SynsPerSecond = 5, SynBurst = -1 },
            _ => new SourceLimitConfig { MaxConnectionsPerSource = -1 },
        };

        var ex = Assert.Throws<ArgumentOutOfRangeException>(() => Create(config));
        Assert.Equal(name, ex.ParamName);
    }

    [Fact]
    public void A_null_config_is_refused()
    {
        Assert.Throws<ArgumentNullException>(() => new SourceLimiter(null!));
    }

    [Fact]
    public void The_constructor_with_a_random_key_works_like_the_keyed_one()
    {
        var limiter = new SourceLimiter(new SourceLimitConfig { SynsPerSecond = 1, SynBurst = 2 });

        Assert.True(limiter.TryAcceptSyn(Ip("198.18.1.1"), 0));
        Assert.True(limiter.TryAcceptSyn(Ip("198.18.1.1"), 0));
        Assert.False(limiter.TryAcceptSyn(Ip("198.18.1.1"), 0));
    }
}
