using CookieProxy.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace CookieProxy.EndToEnd;

/// <summary>
/// The published binary with <c>--capture afxdp</c>: the XDP program in generic mode on cp-s0 hands the
/// protected port's frames to an AF_XDP socket; real curl downloads and uploads go through it, a bounded
/// hping3 flood is answered one SYN+ACK per SYN, and stopping the proxy detaches the program.
/// Run alone with <c>--filter Tier=afxdp</c>.
/// </summary>
[Trait("Tier", "afxdp")]
public sealed class AfXdpTests : LabTestBase
{
    private const string FloodSource = "198.18.1.9";
    private const int FloodSeconds = 6;
    private const int FloodMaxCount = 50000;
    private const int FloodMinCount = 1000;

    public AfXdpTests(LabFixture lab, ITestOutputHelper output)
        : base(lab, output)
    {
    }

    [LabFact]
    public void Curl_downloads_and_uploads_through_the_af_xdp_backend_and_stop_detaches_the_program()
    {
        StartProxy("--capture", "afxdp");
        Assert.Contains("af_xdp-copy-generic", ProxyLog());
        Assert.Contains("xdpgeneric", ServerLinkDetails());

        AssertDownloadIntact("index.html", tag: "afxdp");
        AssertDownloadIntact("1m.bin", tag: "afxdp");
        string source = Path.Combine(Lab.CacheDir, "10m.bin");
        CommandResult up = InClient(TimeSpan.FromSeconds(90), "curl", "-fsS", "--max-time", "60", "--data-binary", "@" + source,
            "-H", "Content-Type: application/octet-stream", $"http://{LabFixture.ServerIp}/cgi-bin/upload");
        Assert.True(up.Succeeded, up.ToString());
        Assert.Equal($"{Lab.ExpectedSha256("10m.bin")} 10485760", up.StdOut.Trim());
        WaitForStats(s => s.CookieValid >= 3, TimeSpan.FromSeconds(5), "cookie_valid >= 3");

        // The host's own traffic on the same interface still reaches its stack: Apache on 8080 directly.
        CommandResult direct = InClient(ShortTimeout, "curl", "-fsS", "--max-time", "10", "-o", "/dev/null", $"http://{LabFixture.ServerIp}:8080/index.html");
        Assert.True(direct.Succeeded, direct.ToString());

        StopProxy();
        Assert.DoesNotContain("xdp", ServerLinkDetails());
        Assert.Equal("timeout", TryConnect(timeoutSeconds: 2)); // the lab's hide rule is back in charge
    }

    [LabFact]
    public void Bounded_flood_is_answered_one_synack_per_syn_and_legit_clients_still_get_through()
    {
        StartProxy("--capture", "afxdp");
        Assert.Equal("connected", TryConnect()); // warm up (JIT, first flow)
        ProxyStats before = WaitForQuietStats(TimeSpan.FromSeconds(6));

        // Bounded in time and count, <= 10 kpps, from one of our own addresses (never --rand-source).
        using (RunningCommand flood = StartInClient("timeout", FloodSeconds.ToString(), "hping3", "-q", "-S", "-p", "80", "-i", "u100",
            "-c", FloodMaxCount.ToString(), "-a", FloodSource, LabFixture.ServerIp))
        {
            Thread.Sleep(1000);
            AssertDownloadIntact("1m.bin", "198.18.1.77", "afxdp");
            Assert.Equal("connected", TryConnect("198.18.1.78"));
            CommandResult done = flood.WaitForExit(TimeSpan.FromSeconds(FloodSeconds + 10), Log);
            Assert.False(done.TimedOut, done.ToString());
        }

        ProxyStats after = WaitForQuietStats(TimeSpan.FromSeconds(10));
        long syns = after.SynReceived - before.SynReceived;
        long synAcks = after.SynAckSent - before.SynAckSent;
        Log($"flood: {syns} SYNs received, {synAcks} SYN+ACKs sent");
        Assert.True(syns >= FloodMinCount, $"only {syns} SYNs reached the proxy");
        Assert.Equal(syns, synAcks);
    }
}
