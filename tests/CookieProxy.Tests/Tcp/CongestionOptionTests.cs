using CookieProxy.Host.Cli;
using CookieProxy.Tcp;

namespace CookieProxy.Tests.Tcp;

/// <summary>`--congestion` picks the client-facing TCP's congestion controller; loss recovery is the same for both.</summary>
public class CongestionOptionTests
{
    private const string Minimal = "run --interface x --listen 198.18.0.1:80 --backend 127.0.0.1:1";

    private static CliParse Parse(string line) => CommandLine.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries));

    [Fact]
    public void Cubic_is_the_default_like_linux()
    {
        CliParse r = Parse(Minimal);
        Assert.Null(r.Error);
        Assert.Equal(TcpCongestionControl.Cubic, r.Options!.Congestion);
        Assert.Equal(TcpCongestionControl.Cubic, new TcpConfig().CongestionControl);
    }

    [Theory]
    [InlineData("cubic", TcpCongestionControl.Cubic)]
    [InlineData("newreno", TcpCongestionControl.NewReno)]
    [InlineData("NewReno", TcpCongestionControl.NewReno)]
    [InlineData("reno", TcpCongestionControl.NewReno)]
    public void The_congestion_option_names_the_controller(string value, TcpCongestionControl expected)
    {
        CliParse r = Parse($"{Minimal} --congestion {value}");
        Assert.Null(r.Error);
        Assert.Equal(expected, r.Options!.Congestion);
    }

    [Theory]
    [InlineData("--congestion bbr", "--congestion 'bbr': expected cubic or newreno")]
    [InlineData("--congestion", "--congestion needs a value")]
    public void An_unknown_controller_is_an_error_naming_the_option(string options, string expected)
    {
        CliParse r = Parse($"{Minimal} {options}");
        Assert.Null(r.Options);
        Assert.Contains(expected, r.Error);
    }
}
