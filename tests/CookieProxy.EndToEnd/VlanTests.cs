using System.Net;
using CookieProxy.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace CookieProxy.EndToEnd;

/// <summary>
/// Issue 13.3: 802.1Q VLANs end to end. The lab's cp-c0 is a trunk port for the client's VLAN 100 addresses
/// (198.18.2.2, 2001:db8:18:2::2; a tc BPF tagger writes the tag into each frame), so cp-s0 receives tagged frames:
/// the proxy on the parent interface answers on the same VLAN (the AF_PACKET ring hands the tag back from the
/// frame's metadata; the XDP program sees it in the frame). Where the kernel has 802.1Q devices, also the proxy on
/// the sub-interface cp-s0.100. Run alone with <c>--filter Tier=vlan</c>.
/// </summary>
[Trait("Tier", "vlan")]
public sealed class VlanTests : NetLabTestBase
{
    public VlanTests(LabFixture lab, ITestOutputHelper output)
        : base(lab, output)
    {
    }

    private void StartOnParent(string xdp) => StartReadyProxy([.. XdpArgs(xdp),
        "--interface", LabFixture.ServerDev,
        "--listen", NetLab.Endpoint(NetLab.ServerIpVlan, 80), "--backend", "127.0.0.1:8080",
        "--listen", NetLab.Endpoint(NetLab.ServerIp6Vlan, 80), "--backend", "127.0.0.1:8080"]);

    [LabTheory]
    [InlineData("off")]
    [InlineData("generic")]
    public void Curl_through_the_proxy_on_the_parent_of_a_tagged_link_works_over_IPv4_and_IPv6_and_every_reply_is_tagged(string xdp)
    {
        StartOnParent(xdp);
        AssertXdpMode(xdp);
        string pcap = Path.Combine(Lab.LabDir, $"vlan-{xdp}.pcap");
        using (RunningCommand dump = StartInClient("tcpdump", "--immediate-mode", "-i", LabFixture.ClientDev, "-n", "-s", "128", "-B", "16384",
            "-Z", "root", "-w", pcap, "(vlan and tcp port 80) or (tcp port 80)"))
        {
            Capture.WaitUntilListening(dump);
            AssertDownloadIntactFrom(NetLab.ServerIpVlan, "10m.bin", tag: "vlan4-" + xdp);
            AssertDownloadIntactFrom(NetLab.ServerIp6Vlan, "10m.bin", tag: "vlan6-" + xdp);
            AssertTenMiBUploadIntactTo(NetLab.ServerIpVlan);
            Thread.Sleep(300);
            Capture.Stop(dump, Log);
        }

        List<CapturedTcp> packets = PcapFile.ReadTcp(pcap);
        var server4 = IPAddress.Parse(NetLab.ServerIpVlan);
        var server6 = IPAddress.Parse(NetLab.ServerIp6Vlan);
        List<CapturedTcp> fromServer = packets.Where(p => p.Source.Equals(server4) || p.Source.Equals(server6)).ToList();
        Log($"captured {packets.Count} segments, {fromServer.Count} from the VLAN addresses");
        Assert.Contains(fromServer, p => p.IsSynAck && p.Source.Equals(server4));
        Assert.Contains(fromServer, p => p.IsSynAck && p.Source.Equals(server6));
        Assert.All(fromServer, p => Assert.Equal(NetLab.VlanId, p.VlanId));
        Assert.All(packets.Where(p => p.Destination.Equals(server4) || p.Destination.Equals(server6)), p => Assert.Equal(NetLab.VlanId, p.VlanId));

        ProxyStats s = WaitForStats(s => s.CookieValid >= 3, TimeSpan.FromSeconds(5), "three tagged flows validated");
        if (xdp == "generic")
        {
            // With the syncache (default) the calm program passes SYNs up to be remembered; either way it saw them.
            Assert.True(s["xdp_synack_sent"] + s["xdp_syn_passed"] >= 3, "the XDP program did not see the tagged SYNs: " + s.Json);
        }
    }

    [LabTheory]
    [InlineData("off")]
    [InlineData("generic")]
    public void A_bounded_flood_on_the_tagged_link_is_answered_and_curl_still_gets_through(string xdp)
    {
        StartOnParent(xdp);
        Assert.Equal("connected", TryConnectTo(NetLab.ServerIpVlan)); // warm up
        ProxyStats before = WaitForQuietStats(TimeSpan.FromSeconds(6));
        (long syns, long synAcks) = CountedSynFlood(NetLab.ClientIpVlan, NetLab.ServerIpVlan, () =>
        {
            AssertDownloadIntactFrom(NetLab.ServerIpVlan, "1m.bin", tag: "vlanflood");
            Assert.Equal("connected", TryConnectTo(NetLab.ServerIp6Vlan));
        });
        ProxyStats after = WaitForQuietStats(TimeSpan.FromSeconds(10));
        AssertFloodAnsweredOnce($"tagged flood ({xdp})", syns, synAcks, before, after);
    }

    [VlanDeviceFact]
    public void Curl_through_the_proxy_on_the_VLAN_sub_interface_works()
    {
        StartReadyProxy("--interface", NetLab.ServerVlanDev,
            "--listen", NetLab.Endpoint(NetLab.ServerIpVlan, 80), "--backend", "127.0.0.1:8080",
            "--listen", NetLab.Endpoint(NetLab.ServerIp6Vlan, 80), "--backend", "127.0.0.1:8080");
        AssertDownloadIntactFrom(NetLab.ServerIpVlan, "10m.bin", tag: "vlandev4");
        AssertDownloadIntactFrom(NetLab.ServerIp6Vlan, "10m.bin", tag: "vlandev6");
        AssertTenMiBUploadIntactTo(NetLab.ServerIpVlan);
        WaitForStats(s => s.CookieValid >= 3, TimeSpan.FromSeconds(5), "three flows on the sub-interface");
    }
}
