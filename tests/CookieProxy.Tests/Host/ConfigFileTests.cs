using System.Net;
using CookieProxy.Host.Cli;
using CookieProxy.Host.Config;
using CookieProxy.ProxyProtocol;

namespace CookieProxy.Tests.Host;

public sealed class ConfigFileTests : IDisposable
{
    private readonly string _dir = Path.Combine(Path.GetTempPath(), $"cp-config-{Guid.NewGuid():N}");

    public ConfigFileTests() => Directory.CreateDirectory(_dir);

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string Write(string yaml, string name = "cp.yaml")
    {
        string path = Path.Combine(_dir, name);
        File.WriteAllText(path, yaml);
        return path;
    }

    private const string Good = """
        interface: cp-s0
        listeners:
          - listen: 198.18.0.1:80
            backend: 127.0.0.1:8080
          - listen: "[fd00::1]:443"
            backend: "[::1]:8443"
            proxy-protocol: v2
        max-conn-per-source: 10
        hide-port: true
        allow-source: [198.18.1.0/24, "2001:db8::/32"]
        deny-source:
          - 203.0.113.0/24
        """;

    [Fact]
    public void EveryKeyIsTheOptionNameWithoutDashesAndListenersAreAList()
    {
        CliParse r = CommandLine.Parse(["run", "--config", Write(Good)]);
        Assert.Null(r.Error);
        ProxyOptions o = r.Options!;
        Assert.Equal("cp-s0", o.Interface);
        Assert.Equal(2, o.Listeners.Count);
        Assert.Equal(IPEndPoint.Parse("[::1]:8443"), o.Listeners[1].Backend);
        Assert.Equal(ProxyProtocolVersion.V2, o.Listeners[1].ProxyProtocol);
        Assert.Equal(10, o.MaxConnectionsPerSource);
        Assert.True(o.HidePort);
        Assert.Equal(2, o.AllowSource.Count);
        Assert.Equal(["203.0.113.0/24"], o.DenySource.Text);
        Assert.EndsWith("cp.yaml", o.ConfigFile);
    }

    [Fact]
    public void TheCommandLineOverridesTheFile()
    {
        CliParse r = CommandLine.Parse(["run", "--config", Write(Good), "--max-conn-per-source=3", "--hide-port=false",
            "--listen", "198.18.0.1:81", "--backend", "127.0.0.1:9"]);
        Assert.Null(r.Error);
        Assert.Equal(3, r.Options!.MaxConnectionsPerSource);
        Assert.False(r.Options.HidePort);
        ListenerOptions only = Assert.Single(r.Options.Listeners);
        Assert.Equal(81, only.Listen.Port);
        Assert.Equal("cp-s0", r.Options.Interface);
    }

    [Fact]
    public void OneListenerMayBeGivenAtTheTopLevel()
    {
        CliParse r = CommandLine.Parse(["check", "--config", Write("interface: x\nlisten: 198.18.0.1:80\nbackend: 127.0.0.1:1\nproxy-protocol: v1\n")]);
        Assert.Null(r.Error);
        Assert.Equal(ProxyProtocolVersion.V1, Assert.Single(r.Options!.Listeners).ProxyProtocol);
    }

    [Fact]
    public void AnEmptyFileSetsNothingAndTheCommandLineDoesTheRest()
    {
        CliParse r = CommandLine.Parse(["run", "--config", Write("# nothing here\n"), "--interface", "x", "--listen", "198.18.0.1:80", "--backend", "127.0.0.1:1"]);
        Assert.Null(r.Error);
        Assert.Equal("x", r.Options!.Interface);
    }

    /// <summary>Ten broken files: each error names the file, the line and the key.</summary>
    [Theory]
    [InlineData("interface: x\nlisteners:\n  - listen: 198.18.0.1:80\n    backend: 127.0.0.1:1\nmax-flows: many\n", 5, "max-flows: 'many': expected a whole number")]
    [InlineData("interface: x\nlisteners:\n  - listen: 198.18.0.1:80\n    backend: 127.0.0.1:1\nmax-flow: 10\n", 5, "max-flow: unknown key (did you mean 'max-flows'?)")]
    [InlineData("interface: x\nlisteners:\n  - listen: 198.18.0.1\n    backend: 127.0.0.1:1\n", 3, "listen: '198.18.0.1': expected IP:PORT")]
    [InlineData("interface: x\nlisteners:\n  - listen: 198.18.0.1:80\n", 3, "backend: missing")]
    [InlineData("interface: x\nlisteners:\n  - listen: 198.18.0.1:80\n    backend: 127.0.0.1:1\n    proxy-protocol: v3\n", 5, "proxy-protocol: 'v3': expected v1, v2 or off")]
    [InlineData("interface: x\nlisteners:\n  - listen: 198.18.0.1:80\n    backend: 127.0.0.1:1\nhide-port: maybe\n", 5, "hide-port: 'maybe': expected true or false")]
    [InlineData("interface: x\nlisteners:\n  - listen: 198.18.0.1:80\n    backend: 127.0.0.1:1\ncapture: dpdk\n", 5, "capture: 'dpdk': expected auto, pcap, afpacket or afxdp")]
    [InlineData("interface: x\nlisteners:\n  - listen: 198.18.0.1:80\n    backend: 127.0.0.1:1\ndeny-source:\n  - 198.18.0.1/15\n", 6, "deny-source: '198.18.0.1/15': ")]
    [InlineData("interface: x\ninterface: y\n", 2, "interface: given twice")]
    [InlineData("interface: x\nlisteners: [\n", 3, "not valid YAML")]
    [InlineData("interface: x\nlisteners:\n  - listen: 198.18.0.1:80\n    backend: 127.0.0.1:1\ncapture: pcap\nthreads: 4\n", 6, "threads: --threads 4: libpcap capture cannot share")]
    [InlineData("interface: [a, b]\n", 1, "interface: expected one value, not a list")]
    public void ABrokenFileGivesFileLineKeyAndReason(string yaml, int line, string expected)
    {
        string path = Write(yaml);
        CliParse r = CommandLine.Parse(["check", "--config", path]);
        Assert.Null(r.Options);
        Assert.NotNull(r.Error);
        Assert.Contains($"{path}:{line}: {expected}", r.Error);
    }

    [Fact]
    public void CheckExitsTwoWithEveryErrorAndZeroOnAGoodFile()
    {
        string bad = Write("interface: x\nmax-flows: 0\nmss: 1\nlisteners:\n  - listen: 198.18.0.1:80\n    backend: 127.0.0.1:1\n");
        (int code, string _, string error) = CommandLine.Invoke(["check", "--config", bad]);
        Assert.Equal(2, code);
        Assert.Contains($"{bad}:2: max-flows:", error);
        Assert.Contains($"{bad}:3: mss:", error);

        (code, string output, error) = CommandLine.Invoke(["check", "--config", Write(Good, "good.yaml")]);
        Assert.True(code == 0, error);
        Assert.Contains("ok", output);
    }

    [Fact]
    public void AnUnreadableConfigIsAUsageErrorNamingTheFile()
    {
        string missing = Path.Combine(_dir, "nope.yaml");
        (int code, string _, string error) = CommandLine.Invoke(["run", "--config", missing]);
        Assert.Equal(2, code);
        Assert.Contains(missing, error);
        Assert.DoesNotContain("   at ", error);
    }

    [Fact]
    public void TheShippedExampleConfigPassesCheck()
    {
        string example = Path.Combine(RepoRoot(), "packaging", "cookieproxy.yaml");
        (int code, string output, string error) = CommandLine.Invoke(["check", "--config", example]);
        Assert.True(code == 0, error);
        Assert.Contains("ok", output);
        // It shows every run option (commented or not), so an operator finds them all in one place.
        string text = File.ReadAllText(example);
        foreach (string key in new[] { "interface", "listeners", "hide-port", "key-file", "max-conn-per-source", "allow-source", "deny-source", "drain-timeout" })
        {
            Assert.Contains(key + ":", text);
        }
    }

    internal static string RepoRoot()
    {
        string? dir = AppContext.BaseDirectory;
        while (dir is not null && !File.Exists(Path.Combine(dir, "CookieProxy.sln")))
        {
            dir = Path.GetDirectoryName(dir);
        }
        return dir ?? throw new InvalidOperationException("no CookieProxy.sln above the test binary");
    }
}
