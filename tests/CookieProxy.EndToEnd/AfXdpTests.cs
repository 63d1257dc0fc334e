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
    public AfXdpTests(LabFixture lab, ITestOutputHelper output)
        : base(lab, output)
    {
    }

    [LabFact]
    public void Curl_downloads_and_uploads_through_the_af_xdp_backend_and_stop_detaches_the_program()
    {
        StartProxy("--capture", "afxdp");
        AssertLogEventuallyContains(Lab.ProxyLogPath, "SYNs answered in user space (--xdp-syn auto: --capture afxdp holds the interface's XDP hook)");
        AssertLogEventuallyContains(Lab.ProxyLogPath, "af_xdp-copy-generic");
        Assert.Contains("xdpgeneric", ServerLinkDetails());

        AssertDownloadIntact("index.html", tag: "afxdp");
        AssertDownloadIntact("1m.bin", tag: "afxdp");
        AssertTenMiBUploadIntact();
        WaitForStats(s => s.CookieValid >= 3, TimeSpan.FromSeconds(5), "cookie_valid >= 3");

        // The host's own traffic on the same interface still reaches its stack: Apache on 8080 directly.
        CommandResult direct = InClient(ShortTimeout, "curl", "-fsS", "--max-time", "10", "-o", "/dev/null", $"http://{LabFixture.ServerIp}:8080/index.html");
        Assert.True(direct.Succeeded, direct.ToString());

        StopProxy();
        Assert.DoesNotContain("xdpgeneric", ServerLinkDetails());   // not "xdp": CP_LAB_ID may be part of the netns name
        Assert.Equal("timeout", TryConnect(timeoutSeconds: 2)); // the lab's hide rule is back in charge
    }

    [LabFact]
    public void Bounded_flood_is_answered_one_synack_per_syn_and_legit_clients_still_get_through()
    {
        StartProxy("--capture", "afxdp");
        Assert.Equal("connected", TryConnect()); // warm up (JIT, first flow)
        (ProxyStats before, ProxyStats after) = RunBoundedSynFlood(() =>
        {
            AssertDownloadIntact("1m.bin", "198.18.1.77", "afxdp");
            Assert.Equal("connected", TryConnect("198.18.1.78"));
        });
        long syns = after.SynReceived - before.SynReceived;
        long synAcks = after.SynAckSent - before.SynAckSent;
        Log($"flood: {syns} SYNs received, {synAcks} SYN+ACKs sent");
        Assert.True(syns >= BoundedFloodMinSyns, $"only {syns} SYNs reached the proxy");
        Assert.Equal(syns, synAcks);
    }
}
