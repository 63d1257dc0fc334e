using System.Runtime.Versioning;
using CookieProxy.Host.Capture;
using CookieProxy.Limits;
using CookieProxy.Platform;
using CookieProxy.Responder;
using Xunit.Abstractions;

namespace CookieProxy.Tests.Platform;

/// <summary>
/// What <c>--xdp-syn auto</c> reads from a device, and how the SYN program's attachment behaves on a real veth
/// pair (the AF_XDP lab's xd-a/xd-b): the driver and xdp-features, the peer's native XDP across namespaces,
/// removal of a stale netlink attachment of ours, refusal to take a hook a live link holds. Needs root.
/// </summary>
[Collection(XdpLabCollection.Name)]
[SupportedOSPlatform("linux")]
public sealed unsafe class XdpDeviceLabTests
{
    private readonly XdpVethLab _lab;
    private readonly ITestOutputHelper _output;

    public XdpDeviceLabTests(XdpVethLab lab, ITestOutputHelper output)
    {
        _lab = lab;
        _output = output;
    }

    private static XdpDeviceInfo InfoOfA() => Netns.Run(XdpVethLab.NsA, () => XdpDeviceInfo.Of(XdpVethLab.IfA));

    private static void OnPeer(string xdp) => VethLab.Shell($"ip -n {XdpVethLab.NsB} link set dev {XdpVethLab.IfB} {xdp}");

    [RootFact]
    public void A_veths_auto_choice_is_native_exactly_while_its_peer_runs_native_xdp()
    {
        RootOnly.CanRun(_output);
        _lab.EnsureUp();
        string pass = Path.Combine(Path.GetTempPath(), $"cp-xdp-pass-{Environment.ProcessId}.o");
        File.WriteAllBytes(pass, BpfTestPrograms.Compile("""
            #include <linux/bpf.h>
            #include <bpf/bpf_helpers.h>
            SEC("xdp")
            int xdp_pass(struct xdp_md *ctx) { return XDP_PASS; }
            char _license[] SEC("license") = "GPL";
            """));
        try
        {
            XdpDeviceInfo plain = InfoOfA();
            _output.WriteLine($"{plain} -> {plain.ChooseAuto()}");
            Assert.Equal("veth", plain.Driver);
            Assert.True(plain.XdpFeatures is null || (plain.XdpFeatures & 1) != 0, "a veth has native XDP (NETDEV_XDP_ACT_BASIC)");
            Assert.False(plain.PeerHasNativeXdp);
            Assert.Equal(XdpAttachMode.Generic, plain.ChooseAuto().Mode);

            // GRO on the peer is not enough (its XDP_TX frames arrive seconds late): still generic.
            VethLab.Shell($"ip netns exec {XdpVethLab.NsB} ethtool -K {XdpVethLab.IfB} gro on");
            Assert.Equal(XdpAttachMode.Generic, InfoOfA().ChooseAuto().Mode);
            VethLab.Shell($"ip netns exec {XdpVethLab.NsB} ethtool -K {XdpVethLab.IfB} gro off");

            OnPeer($"xdpdrv obj {pass} sec xdp");
            XdpDeviceInfo withPeer = InfoOfA();
            _output.WriteLine($"{withPeer} -> {withPeer.ChooseAuto()}");
            Assert.True(withPeer.PeerHasNativeXdp);
            Assert.Equal(XdpAttachMode.Native, withPeer.ChooseAuto().Mode);
            OnPeer("xdpdrv off");

            // A generic program on the peer gives it no NAPI: generic.
            OnPeer($"xdpgeneric obj {pass} sec xdp");
            Assert.False(InfoOfA().PeerHasNativeXdp);
            OnPeer("xdpgeneric off");
        }
        finally
        {
            VethLab.Shell($"ip -n {XdpVethLab.NsB} link set dev {XdpVethLab.IfB} xdp off 2>/dev/null; true");
            File.Delete(pass);
        }
    }

    [RootFact]
    public void Loopback_has_no_native_xdp_so_auto_picks_generic()
    {
        RootOnly.CanRun(_output);
        XdpDeviceInfo lo = XdpDeviceInfo.Of("lo");
        _output.WriteLine($"{lo} -> {lo.ChooseAuto()}");
        Assert.False(lo.IsVeth);
        Assert.Equal(XdpAttachMode.Generic, lo.ChooseAuto().Mode);
    }

    private static XdpSynResponder LoadSyn() => XdpSynResponder.Load(XdpVethLab.IfA,
        XdpSynPath.Settings([new System.Net.IPEndPoint(XdpVethLab.AddrA, 80)], new ResponderConfig(), new SourceLimitConfig(), 64),
        new XdpSynKey(1, 2), 7);

    [RootFact]
    public void A_stale_netlink_attachment_of_ours_is_removed_and_a_live_link_is_left_alone()
    {
        RootOnly.CanRun(_output);
        _lab.EnsureUp();
        Netns.Run(XdpVethLab.NsA, () =>
        {
            int ifindex = (int)Interop.PacketSocket.if_nametoindex(XdpVethLab.IfA);
            using XdpSynResponder stale = LoadSyn();
            // The old way: a netlink attachment, which nobody's process holds (it outlives its loader).
            Assert.Equal(0, Interop.Libbpf.bpf_xdp_attach(ifindex, stale.ProgramFd, Interop.Bpf.XDP_FLAGS_SKB_MODE, null));
            XdpHookState before = XdpAttachment.Query(ifindex);
            Assert.Equal(("cp_xdp_syn", XdpAttachMode.Generic), (before.Name, before.Mode));

            using XdpSynResponder ours = LoadSyn();
            string? removed = ours.Attach(XdpAttachMode.Generic);
            _output.WriteLine($"removed: {removed}");
            Assert.Equal($"cp_xdp_syn (id {before.ProgramId}, generic)", removed);
            XdpHookState now = XdpAttachment.Query(ifindex);
            Assert.NotEqual(before.ProgramId, now.ProgramId);

            // A program held by a live link (another running cookieproxy) is never detached: a clear error.
            using XdpSynResponder second = LoadSyn();
            PacketDeviceException error = Assert.Throws<PacketDeviceException>(() => second.Attach(XdpAttachMode.Generic));
            _output.WriteLine(error.Message);
            Assert.Contains($"already has XDP program cp_xdp_syn (id {now.ProgramId}, probably another cookieproxy)", error.Message);
            Assert.Equal(now.ProgramId, XdpAttachment.Query(ifindex).ProgramId);

            ours.Dispose();
            Assert.True(XdpAttachment.Query(ifindex).IsEmpty);
            return 0;
        });
    }

    [RootFact]
    public void Detached_the_program_can_be_attached_again_in_the_other_mode_keeping_its_maps()
    {
        RootOnly.CanRun(_output);
        _lab.EnsureUp();
        Netns.Run(XdpVethLab.NsA, () =>
        {
            int ifindex = (int)Interop.PacketSocket.if_nametoindex(XdpVethLab.IfA);
            using XdpSynResponder xdp = LoadSyn();
            xdp.Attach(XdpAttachMode.Native);
            Assert.Equal(XdpAttachMode.Native, XdpAttachment.Query(ifindex).Mode);
            xdp.Detach();
            Assert.True(XdpAttachment.Query(ifindex).IsEmpty);
            xdp.Attach(XdpAttachMode.Generic);
            Assert.Equal(XdpAttachMode.Generic, XdpAttachment.Query(ifindex).Mode);
            Assert.Equal(XdpAttachMode.Generic, xdp.Mode);
            return 0;
        });
    }
}
