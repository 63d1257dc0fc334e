using System.Diagnostics;
using System.Globalization;
using System.Text.RegularExpressions;

namespace CookieProxy.EndToEnd.Infrastructure;

/// <summary>Helpers around a background tcpdump started with <see cref="CommandRunner.Start"/>.</summary>
public static partial class Capture
{
    /// <summary>tcpdump prints "listening on IF" once its filter is attached.</summary>
    public static void WaitUntilListening(RunningCommand dump)
    {
        var clock = Stopwatch.StartNew();
        while (!dump.StdErrSoFar.Contains("listening on", StringComparison.Ordinal))
        {
            if (dump.HasExited || clock.Elapsed > TimeSpan.FromSeconds(10))
            {
                Assert.Fail("tcpdump did not start: " + dump.StdErrSoFar);
            }

            Thread.Sleep(50);
        }

        // The socket is bound and filtered when the line is printed; give the ring a moment anyway.
        Thread.Sleep(200);
    }

    /// <summary>Stops tcpdump with SIGINT (it then flushes the file) and returns how many packets the kernel dropped.</summary>
    public static long Stop(RunningCommand dump, Action<string>? log)
    {
        dump.Signal("INT");
        CommandResult r = dump.WaitForExit(TimeSpan.FromSeconds(15), log);
        Match m = DroppedRegex().Match(r.StdErr);
        return m.Success ? long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture) : -1;
    }

    /// <summary>
    /// Copies a capture into $COOKIEPROXY_E2E_CORPUS (when set), so real packets from the lab can seed
    /// parser tests and fuzzing (STYLE.md lesson 14).
    /// </summary>
    public static void KeepForCorpus(string pcap, string name, Action<string>? log)
    {
        string? dir = Environment.GetEnvironmentVariable("COOKIEPROXY_E2E_CORPUS");
        if (string.IsNullOrEmpty(dir) || !File.Exists(pcap))
        {
            return;
        }

        Directory.CreateDirectory(dir);
        string target = Path.Combine(dir, $"{name}-{DateTime.UtcNow:yyyyMMddTHHmmss}.pcap");
        File.Copy(pcap, target, overwrite: true);
        log?.Invoke("kept capture " + target);
    }

    public static bool IsAlive(int pid)
    {
        string status = $"/proc/{pid}/status";
        return File.Exists(status) && !File.ReadAllText(status).Contains("State:\tZ", StringComparison.Ordinal);
    }

    [GeneratedRegex(@"(\d+) packets? dropped by kernel")]
    private static partial Regex DroppedRegex();
}
