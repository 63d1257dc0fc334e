using System.Text.RegularExpressions;
using CookieProxy.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace CookieProxy.EndToEnd;

/// <summary>
/// Issue 13.2: IPv6 end to end, with the SYNs answered in user space (<c>off</c>) and by the XDP program
/// (<c>generic</c>). The lab's cp-s0 carries 2001:db8:18::1/64 besides its IPv4 address; port 80 of it is hidden
/// from cp-srv's kernel like the IPv4 one. Run alone with <c>--filter Tier=ipv6</c>.
/// </summary>
[Trait("Tier", "ipv6")]
public sealed class Ipv6Tests : NetLabTestBase
{
    private static readonly string Listen6 = NetLab.Endpoint(NetLab.ServerIp6, 80);

    public Ipv6Tests(LabFixture lab, ITestOutputHelper output)
        : base(lab, output)
    {
    }

    private void StartV6Proxy(string xdp, params string[] extra) =>
        StartReadyProxy([.. XdpArgs(xdp), "--listen", Listen6, "--backend", "127.0.0.1:8080", .. extra]);

    [LabFact]
    public void Without_cookieproxy_the_hidden_IPv6_port_does_not_answer()
    {
        Assert.Equal("timeout", TryConnectTo(NetLab.ServerIp6, timeoutSeconds: 2));
        // The rest of the v6 lab is there: Apache answers on its own port of the same address.
        Assert.Equal("connected", TryConnectTo(NetLab.ServerIp6, 8080));
    }

    [LabTheory]
    [InlineData("off")]
    [InlineData("generic")]
    public void Curl_gets_100_MiB_sha256_identical_over_IPv6_and_a_10_MiB_upload_arrives_intact(string xdp)
    {
        StartV6Proxy(xdp);
        AssertXdpMode(xdp);
        AssertDownloadIntactFrom(NetLab.ServerIp6, "100m.bin", tag: "v6-" + xdp, maxSeconds: 120);
        AssertDownloadIntactFrom(NetLab.ServerIp6, "1m.bin", source: NetLab.ExtraIp6(3), tag: "v6-" + xdp);
        AssertTenMiBUploadIntactTo(NetLab.ServerIp6);
        AssertTenMiBUploadIntactTo(NetLab.ServerIp6, source: NetLab.ExtraIp6(4));

        ProxyStats s = WaitForStats(s => s.CookieValid >= 4, TimeSpan.FromSeconds(5), "four IPv6 flows validated");
        if (xdp == "generic")
        {
            // With the syncache (default) the calm program passes SYNs up to be remembered; either way it saw them.
            Assert.True(s["xdp_synack_sent"] + s["xdp_syn_passed"] >= 4, "the XDP program did not see the IPv6 SYNs: " + s.Json);
        }
        Assert.Equal(0, s.CookieInvalid);
    }

    [LabTheory]
    [InlineData("off")]
    [InlineData("generic")]
    public void A_bounded_IPv6_SYN_flood_gets_at_least_99_percent_answered_and_legit_clients_still_get_through(string xdp)
    {
        StartV6Proxy(xdp);
        Assert.Equal("connected", TryConnectTo(NetLab.ServerIp6)); // warm up (JIT, first flow)
        ProxyStats before = WaitForQuietStats(TimeSpan.FromSeconds(6));
        (long syns, long synAcks) = CountedSynFlood(NetLab.ExtraIp6(9), NetLab.ServerIp6, () =>
        {
            AssertDownloadIntactFrom(NetLab.ServerIp6, "1m.bin", source: NetLab.ExtraIp6(10), tag: "v6flood");
            Assert.Equal("connected", TryConnectTo(NetLab.ServerIp6, source: NetLab.ExtraIp6(11)));
        });
        ProxyStats after = WaitForQuietStats(TimeSpan.FromSeconds(10));
        AssertFloodAnsweredOnce($"IPv6 flood ({xdp})", syns, synAcks, before, after);
        Assert.Equal(0, after.CookieInvalid - before.CookieInvalid);
        if (xdp == "generic")
        {
            // The first second went up to the threads (the syncache's gate), the rest the program answered.
            Assert.True(after["xdp_synack_sent"] - before["xdp_synack_sent"] >= syns / 2, "the flood was not answered in XDP: " + after.Json);
        }
    }

    [LabTheory]
    [InlineData("off", "127.0.0.1:8081", "127.0.0.1")]
    [InlineData("off", "[::1]:8081", "::1")]
    [InlineData("generic", "[::1]:8081", "::1")]
    public void Proxy_protocol_v2_carries_the_IPv6_client_address_into_Apaches_log(string xdp, string backend, string peer)
    {
        StartReadyProxy([.. XdpArgs(xdp), "--listen", Listen6, "--backend", backend, "--proxy-protocol", "v2"]);
        string client = NetLab.ExtraIp6(21);
        AssertDownloadIntactFrom(NetLab.ServerIp6, "index.html", source: client, tag: "v6pp");
        // %a (the client from the PROXY header) then %{c}a (the TCP peer Apache saw: the proxy's backend socket).
        AssertLogEventuallyContains(Lab.RemoteIpLogPath, $"{client} {peer} ");
    }

    [LabTheory]
    [InlineData("off")]
    [InlineData("generic")]
    public void Hide_port_installs_the_ip6_rule_and_the_kernel_never_answers_the_IPv6_port(string xdp)
    {
        const string rstTable = "cp_v6_rst";
        try
        {
            CommandResult up = LabSh("up", "--no-hide");
            Assert.True(up.Succeeded, up.ToString());
            // Without hiding, cp-srv's kernel resets SYNs to its closed port 80.
            Assert.Equal("refused", TryConnectTo(NetLab.ServerIp6, timeoutSeconds: 2));

            StartV6Proxy(xdp, "--hide-port");
            CommandResult rules = InServer(ShortTimeout, "nft", "list", "ruleset");
            Assert.True(rules.Succeeded, rules.ToString());
            Assert.Matches(new Regex($@"ip6 daddr {Regex.Escape(NetLab.ServerIp6)} tcp dport 80 counter packets \d+ bytes \d+ drop"), rules.StdOut);

            // Every RST from the server's port 80 is counted: the kernel's would show here.
            ClientNft($$"""
                table netdev {{rstTable}} {
                    counter rsts { }
                    chain in {
                        type filter hook ingress device "{{LabFixture.ClientDev}}" priority 0; policy accept;
                        ip6 saddr {{NetLab.ServerIp6}} tcp sport 80 tcp flags & rst == rst counter name rsts
                    }
                }
                """);
            for (int i = 0; i < 5; i++)
            {
                Assert.Equal("connected", TryConnectTo(NetLab.ServerIp6, source: NetLab.ExtraIp6(12 + i)));
            }
            AssertDownloadIntactFrom(NetLab.ServerIp6, "1m.bin", tag: "v6hide");
            WaitForStats(s => s.CookieValid >= 6, TimeSpan.FromSeconds(5), "six IPv6 flows validated");
            Assert.Equal(0, ClientNftCounter("netdev", rstTable, "rsts"));

            // The kernel saw the SYNs and dropped them: the rule's counter moved.
            CommandResult after = InServer(ShortTimeout, "nft", "list", "ruleset");
            Match m = Regex.Match(after.StdOut, $@"ip6 daddr {Regex.Escape(NetLab.ServerIp6)} tcp dport 80 counter packets (\d+)");
            Assert.True(m.Success && long.Parse(m.Groups[1].Value, System.Globalization.CultureInfo.InvariantCulture) >= 6,
                "the ip6 rule dropped nothing:\n" + after.StdOut);

            // On exit the rule goes: the port answers (refuses) again.
            StopProxy();
            Assert.DoesNotContain($"ip6 daddr {NetLab.ServerIp6} tcp dport 80", InServer(ShortTimeout, "nft", "list", "ruleset").StdOut);
            Assert.Equal("refused", TryConnectTo(NetLab.ServerIp6, timeoutSeconds: 2));
        }
        finally
        {
            InClient(ShortTimeout, "nft", "delete", "table", "netdev", rstTable);
            StopProxy();
            LabSh("up");
        }
    }
}
