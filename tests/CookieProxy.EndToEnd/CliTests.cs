using CookieProxy.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace CookieProxy.EndToEnd;

/// <summary>Issue 2: bad command lines end with exit code 2 (or the capture error) and say why.</summary>
[Trait("Tier", "cli")]
public sealed class CliTests : LabTestBase
{
    public CliTests(LabFixture lab, ITestOutputHelper output)
        : base(lab, output)
    {
    }

    public static TheoryData<string, string[]> BadArguments => new()
    {
        { "no arguments", [] },
        { "no arguments to run", ["run"] },
        { "unknown option", ["run", "--interface", "cp-s0", "--listen", "198.18.0.1:80", "--backend", "127.0.0.1:8080", "--no-such-option"] },
        { "bad --listen address", ["run", "--interface", "cp-s0", "--listen", "198.18.0.300:80", "--backend", "127.0.0.1:8080"] },
        { "--listen without a port", ["run", "--interface", "cp-s0", "--listen", "198.18.0.1", "--backend", "127.0.0.1:8080"] },
        { "--listen without --backend", ["run", "--interface", "cp-s0", "--listen", "198.18.0.1:80"] },
        { "bad --backend port", ["run", "--interface", "cp-s0", "--listen", "198.18.0.1:80", "--backend", "127.0.0.1:99999"] },
        { "bad --proxy-protocol", ["run", "--interface", "cp-s0", "--listen", "198.18.0.1:80", "--backend", "127.0.0.1:8080", "--proxy-protocol", "v3"] },
        { "bad --capture", ["run", "--interface", "cp-s0", "--listen", "198.18.0.1:80", "--backend", "127.0.0.1:8080", "--capture", "dpdk"] },
        { "--threads 2 with libpcap", ["run", "--interface", "cp-s0", "--listen", "198.18.0.1:80", "--backend", "127.0.0.1:8080", "--capture", "pcap", "--threads", "2"] },
        { "bad --fanout", ["run", "--interface", "cp-s0", "--listen", "198.18.0.1:80", "--backend", "127.0.0.1:8080", "--fanout", "hash"] },
    };

    [LabTheory]
    [MemberData(nameof(BadArguments))]
    public void Bad_arguments_exit_with_code_2_and_a_message(string why, string[] args)
    {
        CommandResult r = RunBinary(args);
        Assert.False(r.TimedOut, $"{why}: the binary did not exit\n{r}");
        Assert.True(r.ExitCode == 2, $"{why}: expected exit code 2\n{r}");
        Assert.False(string.IsNullOrWhiteSpace(r.StdErr), $"{why}: no message on stderr\n{r}");
    }

    [LabFact]
    public void Unknown_interface_fails_with_the_capture_error()
    {
        CommandResult r = RunBinary(["run", "--interface", "cp-nosuch0", "--listen", "198.18.0.1:80", "--backend", "127.0.0.1:8080",
            "--capture", "pcap"]);
        Assert.False(r.TimedOut, r.ToString());
        Assert.NotEqual(0, r.ExitCode);
        Assert.Contains("cp-nosuch0", r.StdErr);
        // The interface is looked up before libpcap opens it ("no such interface"); libpcap's own text is
        // "No such device exists" (pcap_statustostr).
        Assert.Matches("(?i)no such (interface|device)", r.StdErr);
        Assert.Equal(1, r.ExitCode);
    }

    [LabFact]
    public void Check_passes_on_the_example_config()
    {
        CommandResult r = RunBinary(["check", "--config", Path.Combine(Lab.RepoRoot, "packaging", "cookieproxy.yaml")]);
        Assert.True(r.ExitCode == 0, r.ToString());
        Assert.Contains("ok", r.StdOut);
    }

    public static TheoryData<string, string, string> BrokenConfigs => new()
    {
        { "a bad number", "max-flows: many", "2: max-flows: 'many'" },
        { "a typo in a key", "max-flow: 10", "2: max-flow: unknown key (did you mean 'max-flows'?)" },
        { "a listener without a port", "listeners:\n  - listen: 198.18.0.1\n    backend: 127.0.0.1:8080", "3: listen: '198.18.0.1'" },
        { "a listener without a backend", "listeners:\n  - listen: 198.18.0.1:80", "3: backend: missing" },
        { "a bad PROXY version", "listeners:\n  - listen: 198.18.0.1:80\n    backend: 127.0.0.1:8080\n    proxy-protocol: v3", "5: proxy-protocol: 'v3'" },
        { "a flag that is no boolean", "hide-port: maybe", "2: hide-port: 'maybe'" },
        { "an unknown capture", "capture: dpdk", "2: capture: 'dpdk'" },
        { "a prefix with host bits", "deny-source: [198.18.0.1/15]", "2: deny-source: '198.18.0.1/15'" },
        { "a key given twice", "interface: cp-s1", "2: interface: given twice" },
        { "broken YAML", "listeners: [", "3: not valid YAML" },
    };

    [LabTheory]
    [MemberData(nameof(BrokenConfigs))]
    public void Check_gives_file_line_key_and_reason_and_exit_2_for_a_broken_config(string why, string line, string expected)
    {
        string path = Path.Combine(Lab.LabDir, "broken.yaml");
        File.WriteAllText(path, "interface: cp-s0\n" + line + "\n");
        CommandResult r = RunBinary(["check", "--config", path]);
        Assert.True(r.ExitCode == 2, $"{why}: expected exit code 2\n{r}");
        Assert.Contains($"{path}:{expected}", r.StdErr);
        Assert.DoesNotContain("   at ", r.StdErr);
    }

    [LabFact]
    public void Help_works_for_every_command_and_both_option_spellings_parse()
    {
        foreach (string command in new[] { "run", "check", "reload", "stats", "top", "genkey", "cleanup", "version" })
        {
            CommandResult help = RunBinary([command, "--help"]);
            Assert.True(help.ExitCode == 0, $"{command} --help\n{help}");
            Assert.Contains("Usage:", help.StdOut);
        }
        CommandResult version = RunBinary(["--version"]);
        Assert.Matches(@"^cookieproxy \d+\.\d+\.\d+", version.StdOut);
        CommandResult equals = RunBinary(["check", "--interface=cp-s0", "--listen=198.18.0.1:80", "--backend=127.0.0.1:8080", "--max-flows=10"]);
        Assert.True(equals.ExitCode == 0, equals.ToString());
    }

    private CommandResult RunBinary(string[] args)
    {
        Assert.True(File.Exists(Lab.BinaryPath), $"no cookieproxy binary at {Lab.BinaryPath}");
        return InServer(TimeSpan.FromSeconds(15), [Lab.BinaryPath, .. args]);
    }
}
