using System.Globalization;
using CookieProxy.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace CookieProxy.EndToEnd;

/// <summary>
/// Issue 13.4: the hybrid syncache. A server-speaks-first backend (the lab's banner server, like SMTP's 220) behind
/// the proxy; the client's first pure ACK, the last packet of its handshake, is dropped by nftables in cp-cli. With
/// pure cookies nothing retransmits, the client thinks it is connected and waits for a banner that never comes;
/// with the syncache the SYN+ACK goes out again after 1 s, the client's stack answers it with an ACK, and the
/// banner follows. Run alone with <c>--filter Tier=syncache</c>.
/// </summary>
[Trait("Tier", "syncache")]
public sealed class SynCacheTests : NetLabTestBase
{
    private const string DropTable = "cp_drop_first_ack";

    public SynCacheTests(LabFixture lab, ITestOutputHelper output)
        : base(lab, output)
    {
        if (!LabFixture.SkipRequested)
        {
            CommandResult banner = LabSh("banner-start");
            Assert.True(banner.Succeeded, "banner server:\n" + banner);
        }
    }

    public override void Dispose()
    {
        if (!LabFixture.SkipRequested)
        {
            Lab.RunLabRaw(["exec-cli", "nft", "delete", "table", "inet", DropTable], ShortTimeout);
            Lab.RunLabRaw(["banner-stop"], ShortTimeout);
        }
        base.Dispose();
    }

    /// <summary>Drops exactly one pure ACK (no SYN, FIN, RST, PSH) to <paramref name="server"/>:80: the first one.</summary>
    private void DropFirstPureAck(string server)
    {
        string ip = server.Contains(':', StringComparison.Ordinal) ? "ip6" : "ip";
        InClient(ShortTimeout, "nft", "delete", "table", "inet", DropTable);
        // `limit rate over` is false for the first packet (the burst of one is still there): that one falls through to
        // the drop; every later one is over the limit and accepted.
        ClientNft($$"""
            table inet {{DropTable}} {
                counter dropped { }
                chain output {
                    type filter hook output priority 0; policy accept;
                    {{ip}} daddr {{server}} tcp dport 80 tcp flags & (fin|syn|rst|psh|ack) == ack limit rate over 1/hour burst 1 packets accept
                    {{ip}} daddr {{server}} tcp dport 80 tcp flags & (fin|syn|rst|psh|ack) == ack counter name dropped drop
                }
            }
            """);
    }

    /// <summary>Connects and waits up to <paramref name="seconds"/> for the banner: "banner CONNECT_S TOTAL_S" or "timeout ...".</summary>
    private string AwaitBanner(string server, double seconds)
    {
        const string Script = """
            import socket, sys, time
            dst, timeout = sys.argv[1], float(sys.argv[2])
            s = socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(timeout)
            t0 = time.monotonic()
            s.connect((dst, 80))
            t1 = time.monotonic()
            try:
                data = s.recv(200)
                print("banner %.3f %.3f %s" % (t1 - t0, time.monotonic() - t0, data.decode(errors="replace").strip()))
            except socket.timeout:
                print("timeout %.3f %.3f" % (t1 - t0, time.monotonic() - t0))
            finally:
                s.close()
            """;
        CommandResult r = InClient(TimeSpan.FromSeconds(seconds + 15), "python3", "-c", Script, server, seconds.ToString(CultureInfo.InvariantCulture));
        Assert.True(r.Succeeded, "banner client failed:\n" + r);
        Log("client: " + r.StdOut.Trim());
        return r.StdOut.Trim();
    }

    private void StartBannerProxy(string server, params string[] extra) =>
        StartReadyProxy(["--listen", NetLab.Endpoint(server, 80), "--backend", NetLab.Endpoint("127.0.0.1", NetLab.BannerPort), .. extra]);

    [LabTheory]
    [InlineData(LabFixture.ServerIp)]
    [InlineData(NetLab.ServerIp6)]
    public void The_banner_arrives_within_5_s_although_the_clients_first_pure_ack_was_dropped(string server)
    {
        StartBannerProxy(server);
        DropFirstPureAck(server);
        string result = AwaitBanner(server, 5);
        Assert.StartsWith("banner ", result);
        Assert.Contains(NetLab.BannerPrefix, result);
        double total = double.Parse(result.Split(' ')[2], CultureInfo.InvariantCulture);
        // It took the 1 s retransmission (the ACK really was lost), and no more.
        Assert.InRange(total, 0.9, 5.0);
        Assert.Equal(1, ClientNftCounter("inet", DropTable, "dropped"));

        ProxyStats s = WaitForStats(s => s.CookieValid >= 1, TimeSpan.FromSeconds(5), "the flow validated");
        Assert.True(s["syncache_retransmits"] >= 1, "no SYN+ACK retransmission counted: " + s.Json);
        Assert.True(s["syncache_acked"] >= 1, "the entry was not ended by its ACK: " + s.Json);
        Assert.Equal(0, s["syncache_flood_mode"]);
    }

    [LabFact]
    public void With_the_syncache_off_the_same_client_waits_for_a_banner_that_never_comes()
    {
        StartBannerProxy(LabFixture.ServerIp, "--syncache", "0");
        DropFirstPureAck(LabFixture.ServerIp);
        string result = AwaitBanner(LabFixture.ServerIp, 5);
        Assert.StartsWith("timeout ", result);
        Assert.Equal(1, ClientNftCounter("inet", DropTable, "dropped"));
        ProxyStats s = ReadStats();
        Assert.Equal(0, s["syncache_added"]);
        Assert.Equal(0, s.CookieValid);
    }

    [LabFact]
    public void Without_a_lost_ack_the_banner_comes_at_once_and_nothing_is_retransmitted()
    {
        StartBannerProxy(LabFixture.ServerIp);
        for (int i = 0; i < 3; i++)
        {
            string result = AwaitBanner(LabFixture.ServerIp, 5);
            Assert.StartsWith("banner ", result);
            Assert.True(double.Parse(result.Split(' ')[2], CultureInfo.InvariantCulture) < 0.9, result);
        }
        Thread.Sleep(3500); // past both retransmission times
        ProxyStats s = WaitForStats(s => s.CookieValid >= 3, TimeSpan.FromSeconds(5), "three flows");
        Assert.Equal(3, s["syncache_added"]);
        Assert.Equal(3, s["syncache_acked"]);
        Assert.Equal(0, s["syncache_retransmits"]);
        Assert.Equal(0, s["syncache_entries"]);
    }

    [LabTheory]
    [InlineData("auto")] // the default: the XDP program in front, passing SYNs up until a thread sees the flood
    [InlineData("off")]
    public void A_bounded_flood_switches_to_pure_cookies_and_back_and_every_SYN_is_answered_once(string xdp)
    {
        StartReadyProxy("--xdp-syn", xdp); // HTTP on 198.18.0.1:80, the default syncache
        Assert.Equal("connected", TryConnect());
        int threads = (int)ReadStats()["threads"];
        ProxyStats before = WaitForQuietStats(TimeSpan.FromSeconds(6));
        ProxyStats during = null!;
        (long syns, long synAcks) = CountedSynFlood("198.18.1.9", LabFixture.ServerIp, () =>
        {
            // A second into a 10 kpps flood every thread is far above its 1024 SYN/s.
            during = WaitForStats(s => s["syncache_flood_mode"] >= 1 || s["syncache_xdp_flood"] >= 1, TimeSpan.FromSeconds(3), "pure-cookie mode");
            AssertDownloadIntact("1m.bin", "198.18.1.77", "syncache-flood");
        });
        ProxyStats after = WaitForQuietStats(TimeSpan.FromSeconds(10));
        AssertFloodAnsweredOnce($"syncache flood (--xdp-syn {xdp})", syns, synAcks, before, after);
        Assert.True(during["syncache_mode_changes"] >= 1, during.Json);
        // The table stayed bounded: each thread switches inside the window whose count passes 1024, so it
        // remembers at most the tail of the window the flood began in plus 1024 of the next (fixed windows).
        Assert.True(during["syncache_added"] <= threads * 2 * 1100L, during.Json);
        long inKernel = after["xdp_synack_sent"] - before["xdp_synack_sent"];
        Log($"answered in XDP: {inKernel} of {syns}; passed up: {after["xdp_syn_passed"] - before["xdp_syn_passed"]}");
        if (xdp == "off")
        {
            Assert.Equal(0, inKernel);
        }
        else
        {
            // The first second's SYNs went up (remembered, then pure cookies in the threads); the rest the program answered.
            Assert.True(inKernel >= syns / 2, $"only {inKernel} of {syns} SYNs were answered in XDP: " + after.Json);
        }

        // Three quiet windows later every thread remembers SYNs again, and the program passes them up again.
        ProxyStats calm = WaitForStats(s => s["syncache_flood_mode"] == 0 && s["syncache_xdp_flood"] == 0, TimeSpan.FromSeconds(8),
            "all threads back to remembering SYNs");
        Assert.True(calm["syncache_mode_changes"] >= 2, calm.Json);
        Assert.Equal(0, calm["syncache_retransmits"]); // every remembered SYN+ACK was reset by the flood source's stack
        if (xdp != "off")
        {
            Assert.Equal("connected", TryConnect("198.18.1.79"));
            ProxyStats last = WaitForStats(s => s["xdp_syn_passed"] > after["xdp_syn_passed"], TimeSpan.FromSeconds(3), "a SYN passed up again");
            Assert.Equal(after["xdp_synack_sent"], last["xdp_synack_sent"]);
        }
    }
}
