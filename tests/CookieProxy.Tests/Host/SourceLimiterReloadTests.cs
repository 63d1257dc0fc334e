using System.Net;
using CookieProxy.Crypto;
using CookieProxy.Limits;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Host;

public class SourceLimiterReloadTests
{
    private static readonly SipKey s_key = new(1, 2);
    private static IpAddr Ip(string text) => IpAddr.FromIPAddress(IPAddress.Parse(text));

    [Fact]
    public void ALoweredCapHoldsAtOnceForTheConnectionsAlreadyOpen()
    {
        var limiter = new SourceLimiter(new SourceLimitConfig { MaxConnectionsPerSource = 10 }, s_key);
        for (int i = 0; i < 3; i++)
        {
            Assert.True(limiter.TryOpenConnection(Ip("198.18.0.2"), 0));
        }
        SourceLimiter lower = limiter.WithConfig(new SourceLimitConfig { MaxConnectionsPerSource = 2 });
        Assert.Equal(3, lower.ConnectionsOf(Ip("198.18.0.2")));
        Assert.False(lower.TryOpenConnection(Ip("198.18.0.2"), 0));
        lower.CloseConnection(Ip("198.18.0.2"));
        lower.CloseConnection(Ip("198.18.0.2"));
        Assert.True(lower.TryOpenConnection(Ip("198.18.0.2"), 0));
        Assert.Equal(0, lower.UnmatchedCloses);
    }

    [Fact]
    public void TurningTheCapOnRecountsTheOpenFlows()
    {
        var synOnly = new SourceLimiter(new SourceLimitConfig { SynsPerSecond = 100 }, s_key);
        Assert.False(synOnly.CountsConnections);
        SourceLimiter capped = synOnly.WithConfig(new SourceLimitConfig { SynsPerSecond = 100, MaxConnectionsPerSource = 1 });
        Assert.True(capped.CountsConnections);
        Assert.True(capped.AddExisting(Ip("198.18.0.2"), 0));
        Assert.True(capped.AddExisting(Ip("198.18.0.2"), 0));
        Assert.Equal(2, capped.ConnectionsOf(Ip("198.18.0.2")));
        Assert.False(capped.TryOpenConnection(Ip("198.18.0.2"), 0));
        Assert.True(capped.TryOpenConnection(Ip("198.18.0.3"), 0));
    }

    [Fact]
    public void ThePrefixLengthsCannotChangeUnderTheCounts()
    {
        var limiter = new SourceLimiter(new SourceLimitConfig { MaxConnectionsPerSource = 1 }, s_key);
        Assert.Throws<ArgumentException>(() => limiter.WithConfig(new SourceLimitConfig { MaxConnectionsPerSource = 1, Ipv4PrefixLength = 24 }));
    }
}
