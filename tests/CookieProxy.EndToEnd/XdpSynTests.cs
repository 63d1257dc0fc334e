using CookieProxy.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace CookieProxy.EndToEnd;

/// <summary>
/// The published binary with <c>--xdp-syn generic</c>: the kernel answers the SYNs (XDP_TX) with the same cookies
/// the user-space validator then accepts, so real curl transfers work through it; a bounded hping3 flood is
/// answered one SYN+ACK per SYN without the SYNs reaching user space; stopping the proxy detaches the program.
/// Run alone with <c>--filter Tier=xdpsyn</c>.
/// </summary>
[Trait("Tier", "xdpsyn")]
public sealed class XdpSynTests : LabTestBase
{
    public XdpSynTests(LabFixture lab, ITestOutputHelper output)
        : base(lab, output)
    {
    }

    [LabFact]
    public void Curl_connects_through_kernel_answered_syns_and_stop_detaches_the_program()
    {
        StartProxy("--xdp-syn", "generic");
        Assert.Contains("SYNs answered in XDP (generic mode", ProxyLog());
        Assert.Contains("xdpgeneric", ServerLinkDetails());

        AssertDownloadIntact("index.html", tag: "xdpsyn");
        AssertDownloadIntact("1m.bin", tag: "xdpsyn");
        AssertTenMiBUploadIntact();

        // The kernel sent the SYN+ACKs, user space validated the ACKs: the cookies are the same.
        ProxyStats s = WaitForStats(s => s.CookieValid >= 3 && s["xdp_synack_sent"] >= 3, TimeSpan.FromSeconds(5), "cookie_valid >= 3 from XDP SYN+ACKs");
        Assert.Equal(0, s["xdp_internal_errors"]);

        StopProxy();
        // A clean exit: the final counters (which read the program's map) were written before it was detached.
        Assert.DoesNotContain("Unhandled exception", ProxyLog());
        Assert.Matches(@"cookieproxy final: .* xdp_synack=\d+", ProxyLog());
        Assert.DoesNotContain("xdp", ServerLinkDetails());
        Assert.Equal("timeout", TryConnect(timeoutSeconds: 2)); // the lab's hide rule is back in charge
    }

    [LabFact]
    public void Bounded_flood_is_answered_in_the_kernel_one_synack_per_syn_and_legit_clients_still_get_through()
    {
        StartProxy("--xdp-syn", "generic");
        Assert.Equal("connected", TryConnect()); // warm up (JIT, first flow)
        (ProxyStats before, ProxyStats after) = RunBoundedSynFlood(() =>
        {
            AssertDownloadIntact("1m.bin", "198.18.1.77", "xdpsyn");
            Assert.Equal("connected", TryConnect("198.18.1.78"));
        });
        long syns = after.SynReceived - before.SynReceived;
        long synAcks = after.SynAckSent - before.SynAckSent;
        long inKernel = after["xdp_synack_sent"] - before["xdp_synack_sent"];
        long userSyns = syns - inKernel;
        Log($"flood: {syns} SYNs, {synAcks} SYN+ACKs, {inKernel} of them from XDP, {userSyns} SYNs answered in user space");
        Assert.True(syns >= BoundedFloodMinSyns, $"only {syns} SYNs reached the proxy");
        Assert.Equal(syns, synAcks);
        // hping3's bare SYNs are the shape the program answers: all of them in the kernel. (The flood source is a
        // real address of the client namespace, whose stack answers each SYN+ACK with a RST; those do reach
        // user space, as NoFlow drops.)
        Assert.True(userSyns <= 10, $"{userSyns} of {syns} SYNs reached user space");
        Assert.Equal(0, after["xdp_internal_errors"]);
    }
}
