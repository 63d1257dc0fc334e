using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;
using CookieProxy.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace CookieProxy.EndToEnd;

/// <summary>
/// Issue 11 items 1, 3, 5: signals, drain, reload of the config file during a download, cleanup after SIGKILL,
/// key rotation, and no drop rule or XDP program left on any exit path.
/// </summary>
[Trait("Tier", "lifecycle")]
public sealed partial class LifecycleTests : LabTestBase
{
    private const string Download = "100m.bin";

    // 100 MiB at 25 MB/s: about 4 s, so a signal a second in lands in the middle of it.
    private const string RateLimit = "25M";

    public LifecycleTests(LabFixture lab, ITestOutputHelper output)
        : base(lab, output)
    {
    }

    private string ConfigPath => Path.Combine(Lab.LabDir, "lifecycle.yaml");

    private void WriteConfig(string extra = "")
    {
        File.WriteAllText(ConfigPath, $"""
            # written by LifecycleTests
            interface: {LabFixture.ServerDev}
            listeners:
              - listen: {LabFixture.ServerIp}:80
                backend: 127.0.0.1:8080
            run-dir: {Path.Combine(Lab.LabDir, "run")}
            {extra}

            """);
    }

    private RunningCommand StartDownload(string file, string source = LabFixture.ClientIp, string rate = RateLimit)
    {
        File.Delete(file);
        return StartInClient("curl", "-fsS", "--max-time", "60", "--limit-rate", rate, "--interface", source, "-o", file,
            $"http://{LabFixture.ServerIp}/{Download}");
    }

    private void WaitForLog(string pattern, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            if (Regex.IsMatch(ProxyLog(), pattern))
            {
                return;
            }
            Thread.Sleep(100);
        }
        Assert.Fail($"'{pattern}' not in the proxy log after {timeout.TotalSeconds} s:\n{ProxyLog()}");
    }

    private static bool Alive(int pid) => Directory.Exists($"/proc/{pid}");

    private void Signal(int pid, string signal)
    {
        CommandResult r = CommandRunner.Run("kill", [$"-{signal}", pid.ToString(CultureInfo.InvariantCulture)], ShortTimeout, Log);
        Assert.True(r.Succeeded, r.ToString());
    }

    /// <summary>The nft tables in the server namespace named after a process (cookieproxy_PID).</summary>
    private List<string> ProcessTables()
    {
        CommandResult r = InServer(ShortTimeout, "nft", "list", "tables");
        Assert.True(r.Succeeded, r.ToString());
        return [.. ProcessTable().Matches(r.StdOut).Select(m => m.Value)];
    }

    [GeneratedRegex(@"cookieproxy_\d+")]
    private static partial Regex ProcessTable();

    [LabFact]
    public void Sighup_during_a_100_MiB_download_keeps_it_byte_identical_and_a_new_per_source_cap_holds_from_then_on()
    {
        // fanout: source, because a cap that a reload turns on is exact only if all of a source's flows reach one
        // thread; auto picks the flow hash when the file starts without a cap (then it holds per thread).
        WriteConfig("max-conn-per-source: 0\nfanout: source");
        int pid = StartProxy("--config", ConfigPath);
        string file = Path.Combine(Lab.LabDir, "hup-" + Download);
        using RunningCommand download = StartDownload(file);
        Thread.Sleep(1000);
        Assert.False(download.HasExited, "the download ended before the reload: " + download.StdErrSoFar);

        WriteConfig("max-conn-per-source: 1\nfanout: source");
        Signal(pid, "HUP");
        WaitForLog(@"SIGHUP: reloaded .*max-conn-per-source 0 -> 1", TimeSpan.FromSeconds(10));
        Assert.False(download.HasExited, "the download ended during the reload: " + download.StdErrSoFar);

        // The download is this source's one connection: a second one is refused from now on ...
        long limitedBefore = ReadStats().Drops.GetValueOrDefault("RateLimited");
        CommandResult second = InClient(TimeSpan.FromSeconds(20), "curl", "-sS", "-o", "/dev/null", "--max-time", "5",
            "--interface", LabFixture.ClientIp, $"http://{LabFixture.ServerIp}/1k.bin");
        Assert.False(second.Succeeded, "a second connection from the capped source was served:\n" + second);
        WaitForStats(s => s.Drops.GetValueOrDefault("RateLimited") > limitedBefore, TimeSpan.FromSeconds(5), "a RateLimited drop");
        // ... while another source is served as before.
        AssertDownloadIntact("1k.bin", "198.18.1.31", "hup-other");

        CommandResult done = download.WaitForExit(TimeSpan.FromSeconds(60), Log);
        Assert.True(done.Succeeded, done.ToString());
        Assert.Equal(Lab.ExpectedSha256(Download), Hashing.Sha256OfFile(file));
        Assert.True(Alive(pid), "SIGHUP ended the process");
        Assert.DoesNotContain("Unhandled exception", ProxyLog());
    }

    [LabFact]
    public void A_reload_adds_and_removes_listeners_while_an_established_download_goes_on()
    {
        WriteConfig("hide-port: true");
        int pid = StartProxy("--config", ConfigPath);
        string file = Path.Combine(Lab.LabDir, "listeners-" + Download);
        // Slower than the others (about 13 s): two reloads and their checks happen during it.
        using RunningCommand download = StartDownload(file, rate: "8M");
        Thread.Sleep(800);

        // Added: 198.18.0.1:81 is protected (captured, answered, hidden from the host's stack) from the reload on.
        File.WriteAllText(ConfigPath, File.ReadAllText(ConfigPath).Replace("listeners:\n", $"listeners:\n  - listen: {LabFixture.ServerIp}:81\n    backend: 127.0.0.1:8080\n", StringComparison.Ordinal));
        Signal(pid, "HUP");
        WaitForLog("listener added: 198.18.0.1:81", TimeSpan.FromSeconds(10));
        CommandResult added = InClient(TimeSpan.FromSeconds(20), "curl", "-fsS", "-o", "/dev/null", "--max-time", "10",
            "--interface", "198.18.1.40", $"http://{LabFixture.ServerIp}:81/1m.bin");
        Assert.True(added.Succeeded, added + "\nproxy log:\n" + ProxyLog());
        CommandResult rules = InServer(ShortTimeout, "nft", "list", "table", "inet", $"cookieproxy_{pid}");
        Assert.Contains("tcp dport 81", rules.StdOut);

        // Removed: :80 takes no new connection, while the download on it goes on to the last byte.
        WriteConfig("hide-port: true");
        File.WriteAllText(ConfigPath, File.ReadAllText(ConfigPath).Replace($"{LabFixture.ServerIp}:80", $"{LabFixture.ServerIp}:81", StringComparison.Ordinal));
        Signal(pid, "HUP");
        WaitForLog("listener removed: 198.18.0.1:80", TimeSpan.FromSeconds(10));
        Assert.NotEqual("connected", TryConnectNoRetry("198.18.1.41"));
        Assert.False(download.HasExited, "the download ended before it could be checked: " + download.StdErrSoFar);
        CommandResult done = download.WaitForExit(TimeSpan.FromSeconds(60), Log);
        Assert.True(done.Succeeded, done.ToString());
        Assert.Equal(Lab.ExpectedSha256(Download), Hashing.Sha256OfFile(file));
        Assert.True(Alive(pid));
    }

    [LabFact]
    public void A_bad_file_on_reload_changes_nothing_and_is_reported_with_its_line()
    {
        WriteConfig("max-conn-per-source: 0");
        int pid = StartProxy("--config", ConfigPath);
        File.AppendAllText(ConfigPath, "max-flows: many\n");
        int badLine = File.ReadAllLines(ConfigPath).Length;
        Signal(pid, "HUP");
        WaitForLog($@"{Regex.Escape(ConfigPath)}:{badLine}: max-flows: 'many'", TimeSpan.FromSeconds(10));
        Assert.Contains("nothing changed", ProxyLog());

        // An option that cannot change live is refused as well, and nothing else of the file applies.
        WriteConfig("max-conn-per-source: 1\nthreads: 3");
        Signal(pid, "HUP");
        WaitForLog("threads: cannot change while running", TimeSpan.FromSeconds(10));
        Assert.True(Alive(pid));
        // max-conn-per-source 1 was not applied: two connections from one source are both served.
        AssertDownloadIntact("1m.bin", "198.18.1.32", "bad-a");
        using (RunningCommand slow = StartDownload(Path.Combine(Lab.LabDir, "bad-slow"), "198.18.1.33"))
        {
            Thread.Sleep(500);
            AssertDownloadIntact("1k.bin", "198.18.1.33", "bad-b");
            Assert.True(slow.WaitForExit(TimeSpan.FromSeconds(60), Log).Succeeded);
        }
    }

    [LabFact]
    public void Sigterm_during_a_download_lets_it_finish_and_exits_0()
    {
        string stats = Path.Combine(Lab.LabDir, "term-stats.json");
        File.Delete(stats);
        using RunningCommand proxy = StartProxyDirectly(stats, "--drain-timeout", "30", "--hide-port");
        string file = Path.Combine(Lab.LabDir, "term-" + Download);
        using RunningCommand download = StartDownload(file);
        Thread.Sleep(1000);
        Assert.False(download.HasExited, "the download ended before the signal: " + download.StdErrSoFar);
        List<string> tables = ProcessTables();
        Assert.Contains($"cookieproxy_{proxy.Pid}", tables);

        Signal(proxy.Pid, "TERM");
        Thread.Sleep(300);
        // Draining: new connections are not taken while the download goes on.
        Assert.NotEqual("connected", TryConnectNoRetry("198.18.1.34"));

        CommandResult done = download.WaitForExit(TimeSpan.FromSeconds(60), Log);
        Assert.True(done.Succeeded, done.ToString());
        Assert.Equal(Lab.ExpectedSha256(Download), Hashing.Sha256OfFile(file));
        CommandResult exited = proxy.WaitForExit(TimeSpan.FromSeconds(20), Log);
        Assert.False(exited.TimedOut, exited.ToString());
        Assert.True(exited.ExitCode == 0, exited.ToString());
        Assert.Contains("drained", exited.StdErr);
        Assert.DoesNotContain($"cookieproxy_{proxy.Pid}", ProcessTables());
    }

    [LabFact]
    public void Sigkill_then_cleanup_leaves_no_table_and_the_port_answers_only_once_a_new_instance_runs()
    {
        int pid = StartProxy("--hide-port");
        Assert.Contains($"cookieproxy_{pid}", ProcessTables());
        Signal(pid, "KILL");
        SpinWait.SpinUntil(() => !Alive(pid), TimeSpan.FromSeconds(10));
        Assert.Contains($"cookieproxy_{pid}", ProcessTables());

        CommandResult cleanup = InServer(ShortTimeout, Lab.BinaryPath, "cleanup");
        Assert.True(cleanup.Succeeded, cleanup.ToString());
        Assert.Contains($"removed nft table inet cookieproxy_{pid}", cleanup.StdOut);
        Assert.Empty(ProcessTables());
        // Safe to run again: nothing left.
        CommandResult again = InServer(ShortTimeout, Lab.BinaryPath, "cleanup");
        Assert.True(again.Succeeded, again.ToString());
        Assert.Contains("nothing left behind", again.StdOut);

        // No proxy: the port stays dark (the lab keeps it hidden, as a host would with the package's rule) ...
        Assert.NotEqual("connected", TryConnectNoRetry("198.18.1.35"));
        // ... until a new instance runs.
        StartProxy("--hide-port");
        Assert.Equal("connected", TryConnect("198.18.1.36"));
    }

    [LabTheory]
    [InlineData("INT", "")]
    [InlineData("TERM", "")]
    [InlineData("HUP,TERM", "")]
    [InlineData("TERM", "--xdp-syn generic")]
    public void No_drop_rule_or_xdp_program_is_left_on_any_exit_path(string signals, string extra)
    {
        string stats = Path.Combine(Lab.LabDir, "exit-stats.json");
        File.Delete(stats);
        string[] extraArgs = extra.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        using RunningCommand proxy = StartProxyDirectly(stats, ["--hide-port", .. extraArgs]);
        Assert.Contains($"cookieproxy_{proxy.Pid}", ProcessTables());
        if (extra.Contains("xdp", StringComparison.Ordinal))
        {
            Assert.Contains("xdpgeneric", ServerLinkDetails());
        }
        AssertDownloadIntact("1k.bin", "198.18.1.37", "exit");
        foreach (string signal in signals.Split(','))
        {
            Signal(proxy.Pid, signal);
            Thread.Sleep(500);
        }
        CommandResult exited = proxy.WaitForExit(TimeSpan.FromSeconds(20), Log);
        Assert.False(exited.TimedOut, exited.ToString());
        Assert.True(exited.ExitCode == 0, exited.ToString());
        Assert.DoesNotContain($"cookieproxy_{proxy.Pid}", ProcessTables());
        // An attached program shows as "xdpgeneric"/"xdp" after the MTU and "prog/xdp" in the details ("xdp" alone
        // could be part of a netns name: CP_LAB_ID).
        Assert.DoesNotMatch(@"xdpgeneric|mtu \d+ xdp |prog/xdp", ServerLinkDetails());
        if (signals.StartsWith("HUP", StringComparison.Ordinal))
        {
            Assert.Contains("SIGHUP", exited.StdErr);
        }
    }

    [LabFact]
    public void An_ack_to_a_syn_ack_made_before_a_key_rotation_still_creates_a_flow()
    {
        string key = Path.Combine(Lab.LabDir, "rotation.key");
        CommandResult genkey = CommandRunner.Run(Lab.BinaryPath, ["genkey", key], ShortTimeout, Log);
        Assert.True(genkey.Succeeded, genkey.ToString());
        StartProxy("--key-file", key);
        long validBefore = ReadStats().CookieValid;

        // The client gets its SYN+ACK (a cookie under the old key), but its ACK and request are held back ...
        InClient(ShortTimeout, "nft", "delete", "table", "inet", "cptest_hold");
        string rules = Path.Combine(Lab.LabDir, "hold.nft");
        File.WriteAllText(rules, $$"""
            table inet cptest_hold {
              chain out {
                type filter hook output priority 0; policy accept;
                ip daddr {{LabFixture.ServerIp}} tcp dport 80 tcp flags & syn == 0 drop
              }
            }

            """);
        CommandResult held = InClient(ShortTimeout, "nft", "-f", rules);
        Assert.True(held.Succeeded, held.ToString());
        string file = Path.Combine(Lab.LabDir, "rotation-1m.bin");
        File.Delete(file);
        try
        {
            using RunningCommand curl = StartInClient("curl", "-fsS", "--max-time", "30", "--interface", "198.18.1.38", "-o", file,
                $"http://{LabFixture.ServerIp}/1m.bin");
            Thread.Sleep(1500);

            // ... while the key rotates and the proxy reloads it ...
            CommandResult rotate = CommandRunner.Run(Lab.BinaryPath, ["genkey", "--rotate", key], ShortTimeout, Log);
            Assert.True(rotate.Succeeded, rotate.ToString());
            Signal(ProxyPid, "HUP");
            WaitForLog("cookie key rotated", TimeSpan.FromSeconds(10));

            // ... then the ACK (the client retransmits its request) reaches the proxy: valid under the previous key.
            InClient(ShortTimeout, "nft", "delete", "table", "inet", "cptest_hold");
            CommandResult done = curl.WaitForExit(TimeSpan.FromSeconds(40), Log);
            Assert.True(done.Succeeded, done.ToString() + "\nproxy log:\n" + ProxyLog());
        }
        finally
        {
            InClient(ShortTimeout, "nft", "delete", "table", "inet", "cptest_hold");
        }
        Assert.Equal(Lab.ExpectedSha256("1m.bin"), Hashing.Sha256OfFile(file));
        WaitForStats(s => s.CookieValid > validBefore, TimeSpan.FromSeconds(5), "the held-back ACK validated");
        // And new handshakes use the new key.
        AssertDownloadIntact("1k.bin", "198.18.1.39", "rotation-new");
    }

    /// <summary>The published binary in the server namespace, run by the test itself (so it sees the exit code),
    /// with its own stats file; returns once the stats file shows the capture is open.</summary>
    private RunningCommand StartProxyDirectly(string statsFile, params string[] extra)
    {
        Assert.True(File.Exists(Lab.BinaryPath), $"no cookieproxy binary at {Lab.BinaryPath}");
        RunningCommand proxy = CommandRunner.Start("ip", ["netns", "exec", LabFixture.ServerNs, Lab.BinaryPath, "run",
            "--interface", LabFixture.ServerDev, "--listen", $"{LabFixture.ServerIp}:80", "--backend", "127.0.0.1:8080",
            "--run-dir", Path.Combine(Lab.LabDir, "run"), "--stats-file", statsFile, .. extra]);
        Log("started in background: " + proxy.CommandLine);
        var clock = Stopwatch.StartNew();
        while (!File.Exists(statsFile))
        {
            if (proxy.HasExited || clock.Elapsed > TimeSpan.FromSeconds(60))
            {
                CommandResult r = proxy.WaitForExit(TimeSpan.FromSeconds(5), Log);
                Assert.Fail("cookieproxy did not start:\n" + r);
            }
            Thread.Sleep(100);
        }
        return proxy;
    }

    /// <summary>One connect() with a short timeout and no SYN retransmission to speak of.</summary>
    private string TryConnectNoRetry(string source) => TryConnect(source, timeoutSeconds: 1.5);
}
