using CookieProxy.Limits;
using static CookieProxy.Tests.Limits.LimiterFixture;

namespace CookieProxy.Tests.Limits;

/// <summary>Which sources share an entry: nmsynproxy-style /24 and /64 grouping.</summary>
public class PrefixTests
{
    private static SourceLimiter OneSynPerPrefix(int v4Bits = 32, int v6Bits = 64) =>
        Create(new SourceLimitConfig { SynsPerSecond = 1, SynBurst = 1, Ipv4PrefixLength = v4Bits, Ipv6PrefixLength = v6Bits });

    [Fact]
    public void Two_hosts_in_one_IPv4_slash_24_share_a_bucket()
    {
        var limiter = OneSynPerPrefix(v4Bits: 24);

        Assert.True(limiter.TryAcceptSyn(Ip("198.18.1.1"), 0));
        Assert.False(limiter.TryAcceptSyn(Ip("198.18.1.2"), 0));
        Assert.False(limiter.TryAcceptSyn(Ip("198.18.1.255"), 0));
        Assert.True(limiter.TryAcceptSyn(Ip("198.18.2.1"), 0));
        Assert.Equal(2, limiter.SynEntries);
    }

    [Fact]
    public void By_default_each_IPv4_host_has_its_own_bucket()
    {
        var limiter = OneSynPerPrefix();

        Assert.True(limiter.TryAcceptSyn(Ip("198.18.1.1"), 0));
        Assert.True(limiter.TryAcceptSyn(Ip("198.18.1.2"), 0));
        Assert.False(limiter.TryAcceptSyn(Ip("198.18.1.1"), 0));
    }

    [Fact]
    public void Two_hosts_in_one_IPv6_slash_64_share_a_bucket()
    {
        var limiter = OneSynPerPrefix();

        Assert.True(limiter.TryAcceptSyn(Ip("2001:db8:1:2::1"), 0));
        Assert.False(limiter.TryAcceptSyn(Ip("2001:db8:1:2:ffff:ffff:ffff:fffe"), 0));
        Assert.True(limiter.TryAcceptSyn(Ip("2001:db8:1:3::1"), 0));
    }

    [Fact]
    public void IPv4_and_IPv6_never_share_a_bucket_even_with_zero_length_prefixes()
    {
        var limiter = OneSynPerPrefix(v4Bits: 0, v6Bits: 0);

        Assert.True(limiter.TryAcceptSyn(Ip("198.18.1.1"), 0));
        Assert.False(limiter.TryAcceptSyn(Ip("203.0.113.9"), 0));   // all of IPv4 is one prefix
        Assert.True(limiter.TryAcceptSyn(Ip("2001:db8::1"), 0));
        Assert.False(limiter.TryAcceptSyn(Ip("::"), 0));            // all of IPv6 is another
    }

    [Theory]
    [InlineData(32, "198.18.1.77", "198.18.1.77")]
    [InlineData(24, "198.18.1.77", "198.18.1.0")]
    [InlineData(15, "198.19.200.77", "198.18.0.0")]
    [InlineData(1, "198.18.1.77", "128.0.0.0")]
    [InlineData(0, "198.18.1.77", "0.0.0.0")]
    public void IPv4_prefixes_mask_the_low_bits(int bits, string source, string prefix)
    {
        var limiter = Create(new SourceLimitConfig { Ipv4PrefixLength = bits });

        Assert.Equal(Ip(prefix), limiter.PrefixOf(Ip(source)));
    }

    [Theory]
    [InlineData(128, "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff")]
    [InlineData(65, "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", "2001:db8:aaaa:bbbb:8000::")]
    [InlineData(64, "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", "2001:db8:aaaa:bbbb::")]
    [InlineData(56, "2001:db8:aaaa:bbbb:cccc:dddd:eeee:ffff", "2001:db8:aaaa:bb00::")]
    [InlineData(1, "ffff::1", "8000::")]
    [InlineData(0, "2001:db8::1", "::")]
    public void IPv6_prefixes_mask_the_low_bits(int bits, string source, string prefix)
    {
        var limiter = Create(new SourceLimitConfig { Ipv6PrefixLength = bits });

        Assert.Equal(Ip(prefix), limiter.PrefixOf(Ip(source)));
    }

    [Fact]
    public void Connections_are_counted_per_prefix_too()
    {
        var limiter = Create(new SourceLimitConfig { MaxConnectionsPerSource = 2, Ipv4PrefixLength = 24 });

        Assert.True(limiter.TryOpenConnection(Ip("198.18.1.1"), 0));
        Assert.True(limiter.TryOpenConnection(Ip("198.18.1.2"), 0));
        Assert.False(limiter.TryOpenConnection(Ip("198.18.1.3"), 0));
        Assert.True(limiter.TryOpenConnection(Ip("198.18.2.3"), 0));
        Assert.Equal(2, limiter.ConnectionsOf(Ip("198.18.1.200")));
    }
}
