using System.Diagnostics;
using System.Globalization;
using Xunit.Abstractions;

namespace CookieProxy.EndToEnd.Infrastructure;

/// <summary>
/// Base of every end-to-end test class: puts the lab into its resting state before each test (no proxy,
/// no impairment, Apache up, port 80 hidden) and offers helpers that log every command to the test output.
/// </summary>
[Collection(LabCollection.Name)]
public abstract class LabTestBase : IDisposable
{
    protected static readonly TimeSpan ShortTimeout = TimeSpan.FromSeconds(20);

    private int? _proxyPid;

    protected LabTestBase(LabFixture lab, ITestOutputHelper output)
    {
        Lab = lab;
        Output = output;
        if (LabFixture.SkipRequested)
        {
            return;
        }

        lab.RequireReady();
        Reset();
    }

    protected LabFixture Lab { get; }

    protected ITestOutputHelper Output { get; }

    protected int ProxyPid => _proxyPid ?? throw new InvalidOperationException("proxy not started by this test");

    protected void Log(string text)
    {
        try
        {
            Output.WriteLine(text);
        }
        catch (InvalidOperationException)
        {
            // No test is active (called from Dispose after the test finished).
        }
    }

    protected CommandResult LabSh(params string[] args) => Lab.RunLabRaw(args, TimeSpan.FromMinutes(3), Log);

    protected CommandResult InClient(TimeSpan timeout, params string[] command) =>
        CommandRunner.Run("ip", ["netns", "exec", LabFixture.ClientNs, .. command], timeout, Log);

    protected CommandResult InServer(TimeSpan timeout, params string[] command) =>
        CommandRunner.Run("ip", ["netns", "exec", LabFixture.ServerNs, .. command], timeout, Log);

    protected RunningCommand StartInClient(params string[] command)
    {
        RunningCommand running = CommandRunner.Start("ip", ["netns", "exec", LabFixture.ClientNs, .. command]);
        Log("started in background: " + running.CommandLine);
        return running;
    }

    /// <summary>Starts the published binary through <c>lab.sh proxy-start</c>; fails the test if it does not come up.</summary>
    protected int StartProxy(params string[] extraArgs)
    {
        Assert.True(File.Exists(Lab.BinaryPath),
            $"no cookieproxy binary at {Lab.BinaryPath}: run `dotnet publish src/CookieProxy -c Release -r linux-x64 --self-contained -p:PublishSingleFile=true -o out/` or set COOKIEPROXY_BIN");
        CommandResult started = LabSh(["proxy-start", .. extraArgs]);
        if (!started.Succeeded)
        {
            Assert.Fail("cookieproxy did not start:\n" + started + "\nproxy log:\n" + ProxyLog());
        }

        string lastLine = started.StdOut.Trim().Split('\n')[^1].Trim();
        _proxyPid = int.Parse(lastLine, CultureInfo.InvariantCulture);
        return _proxyPid.Value;
    }

    protected void StopProxy()
    {
        LabSh("proxy-stop");
        _proxyPid = null;
    }

    /// <summary>`ip -d link show` of the server's veth (it names an attached XDP program: xdpgeneric/xdp).</summary>
    protected string ServerLinkDetails()
    {
        CommandResult r = CommandRunner.Run("ip", ["-n", LabFixture.ServerNs, "-d", "link", "show", LabFixture.ServerDev], ShortTimeout, Log);
        Assert.True(r.Succeeded, r.ToString());
        return r.StdOut;
    }

    /// <summary>curl GET of a lab file through the proxy (optionally from another client address), sha256-checked.</summary>
    protected void AssertDownloadIntact(string name, string? source = null, string tag = "dl")
    {
        string file = Path.Combine(Lab.LabDir, $"{tag}-{name}");
        File.Delete(file);
        string[] from = source is null ? [] : ["--interface", source];
        CommandResult r = InClient(TimeSpan.FromSeconds(60), ["curl", "-fsS", "--max-time", "30", .. from, "-o", file, $"http://{LabFixture.ServerIp}/{name}"]);
        Assert.True(r.Succeeded, r.ToString() + "\nproxy log:\n" + ProxyLog());
        Assert.Equal(Lab.ExpectedSha256(name), Hashing.Sha256OfFile(file));
    }

    /// <summary>curl POST of the lab's 10 MiB file through the proxy: the upload CGI answers with the sha256 and
    /// size it received.</summary>
    protected void AssertTenMiBUploadIntact()
    {
        string source = Path.Combine(Lab.CacheDir, "10m.bin");
        CommandResult up = InClient(TimeSpan.FromSeconds(90), "curl", "-fsS", "--max-time", "60", "--data-binary", "@" + source,
            "-H", "Content-Type: application/octet-stream", $"http://{LabFixture.ServerIp}/cgi-bin/upload");
        Assert.True(up.Succeeded, up.ToString());
        Assert.Equal($"{Lab.ExpectedSha256("10m.bin")} 10485760", up.StdOut.Trim());
    }

    /// <summary>Fewer SYNs than this from <see cref="RunBoundedSynFlood"/> means the flood did not happen.</summary>
    protected const int BoundedFloodMinSyns = 1000;

    /// <summary>
    /// A bounded hping3 SYN flood: at most 10 kpps and 50,000 SYNs for 6 s, from one of our own client addresses
    /// (never --rand-source). <paramref name="duringFlood"/> runs a second in. Returns the proxy's counters once
    /// quiet before and after.
    /// </summary>
    protected (ProxyStats Before, ProxyStats After) RunBoundedSynFlood(Action duringFlood)
    {
        const int seconds = 6;
        ProxyStats before = WaitForQuietStats(TimeSpan.FromSeconds(6));
        using (RunningCommand flood = StartInClient("timeout", seconds.ToString(), "hping3", "-q", "-S", "-p", "80", "-i", "u100",
            "-c", "50000", "-a", "198.18.1.9", LabFixture.ServerIp))
        {
            Thread.Sleep(1000);
            duringFlood();
            CommandResult done = flood.WaitForExit(TimeSpan.FromSeconds(seconds + 10), Log);
            Assert.False(done.TimedOut, done.ToString());
        }
        return (before, WaitForQuietStats(TimeSpan.FromSeconds(10)));
    }

    protected string ProxyLog() => File.Exists(Lab.ProxyLogPath) ? File.ReadAllText(Lab.ProxyLogPath) : "(no proxy log)";

    protected ProxyStats ReadStats() =>
        WaitForStats(_ => true, TimeSpan.FromSeconds(5), "a readable stats file");

    /// <summary>Polls the stats file (rewritten every second) until <paramref name="condition"/> holds.</summary>
    protected ProxyStats WaitForStats(Func<ProxyStats, bool> condition, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        ProxyStats? last = null;
        while (true)
        {
            ProxyStats? stats = ProxyStats.TryRead(Lab.StatsPath);
            if (stats is not null)
            {
                last = stats;
                try
                {
                    if (condition(stats))
                    {
                        Log("stats: " + stats.Json);
                        return stats;
                    }
                }
                catch (KeyNotFoundException e)
                {
                    Assert.Fail(e.Message);
                }
            }

            if (clock.Elapsed > timeout)
            {
                Assert.Fail($"waited {timeout.TotalSeconds} s for {what}; last stats: {last?.Json ?? "(none)"}\nproxy log:\n{ProxyLog()}");
            }

            Thread.Sleep(200);
        }
    }

    /// <summary>Waits until the SYN counters stop moving (the proxy has processed everything in flight).</summary>
    protected ProxyStats WaitForQuietStats(TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        (long, long)? previous = null;
        ProxyStats? stats = null;
        while (clock.Elapsed < timeout)
        {
            stats = ProxyStats.TryRead(Lab.StatsPath);
            if (stats is not null)
            {
                (long, long) key = (stats.SynReceived, stats.SynAckSent);
                if (previous == key)
                {
                    break;
                }

                previous = key;
            }

            // The file is rewritten every second (--stats-interval 1).
            Thread.Sleep(1300);
        }

        stats ??= ReadStats();
        Log("stats: " + stats.Json);
        return stats;
    }

    /// <summary>Apache logs a request after it has sent the response, so a client can be faster than the log.</summary>
    protected static void AssertLogEventuallyContains(string path, string expected)
    {
        var clock = Stopwatch.StartNew();
        string text = "";
        while (clock.Elapsed < TimeSpan.FromSeconds(5))
        {
            text = File.Exists(path) ? File.ReadAllText(path) : "";
            if (text.Contains(expected, StringComparison.Ordinal))
            {
                return;
            }

            Thread.Sleep(100);
        }

        Assert.Fail($"'{expected}' not in {path}:\n{text}");
    }

    /// <summary>VmRSS of a process in KiB, from /proc/PID/status.</summary>
    protected static long RssKiB(int pid)
    {
        foreach (string line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            }
        }

        throw new InvalidOperationException($"no VmRSS for pid {pid}");
    }

    /// <summary>
    /// A TCP connect() from the client namespace to 198.18.0.1:80 (optionally from one of the extra
    /// source addresses). Returns "connected", "timeout", "refused" or "error ...".
    /// </summary>
    protected string TryConnect(string? source = null, double timeoutSeconds = 3)
    {
        const string Script = """
            import socket, sys, time
            src, timeout = sys.argv[1], float(sys.argv[2])
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(timeout)
            if src:
                s.bind((src, 0))
            t0 = time.monotonic()
            try:
                s.connect(("198.18.0.1", 80))
                print("connected %.3f" % (time.monotonic() - t0))
            except socket.timeout:
                print("timeout %.3f" % (time.monotonic() - t0))
            except ConnectionRefusedError:
                print("refused %.3f" % (time.monotonic() - t0))
            except OSError as e:
                print("error %s" % e)
            finally:
                s.close()
            """;
        CommandResult r = InClient(TimeSpan.FromSeconds(timeoutSeconds + 10), "python3", "-c", Script, source ?? "",
            timeoutSeconds.ToString(CultureInfo.InvariantCulture));
        Assert.True(r.Succeeded, "connect helper failed:\n" + r);
        return r.StdOut.Trim().Split(' ')[0];
    }

    public virtual void Dispose()
    {
        if (LabFixture.SkipRequested)
        {
            return;
        }

        if (_proxyPid is not null)
        {
            string log = ProxyLog();
            Log("---- proxy log (tail) ----\n" + (log.Length > 3000 ? "..." + log[^3000..] : log));
        }

        Lab.RunLabRaw(["proxy-stop"], ShortTimeout);
        Lab.RunLabRaw(["impair-off"], ShortTimeout);
        GC.SuppressFinalize(this);
    }

    private void Reset()
    {
        Lab.RunLabRaw(["proxy-stop"], ShortTimeout);
        Lab.RunLabRaw(["impair-off"], ShortTimeout);
        CommandResult status = Lab.RunLabRaw(["status"], ShortTimeout);
        if (!status.Succeeded || !status.StdOut.Contains("hidden by table", StringComparison.Ordinal))
        {
            // A previous test broke the lab (killed Apache, or used `up --no-hide`): rebuild it.
            CommandResult up = LabSh("up");
            Assert.True(up.Succeeded, "could not restore the lab:\n" + up);
        }
    }
}
