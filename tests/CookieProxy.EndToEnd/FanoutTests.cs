using System.Globalization;
using System.Text.RegularExpressions;
using CookieProxy.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace CookieProxy.EndToEnd;

/// <summary>
/// Multi-core capture: several capture threads in one PACKET_FANOUT group. Steered by source prefix, every
/// thread's per-source limiter sees all of a source's connections, so the limits hold exactly; the counters
/// of all threads add up in the stats file. Run alone with <c>--filter Tier=fanout</c>.
/// </summary>
[Trait("Tier", "fanout")]
public sealed partial class FanoutTests : LabTestBase
{
    private static readonly string s_url = $"http://{LabFixture.ServerIp}/";

    public FanoutTests(LabFixture lab, ITestOutputHelper output)
        : base(lab, output)
    {
    }

    [LabFact]
    public void Two_threads_admit_exactly_max_conn_per_source_from_one_source()
    {
        StartProxy("--threads", "2", "--max-conn-per-source", "3");
        AssertLogEventuallyContains(Lab.ProxyLogPath, "2 threads, fanout by source prefix /32 /64");

        // 16 keep-alive connections held open at once from one source, then 3 from each of two others. With the
        // flow hash the 16 would spread over both threads and each thread's limiter would admit 3: up to 6.
        const string Script = """
            import socket
            def open_and_get(src):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.settimeout(3)
                s.bind((src, 0))
                try:
                    s.connect(("198.18.0.1", 80))
                    s.sendall(b"GET /index.html HTTP/1.1\r\nHost: lab\r\n\r\n")
                    data = s.recv(4096)
                    return s, ("ok" if data.startswith(b"HTTP/1.1 200") else "empty" if not data else "other")
                except (ConnectionResetError, ConnectionRefusedError, BrokenPipeError):
                    return s, "reset"
                except socket.timeout:
                    return s, "timeout"
            held = []
            for src, n in [("198.18.1.70", 16), ("198.18.1.71", 3), ("198.18.1.72", 3)]:
                results = []
                for _ in range(n):
                    s, r = open_and_get(src)
                    held.append(s)
                    results.append(r)
                print(src, " ".join(results))
            """;
        CommandResult r = InClient(TimeSpan.FromSeconds(90), "python3", "-c", Script);
        Assert.True(r.Succeeded, r.ToString());
        string[] lines = r.StdOut.Trim().Split('\n', StringSplitOptions.TrimEntries);
        Assert.Equal(3, lines.Length);
        Assert.Equal("198.18.1.70 " + string.Join(' ', Enumerable.Repeat("ok", 3).Concat(Enumerable.Repeat("reset", 13))), lines[0]);
        Assert.Equal("198.18.1.71 ok ok ok", lines[1]);
        Assert.Equal("198.18.1.72 ok ok ok", lines[2]);

        ProxyStats stats = WaitForStats(s => s.Drops.GetValueOrDefault("RateLimited") >= 13, TimeSpan.FromSeconds(5), "13 RateLimited drops");
        Assert.Equal(2, stats["threads"]);
        Assert.Equal(9, stats.FlowsCreated); // 3 + 3 + 3: every refused handshake was refused before a flow existed
    }

    [LabTheory]
    [InlineData("source", "source prefix /32 /64")]
    [InlineData("flow", "flow hash")]
    public void Two_threads_serve_real_downloads_and_their_counters_add_up_under_a_bounded_flood(string fanout, string logged)
    {
        // --xdp-syn off: the flood's SYNs must reach the capture threads, whose shares this test adds up (with the
        // default, the XDP program answers them before any thread sees them).
        StartProxy("--threads", "2", "--fanout", fanout, "--xdp-syn", "off");
        AssertLogEventuallyContains(Lab.ProxyLogPath, $"2 threads, fanout by {logged}");

        // Real transfers from eight sources (so both threads get some, whatever the steering).
        const int Downloads = 8;
        for (int i = 0; i < Downloads; i++)
        {
            AssertDownload("1m.bin", $"198.18.1.{120 + i}");
        }
        ProxyStats before = WaitForQuietStats(TimeSpan.FromSeconds(10));
        Assert.True(before.CookieValid >= Downloads && before.FlowsCreated >= Downloads, before.Json);

        // A flood bounded in count and time: 16 of our own sources x 250 SYNs at 500/s each, in parallel
        // (8 kpps for half a second; never --rand-source).
        const int Sources = 16;
        const int PerSource = 250;
        const string Flood = """
            for i in $(seq 200 215); do
                hping3 -q -S -p 80 -i u2000 -c 250 -a 198.18.1.$i 198.18.0.1 2>&1 &
            done
            wait
            """;
        CommandResult flood = InClient(TimeSpan.FromSeconds(60), "timeout", "30", "bash", "-c", Flood);
        Assert.False(flood.TimedOut, flood.ToString());
        long sent = TransmittedRegex().Matches(flood.StdOut).Sum(m => long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture));
        Log($"hping3 sent {sent} SYNs");
        Assert.Equal(Sources * PerSource, sent);

        ProxyStats after = WaitForQuietStats(TimeSpan.FromSeconds(15));
        Assert.Equal(0, after["capture_dropped"]);
        Assert.Equal(sent, after.SynReceived - before.SynReceived);
        Assert.Equal(sent, after.SynAckSent - before.SynAckSent);

        // The sums are the sums of the threads, and both threads took part in the flood.
        Assert.Equal(2, after["threads"]);
        Assert.Equal(2, after.PerThread.Count);
        foreach (string counter in new[] { "syn_received", "synack_sent", "cookie_valid", "flows_created", "frames_received" })
        {
            Assert.Equal(after[counter], after.PerThread.Sum(t => t[counter]));
        }
        for (int t = 0; t < 2; t++)
        {
            long floodShare = after.PerThread[t]["syn_received"] - before.PerThread[t]["syn_received"];
            Log($"thread {t}: {floodShare} flood SYNs, {after.PerThread[t]["flows_created"]} flows");
            Assert.True(floodShare > 0, $"thread {t} saw none of the flood: {after.Json}");
        }
    }

    [LabFact]
    public void Libpcap_capture_defaults_to_one_thread()
    {
        StartProxy("--capture", "pcap");
        AssertLogEventuallyContains(Lab.ProxyLogPath, "(libpcap, 1 thread (libpcap has no fanout: one core), tx offload off");
        Assert.Equal("connected", TryConnect());
        ProxyStats stats = WaitForStats(s => s.CookieValid >= 1, TimeSpan.FromSeconds(5), "cookie_valid >= 1");
        Assert.Equal(1, stats["threads"]);
    }

    [LabFact]
    public void The_default_is_one_capture_thread_per_core()
    {
        StartProxy();
        int expected = Math.Clamp(Environment.ProcessorCount, 1, 8);
        AssertLogEventuallyContains(Lab.ProxyLogPath, expected == 1 ? "(af_packet-v2, SYNs on their own ring, 1 thread, tx offload on" : $"(af_packet-v2, SYNs on their own ring, {expected} threads, fanout by flow hash, tx offload on");
        Assert.Equal("connected", TryConnect());
        Assert.Equal(expected, WaitForStats(s => s.CookieValid >= 1, TimeSpan.FromSeconds(5), "cookie_valid >= 1")["threads"]);
    }

    private void AssertDownload(string name, string source)
    {
        string file = Path.Combine(Lab.LabDir, "dl-fanout-" + name);
        File.Delete(file);
        CommandResult r = InClient(TimeSpan.FromSeconds(45), "curl", "-fsS", "--connect-timeout", "3", "--max-time", "30",
            "--interface", source, "-o", file, s_url + name);
        Assert.True(r.Succeeded, r.ToString());
        Assert.Equal(Lab.ExpectedSha256(name), Hashing.Sha256OfFile(file));
        File.Delete(file);
    }

    // hping3 spells it "tramitted".
    [GeneratedRegex(@"(\d+) packets tra\w*mitted")]
    private static partial Regex TransmittedRegex();
}
