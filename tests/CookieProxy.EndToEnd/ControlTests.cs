using System.Diagnostics;
using System.Globalization;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using System.Text.RegularExpressions;
using CookieProxy.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace CookieProxy.EndToEnd;

/// <summary>
/// Issue 11.6: the control socket during floods: `stats --json` agrees with the final counters, the socket answers
/// within 200 ms while the capture threads run flat out, `top` draws live rates in tmux and gives the terminal
/// back, `reload` of an instance without a config file says there is nothing to reload.
/// </summary>
[Trait("Tier", "ops")]
public sealed partial class ControlTests : LabTestBase
{
    public ControlTests(LabFixture lab, ITestOutputHelper output)
        : base(lab, output)
    {
    }

    /// <summary>lab.sh proxy-start puts the control socket here (not /run/cookieproxy: labs run side by side).</summary>
    private string SocketPath => Path.Combine(Lab.LabDir, "control.sock");

    private CommandResult Cli(params string[] args) =>
        CommandRunner.Run(Lab.BinaryPath, [.. args, "--socket", SocketPath], TimeSpan.FromSeconds(30), Log);

    private JsonElement StatsJson()
    {
        CommandResult r = Cli("stats", "--json");
        Assert.True(r.Succeeded, r.ToString());
        using JsonDocument doc = JsonDocument.Parse(r.StdOut);
        return doc.RootElement.Clone();
    }

    [LabFact]
    public void Stats_json_during_an_hping3_flood_matches_the_final_counters()
    {
        StartProxy();
        JsonElement during = default;
        (ProxyStats _, ProxyStats quiet) = RunBoundedSynFlood(() =>
        {
            Thread.Sleep(1500);
            during = StatsJson();
        });

        Assert.True(during.GetProperty("syn_received").GetInt64() > 0, during.ToString());
        Assert.True(during.GetProperty("rates").GetProperty("syn_received").GetDouble() > 100, "SYN rate during the flood: " + during.GetProperty("rates"));

        JsonElement after = StatsJson();
        // Per listener = the SYNs user space saw once the flood is over (during it, the two are read a few SYNs
        // apart); the XDP program counts per CPU, not per endpoint, so its SYNs are only in the total.
        long inKernel = after.GetProperty("xdp_synack_sent").GetInt64() + after.GetProperty("xdp_syn_over_budget").GetInt64();
        Assert.Equal(after.GetProperty("syn_received").GetInt64() - inKernel, after.GetProperty("listeners")[0].GetProperty("syn_received").GetInt64());
        Assert.True(quiet.SynReceived >= BoundedFloodMinSyns, quiet.Json);
        GracefulStop.Run(ProxyPid, Log);
        StopProxy();
        ProxyStats final = ReadStats();    // written once more at exit
        foreach (string counter in new[] { "syn_received", "synack_sent", "cookie_valid", "cookie_invalid", "drops_total", "frames_received" })
        {
            Assert.True(final[counter] == after.GetProperty(counter).GetInt64(),
                $"{counter}: stats --json {after.GetProperty(counter).GetInt64()}, final stats file {final[counter]}\n{final.Json}");
        }
        foreach (JsonProperty drop in after.GetProperty("drops").EnumerateObject())
        {
            long inFile = final.Drops.TryGetValue(drop.Name, out long n) ? n : 0;
            Assert.True(inFile == drop.Value.GetInt64(), $"drop {drop.Name}: stats --json {drop.Value.GetInt64()}, final stats file {inFile}");
        }
        Assert.False(File.Exists(SocketPath), "the control socket goes with the process");
    }

    [LabFact]
    public void The_control_socket_answers_within_200_ms_during_a_full_rate_flood()
    {
        StartProxy();
        var latencies = new List<double>();
        long synBefore, synAfter;
        // As fast as hping3 goes, bounded by count and time.
        using (RunningCommand flood = StartInClient("timeout", "6", "hping3", "-q", "-S", "-p", "80", "--flood", "-c", "1000000",
            "-a", "198.18.1.9", LabFixture.ServerIp))
        {
            Thread.Sleep(1500);
            using var socket = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified) { ReceiveTimeout = 5000 };
            socket.Connect(new UnixDomainSocketEndPoint(SocketPath));
            synBefore = Request(socket, latencies).GetProperty("syn_received").GetInt64();
            for (int i = 0; i < 15; i++)
            {
                Thread.Sleep(150);
                Request(socket, latencies);
            }
            synAfter = Request(socket, latencies).GetProperty("syn_received").GetInt64();
            flood.WaitForExit(TimeSpan.FromSeconds(15), Log);
        }
        Log("control socket replies (ms): " + string.Join(" ", latencies.Select(l => l.ToString("F1", CultureInfo.InvariantCulture))));
        Assert.True(synAfter - synBefore > 5000, $"the flood did not reach the proxy: {synAfter - synBefore} SYNs while asking");
        Assert.True(latencies.Max() < 200, $"slowest reply {latencies.Max():F1} ms");
    }

    /// <summary>One `stats` request on an open connection; its round trip goes into <paramref name="latencies"/>.</summary>
    private static JsonElement Request(Socket socket, List<double> latencies)
    {
        var clock = Stopwatch.StartNew();
        socket.Send("{\"command\":\"stats\"}\n"u8);
        var reply = new MemoryStream();
        var buffer = new byte[65536];
        while (true)
        {
            int n = socket.Receive(buffer);
            Assert.True(n > 0, "the control socket closed");
            reply.Write(buffer, 0, n);
            if (buffer[n - 1] == (byte)'\n')
            {
                break;
            }
        }
        latencies.Add(clock.Elapsed.TotalMilliseconds);
        using JsonDocument doc = JsonDocument.Parse(reply.ToArray());
        Assert.True(doc.RootElement.GetProperty("ok").GetBoolean(), Encoding.UTF8.GetString(reply.ToArray()));
        return doc.RootElement.GetProperty("result").Clone();
    }

    [GeneratedRegex(@"SYN ([0-9,]+\.[0-9])/s")]
    private static partial Regex SynRate();

    [LabFact]
    public void Top_runs_in_tmux_shows_the_rates_and_gives_the_terminal_back()
    {
        Assert.True(File.Exists("/usr/bin/tmux"), "tmux is missing (scripts/install-deps.sh installs it)");
        StartProxy();
        string server = $"cp-top-{Environment.ProcessId}";
        string[] tmux = ["-L", server];
        CommandResult Tmux(params string[] args) => CommandRunner.Run("tmux", [.. tmux, .. args], ShortTimeout, Log);
        try
        {
            CommandResult started = Tmux("new-session", "-d", "-s", "top", "-x", "160", "-y", "50",
                $"{Lab.BinaryPath} top --socket {SocketPath}; echo EXITED=$?; sleep 60");
            Assert.True(started.Succeeded, started.ToString());
            using RunningCommand flood = StartInClient("timeout", "20", "hping3", "-q", "-S", "-p", "80", "-i", "u200", "-c", "100000",
                "-a", "198.18.1.9", LabFixture.ServerIp);

            string screen = WaitForScreen(Tmux, s => SynRate().Match(s) is { Success: true } m && Rate(m) > 500, TimeSpan.FromSeconds(30),
                "a SYN rate above 500/s");
            Assert.Contains("198.18.0.1:80", screen);
            Assert.Contains("Top sources", screen);
            Assert.Contains("198.18.1.0/24", screen);

            Assert.True(Tmux("send-keys", "-t", "top", "q").Succeeded);
            screen = WaitForScreen(Tmux, s => s.Contains("EXITED=", StringComparison.Ordinal), TimeSpan.FromSeconds(10), "top to exit");
            Assert.Contains("EXITED=0", screen);
            // The alternate screen is gone: the view's lines are not left on the terminal.
            Assert.DoesNotContain("Top sources", screen);
            flood.Kill();
        }
        finally
        {
            Tmux("kill-server");
        }
    }

    private static double Rate(Match m) => double.Parse(m.Groups[1].Value.Replace(",", ""), CultureInfo.InvariantCulture);

    private string WaitForScreen(Func<string[], CommandResult> tmux, Func<string, bool> condition, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        string screen = "";
        while (clock.Elapsed < timeout)
        {
            CommandResult r = tmux(["capture-pane", "-p", "-t", "top"]);
            screen = r.StdOut;
            if (condition(screen))
            {
                return screen;
            }
            Thread.Sleep(500);
        }
        Assert.Fail($"waited {timeout.TotalSeconds} s for {what}; the screen:\n{screen}");
        return screen;
    }

    [LabFact]
    public void Reload_of_an_instance_without_a_config_file_rereads_its_command_line_and_says_nothing_changed()
    {
        StartProxy();
        CommandResult r = Cli("reload");
        Assert.True(r.Succeeded, r.ToString());
        Assert.Contains("reload applied: nothing changed", r.StdOut);
        Assert.Contains("reloaded (command line): nothing changed", ProxyLog());
        Assert.True(Cli("stats").Succeeded, "still running");
    }
}

/// <summary>
/// SIGTERM and wait for the process to exit by itself: lab.sh proxy-stop SIGKILLs after 5 s, which a drain plus
/// a loaded machine can exceed, and a killed process writes no final stats file and leaves its socket behind.
/// </summary>
internal static class GracefulStop
{
    public static void Run(int pid, Action<string> log)
    {
        CommandResult r = CommandRunner.Run("kill", ["-TERM", pid.ToString(CultureInfo.InvariantCulture)], TimeSpan.FromSeconds(10), log);
        Assert.True(r.Succeeded, r.ToString());
        var clock = Stopwatch.StartNew();
        while (Directory.Exists($"/proc/{pid}") && clock.Elapsed < TimeSpan.FromSeconds(40))
        {
            Thread.Sleep(100);
        }
        Assert.False(Directory.Exists($"/proc/{pid}"), $"cookieproxy {pid} still running 40 s after SIGTERM");
        log($"cookieproxy {pid} exited {clock.Elapsed.TotalSeconds:F1} s after SIGTERM");
    }
}
