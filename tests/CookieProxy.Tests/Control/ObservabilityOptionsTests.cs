using System.Net;
using CookieProxy.Host.Cli;
using CookieProxy.Host.Control;

namespace CookieProxy.Tests.Control;

/// <summary>The run options of the control socket, /metrics and the sampled pcap, and the client commands.</summary>
public sealed class ObservabilityOptionsTests : IDisposable
{
    private const string Run = "run --interface x --listen 198.18.0.1:80 --backend 127.0.0.1:1";
    private readonly string _dir = Directory.CreateTempSubdirectory("cp-obs-").FullName;

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private static CliParse Parse(string line) => CommandLine.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries));

    [Fact]
    public void TheControlSocketIsInTheRunDirectoryUnlessNamedOrOff()
    {
        Assert.Equal("/run/cookieproxy/control.sock", Parse(Run).Options!.ControlSocketPath);
        Assert.Equal("/tmp/x/control.sock", Parse(Run + " --run-dir /tmp/x").Options!.ControlSocketPath);
        Assert.Equal("/tmp/c.sock", Parse(Run + " --control-socket=/tmp/c.sock").Options!.ControlSocketPath);
        Assert.Null(Parse(Run + " --control-socket off").Options!.ControlSocketPath);
    }

    [Fact]
    public void MetricsAreOffUntilAnAddressIsGiven()
    {
        Assert.Null(Parse(Run).Options!.MetricsListen);
        Assert.Equal(IPEndPoint.Parse("127.0.0.1:9100"), Parse(Run + " --metrics-listen 127.0.0.1:9100").Options!.MetricsListen);
        Assert.Equal(IPEndPoint.Parse("[::]:9100"), Parse(Run + " --metrics-listen [::]:9100").Options!.MetricsListen);
    }

    [Theory]
    [InlineData("--metrics-listen 9100", "--metrics-listen")]
    [InlineData("--metrics-listen 127.0.0.1", "--metrics-listen")]
    [InlineData("--sample-pcap /nonexistent-dir/s.pcapng", "--sample-pcap")]
    [InlineData("--sample-every 0", "--sample-every")]
    [InlineData("--sample-max-mb 0", "--sample-max-mb")]
    [InlineData("--control-socket", "--control-socket")]
    public void ABadValueIsOneLineNamingTheOption(string extra, string option)
    {
        CliParse r = Parse(Run + " " + extra);
        Assert.NotNull(r.Error);
        Assert.Contains(option, r.Error);
        Assert.DoesNotContain("\n", r.Error.TrimEnd());
    }

    [Fact]
    public void SamplingTakesItsFileEveryAndCap()
    {
        string file = Path.Combine(_dir, "s.pcapng");
        ProxyOptions o = Parse($"{Run} --sample-pcap {file} --sample-every 10 --sample-max-mb 2").Options!;
        Assert.Equal(file, o.SamplePcap);
        Assert.Equal(10, o.SampleEvery);
        Assert.Equal(2, o.SampleMaxMegabytes);
        Assert.Equal(1000, Parse(Run).Options!.SampleEvery);
        Assert.Null(Parse(Run).Options!.SamplePcap);
    }

    [Fact]
    public void TheConfigFileTakesTheSameKeys()
    {
        string config = Path.Combine(_dir, "c.yaml");
        File.WriteAllText(config, $"""
            interface: x
            listeners:
              - listen: 198.18.0.1:80
                backend: 127.0.0.1:1
            control-socket: {_dir}/ctl.sock
            metrics-listen: 127.0.0.1:9100
            sample-pcap: {_dir}/s.pcapng
            sample-every: 100
            sample-max-mb: 8
            """);
        ProxyOptions o = Parse($"run --config {config}").Options!;
        Assert.Equal($"{_dir}/ctl.sock", o.ControlSocketPath);
        Assert.Equal(IPEndPoint.Parse("127.0.0.1:9100"), o.MetricsListen);
        Assert.Equal(100, o.SampleEvery);
        Assert.Equal(8, o.SampleMaxMegabytes);
    }

    [Fact]
    public void StatsTopAndReloadOfANonRunningDaemonSayWhereTheyLookedAndExitOne()
    {
        string socket = Path.Combine(_dir, "none.sock");
        foreach (string command in new[] { "stats", "stats --json", "top --once", "reload" })
        {
            (int exit, string _, string error) = CommandLine.Invoke([.. command.Split(' '), "--socket", socket],
                new CommandHandlers { Control = new SocketControlClient() });
            Assert.Equal(1, exit);
            Assert.Contains(socket, error);
        }
    }

    [Fact]
    public void StatsAndTopOverARealSocketPrintTheDaemonsCounters()
    {
        var proxy = new FakeProxy();
        proxy.Syns(0, 4321);
        string socket = Path.Combine(_dir, "c.sock");
        using ControlServer server = ControlServer.Start(socket, new ControlHandler(proxy.View, null), _ => { });
        var handlers = new CommandHandlers { Control = new SocketControlClient() };

        (int exit, string output, string _) = CommandLine.Invoke(["stats", "--socket", socket], handlers);
        Assert.Equal(0, exit);
        Assert.Contains("4,321", output);

        (exit, output, _) = CommandLine.Invoke(["stats", "--json", "--control-socket", socket], handlers);
        Assert.Equal(0, exit);
        Assert.Equal(4321, System.Text.Json.JsonDocument.Parse(output).RootElement.GetProperty("syn_received").GetInt64());

        (exit, output, _) = CommandLine.Invoke(["top", "--once", "--socket", socket], handlers);
        Assert.Equal(0, exit);
        Assert.Contains("198.18.0.1:80", output);
        Assert.Contains("Top sources", output);
    }
}
