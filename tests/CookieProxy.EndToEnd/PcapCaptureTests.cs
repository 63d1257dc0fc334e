using System.Globalization;
using System.Text.RegularExpressions;
using CookieProxy.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace CookieProxy.EndToEnd;

/// <summary>
/// The published binary with <c>--capture pcap</c>: the portable backend (libpcap through SharpPcap, the path
/// macOS and FreeBSD always take) carrying the real handshake, downloads and an upload, and a bounded hping3
/// flood (<= 20 kpps) answered at least 99%. Run alone with <c>--filter Tier=pcap</c>.
/// </summary>
[Trait("Tier", "pcap")]
public sealed partial class PcapCaptureTests : LabTestBase
{
    public PcapCaptureTests(LabFixture lab, ITestOutputHelper output)
        : base(lab, output)
    {
    }

    [LabFact]
    public void Curl_downloads_and_uploads_through_libpcap_and_the_start_line_says_it_has_one_core()
    {
        StartProxy("--capture", "pcap");
        AssertLogEventuallyContains(Lab.ProxyLogPath, "(libpcap, 1 thread (libpcap has no fanout: one core), tx offload off");

        Assert.Equal("connected", TryConnect());
        AssertDownloadIntact("index.html", tag: "pcap");
        AssertDownloadIntact("10m.bin", tag: "pcap");
        AssertDownloadIntact("100m.bin", "198.18.1.31", "pcap");
        AssertTenMiBUploadIntact();

        ProxyStats stats = WaitForStats(s => s.CookieValid >= 5, TimeSpan.FromSeconds(5), "cookie_valid >= 5");
        Assert.Equal(1, stats["threads"]);
        Assert.Equal(0, stats.Drops.GetValueOrDefault("TxFailed")); // a full send buffer waits, it does not drop
    }

    [LabFact]
    public void Bounded_hping3_flood_is_answered_at_least_99_percent_and_a_download_during_it_is_intact()
    {
        StartProxy("--capture", "pcap");
        Assert.Equal("connected", TryConnect()); // warm up (JIT, first flow)
        // And the SYN path: in the flood bench the first flood of a fresh process lost ~10% at 80 kpps where later,
        // faster ones lost nothing (docs/pcap.md). 5,000 SYNs at <= 5 kpps.
        _ = InClient(TimeSpan.FromSeconds(15), "timeout", "-s", "INT", "5", "hping3", "-q", "-S", "-p", "80", "-i", "u200", "-c", "5000",
            "-a", "198.18.1.9", LabFixture.ServerIp);
        ProxyStats before = WaitForQuietStats(TimeSpan.FromSeconds(6));

        // Paced at <= 20 kpps (-i u50), bounded in time (4 s, then SIGINT, which prints the summary) and count (80,000
        // SYNs), from one of our own client addresses (never --rand-source). Not --flood: in the flood bench (hping3
        // and the proxy pinned to a core each) this path answered 100% of 100-167 kpps floods (docs/pcap.md), but in
        // this lab nothing is pinned, and on the shared 2-core box hping3 --flood (35-45 kpps here) was 82-89% answered.
        CommandResult flood;
        using (RunningCommand running = StartInClient("timeout", "-s", "INT", "4", "hping3", "-q", "-S", "-p", "80", "-i", "u50",
            "-c", "80000", "-a", "198.18.1.9", LabFixture.ServerIp))
        {
            Thread.Sleep(1000);
            AssertDownloadIntact("1m.bin", "198.18.1.77", "pcap");
            Assert.Equal("connected", TryConnect("198.18.1.78"));
            flood = running.WaitForExit(TimeSpan.FromSeconds(25), Log);
            Assert.False(flood.TimedOut, flood.ToString());
        }
        string summary = flood.StdOut + flood.StdErr;
        Match transmitted = TransmittedRegex().Match(summary);
        Assert.True(transmitted.Success, "no hping3 summary:\n" + flood);
        long sent = long.Parse(transmitted.Groups[1].Value, CultureInfo.InvariantCulture);

        ProxyStats after = WaitForQuietStats(TimeSpan.FromSeconds(15));
        long received = after.SynReceived - before.SynReceived;
        long answered = after.SynAckSent - before.SynAckSent;
        long captureDropped = after["capture_dropped"] - before["capture_dropped"];
        Log($"flood: hping3 sent {sent} SYNs; the proxy received {received} SYNs (+2 legit), sent {answered} SYN+ACKs; libpcap dropped {captureDropped}");
        Assert.True(sent >= BoundedFloodMinSyns, $"hping3 sent only {sent} SYNs:\n{flood}");
        // Answered >= 99% of what was sent: whatever libpcap lost (capture_dropped) counts against it.
        Assert.True(answered >= sent * 99 / 100, $"{answered} SYN+ACKs for {sent} SYNs sent ({received} received, {captureDropped} dropped by libpcap)");
        // And never more than one per SYN: the flood's SYNs plus the two legit connections' SYNs (the syncache may
        // retransmit a legit SYN+ACK, which synack_sent does not count).
        Assert.True(answered <= received, $"{answered} SYN+ACKs for {received} SYNs received");
    }

    // hping3 spells it "tramitted".
    [GeneratedRegex(@"(\d+) packets tra\w*mitted")]
    private static partial Regex TransmittedRegex();
}
