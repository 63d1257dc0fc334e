using System.Net;
using CookieProxy.Limits;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Host;

public class SourcePrefixSetTests
{
    private static IpAddr Ip(string text) => IpAddr.FromIPAddress(IPAddress.Parse(text));

    [Fact]
    public void PrefixesOfBothFamiliesMatchWhatTheyCover()
    {
        Assert.True(SourcePrefixSet.TryParse(["198.18.0.0/15", "2001:db8::/32", "203.0.113.7", "::1"], out SourcePrefixSet set, out string error), error);
        Assert.True(set.Contains(Ip("198.19.255.255")));
        Assert.True(set.Contains(Ip("198.18.0.1")));
        Assert.False(set.Contains(Ip("198.20.0.1")));
        Assert.True(set.Contains(Ip("2001:db8:ffff::1")));
        Assert.False(set.Contains(Ip("2001:db9::1")));
        Assert.True(set.Contains(Ip("203.0.113.7")));
        Assert.False(set.Contains(Ip("203.0.113.8")));
        Assert.True(set.Contains(Ip("::1")));
        // An IPv4 prefix never matches an IPv6 address with the same low bits, nor the other way round.
        Assert.False(set.Contains(Ip("::c612:1")));
    }

    [Fact]
    public void ZeroLengthPrefixesMatchTheirWholeFamilyOnly()
    {
        Assert.True(SourcePrefixSet.TryParse(["0.0.0.0/0"], out SourcePrefixSet v4, out _));
        Assert.True(v4.Contains(Ip("8.8.8.8")));
        Assert.False(v4.Contains(Ip("2001:db8::1")));
        Assert.True(SourcePrefixSet.TryParse(["::/0"], out SourcePrefixSet v6, out _));
        Assert.True(v6.Contains(Ip("2001:db8::1")));
    }

    [Theory]
    [InlineData("198.18.0.1/15", "host bits are set beyond /15 (did you mean 198.18.0.0/15?)")]
    [InlineData("198.18.0.0/33", "0..32")]
    [InlineData("banana", "expected ADDRESS/LENGTH")]
    [InlineData("2001:db8::/129", "0..128")]
    public void BadPrefixesNameTheEntryAndWhy(string entry, string expected)
    {
        Assert.False(SourcePrefixSet.TryParse(["10.0.0.0/8", entry], out _, out string error));
        Assert.Contains($"'{entry}'", error);
        Assert.Contains(expected, error);
    }

    [Fact]
    public void TheSameListInAnotherOrderIsEqual()
    {
        Assert.True(SourcePrefixSet.TryParse(["198.18.0.0/15", "::1"], out SourcePrefixSet a, out _));
        Assert.True(SourcePrefixSet.TryParse(["::1", "198.18.0.0/15"], out SourcePrefixSet b, out _));
        Assert.Equal(a, b);
        Assert.True(SourcePrefixSet.TryParse([""], out SourcePrefixSet empty, out _));
        Assert.True(empty.IsEmpty);
        Assert.NotEqual(a, empty);
    }
}
