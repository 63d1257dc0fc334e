using CookieProxy.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace CookieProxy.EndToEnd;

/// <summary>Issue 11.10: the sampled pcap of attack traffic reads with tcpdump and tshark, stays within its cap
/// while rotating, and names the drop reason of every packet.</summary>
[Trait("Tier", "ops")]
public sealed class SamplingTests : LabTestBase
{
    public SamplingTests(LabFixture lab, ITestOutputHelper output)
        : base(lab, output)
    {
    }

    [LabFact]
    public void The_sampled_pcap_reads_with_tcpdump_and_tshark_holds_at_most_the_cap_and_names_the_drop_reasons()
    {
        Assert.True(File.Exists("/usr/bin/tshark"), "tshark is missing (scripts/install-deps.sh installs it)");
        string dir = Path.Combine(Lab.LabDir, "samples");
        if (Directory.Exists(dir))
        {
            Directory.Delete(dir, recursive: true);
        }
        Directory.CreateDirectory(dir);
        string pcap = Path.Combine(dir, "drops.pcapng");
        const long Cap = 1 << 20;
        StartProxy("--sample-pcap", pcap, "--sample-every", "1", "--sample-max-mb", "1");

        // Forged ACKs (CookieInvalid) and SYNs whose SYN+ACKs the client's kernel resets (NoFlow): ~3 MiB of
        // samples at 1 in 1, three times the cap. Bounded in count and time.
        using (RunningCommand acks = StartInClient("timeout", "8", "hping3", "-q", "-A", "-p", "80", "-i", "u200", "-c", "20000",
            "-a", "198.18.1.10", LabFixture.ServerIp))
        using (RunningCommand syns = StartInClient("timeout", "8", "hping3", "-q", "-S", "-p", "80", "-i", "u200", "-c", "20000",
            "-a", "198.18.1.9", LabFixture.ServerIp))
        {
            acks.WaitForExit(TimeSpan.FromSeconds(20), Log);
            syns.WaitForExit(TimeSpan.FromSeconds(20), Log);
        }
        // A short SYN burst last, so the newest file (rotation keeps the newest) holds NoFlow samples too, however
        // the two floods above interleaved on a loaded machine.
        using (RunningCommand tail = StartInClient("timeout", "8", "hping3", "-q", "-S", "-p", "80", "-i", "u500", "-c", "400",
            "-a", "198.18.1.9", LabFixture.ServerIp))
        {
            tail.WaitForExit(TimeSpan.FromSeconds(20), Log);
        }
        ProxyStats quiet = WaitForQuietStats(TimeSpan.FromSeconds(10));
        GracefulStop.Run(ProxyPid, Log);    // the writer drains the rings and closes the file
        StopProxy();
        ProxyStats final = ReadStats();

        string[] files = Directory.GetFiles(dir).Order().ToArray();
        Log("sample files: " + string.Join(", ", files.Select(f => $"{Path.GetFileName(f)} {new FileInfo(f).Length}")));
        Assert.Contains(pcap + ".1", files);    // it rotated
        Assert.True(files.Sum(f => new FileInfo(f).Length) <= Cap, "over the cap");
        Assert.True(final["pcap_sampled"] > 0, final.Json);
        Assert.True(quiet.Drops["CookieInvalid"] > 1000, quiet.Json);

        var reasons = new HashSet<string>();
        long packets = 0;
        foreach (string file in files)
        {
            CommandResult dump = CommandRunner.Run("tcpdump", ["-nr", file], ShortTimeout);
            Assert.True(dump.Succeeded, $"tcpdump -r {file}:\n{dump.StdErr}");
            long lines = dump.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries).Length;
            Assert.True(lines > 0, $"{file} holds no packet");
            packets += lines;

            CommandResult shark = CommandRunner.Run("tshark", ["-r", file, "-T", "fields", "-e", "frame.comment"], ShortTimeout);
            Assert.True(shark.Succeeded, $"tshark -r {file}:\n{shark.StdErr}");
            string[] comments = shark.StdOut.Split('\n', StringSplitOptions.RemoveEmptyEntries);
            Assert.Equal(lines, comments.Length);    // every packet has its comment
            foreach (string c in comments)
            {
                Assert.StartsWith("drop=", c);
                reasons.Add(c.Split(' ')[0]["drop=".Length..]);
            }
        }
        Log($"{packets} packets in the files; reasons: {string.Join(", ", reasons)}");
        Assert.Contains("CookieInvalid", reasons);
        Assert.Contains("NoFlow", reasons);
    }
}
