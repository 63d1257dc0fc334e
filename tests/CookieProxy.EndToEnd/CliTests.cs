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
        // libpcap: "cp-nosuch0: No such device exists (...)" (pcap_statustostr / pcap_geterr).
        Assert.Contains("no such device", r.StdErr, StringComparison.OrdinalIgnoreCase);
    }

    private CommandResult RunBinary(string[] args)
    {
        Assert.True(File.Exists(Lab.BinaryPath), $"no cookieproxy binary at {Lab.BinaryPath}");
        return InServer(TimeSpan.FromSeconds(15), [Lab.BinaryPath, .. args]);
    }
}
