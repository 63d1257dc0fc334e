using CookieProxy.Host.Cli;
using CookieProxy.Responder;

namespace CookieProxy.Tests.Responder;

/// <summary><c>--syncache N</c>: on by default, 0 turns it off, anything out of range names the option.</summary>
public class SynCacheOptionTests
{
    private static CliParse Parse(string extra) =>
        CommandLine.Parse(("run --interface x --listen 198.18.0.1:80 --backend 127.0.0.1:1 " + extra).Split(' ', StringSplitOptions.RemoveEmptyEntries));

    [Fact]
    public void TheSyncacheIsOnByDefaultWithFourThousandAndNinetySixEntries()
    {
        Assert.Equal(SynCacheConfig.DefaultCapacity, Parse("").Options!.SynCacheEntries);
        Assert.Equal(4096, SynCacheConfig.DefaultCapacity);
    }

    [Theory]
    [InlineData("0", 0)]
    [InlineData("1", 1)]
    [InlineData("65536", 65536)]
    [InlineData("262144", 262144)]
    public void SyncacheTakesAnEntryCount(string value, int expected) =>
        Assert.Equal(expected, Parse("--syncache " + value).Options!.SynCacheEntries);

    [Theory]
    [InlineData("--syncache", "--syncache needs a value")]
    [InlineData("--syncache -1", "--syncache '-1': expected a whole number in 0..262144")]
    [InlineData("--syncache 262145", "--syncache '262145'")]
    [InlineData("--syncache lots", "--syncache 'lots'")]
    public void ABadSyncacheValueIsAnErrorNamingTheOption(string extra, string message)
    {
        CliParse r = Parse(extra);
        Assert.Null(r.Options);
        Assert.Contains(message, r.Error);
    }
}
