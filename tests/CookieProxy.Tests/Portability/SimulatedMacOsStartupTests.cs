using System.Net;
using CookieProxy.Host;
using CookieProxy.Host.Capture;
using CookieProxy.Host.Cli;
using CookieProxy.Host.Os;
using CookieProxy.Io;
using CookieProxy.Platform;
using CookieProxy.ProxyProtocol;
using CookieProxy.Tests.Os;
using CookieProxy.Tests.Platform;
using Xunit.Abstractions;

namespace CookieProxy.Tests.Portability;

/// <summary>
/// Start-up as macOS and FreeBSD run it, on this Linux machine: the host's own selection code (capture backend,
/// port hider, backend readiness, thread count) is handed <see cref="HostOs.SimulatedMacOS"/> and must take only
/// the portable paths: the libpcap device, the pf anchor, poll(2). The real Linux choice is asserted beside it, so
/// a test that cannot tell the two apart fails.
/// </summary>
public sealed class SimulatedMacOsStartupTests
{
    private static readonly string s_filter = BpfFilter.ForProtectedEndpoints(IPEndPoint.Parse("198.18.0.1:80"));
    private readonly ITestOutputHelper _output;

    public SimulatedMacOsStartupTests(ITestOutputHelper output) => _output = output;

    public static TheoryData<string> PortableSystems() => ["macOS", "FreeBSD"];

    private static HostOs Simulated(string name) => name == "macOS" ? HostOs.SimulatedMacOS : HostOs.SimulatedFreeBsd;

    [Theory]
    [MemberData(nameof(PortableSystems))]
    public void ASimulatedOsNeverClaimsLinux(string system)
    {
        HostOs os = Simulated(system);

        Assert.False(os.IsLinux);
        Assert.True(os.UsesPf);
        Assert.Equal(system == "macOS", os.IsMacOS);
        Assert.Equal(system == "FreeBSD", os.IsFreeBsd);
        Assert.True(HostOs.Current.IsLinux, "these tests run on Linux, where the real choice differs");
    }

    [Theory]
    [MemberData(nameof(PortableSystems))]
    public void AutoCaptureGoesStraightToLibpcapWithoutTryingAfPacket(string system)
    {
        // No such interface: what the error says shows which backends were tried (no root needed).
        var portable = Assert.Throws<PacketDeviceException>(
            () => PacketDeviceFactory.Open("cp-nomac0", s_filter, CaptureKind.Auto, os: Simulated(system)));
        var linux = Assert.Throws<PacketDeviceException>(
            () => PacketDeviceFactory.Open("cp-nomac0", s_filter, CaptureKind.Auto, os: HostOs.Current));
        _output.WriteLine($"{system}: {portable.Message}\nLinux: {linux.Message}");

        Assert.Equal("libpcap: no such interface 'cp-nomac0'", portable.Message);
        Assert.Contains("af_packet also failed", linux.Message);
    }

    [Theory]
    [InlineData(CaptureKind.AfPacket, "AF_PACKET capture is only available on Linux")]
    [InlineData(CaptureKind.AfXdp, "AF_XDP capture is only available on Linux")]
    public void LinuxOnlyCaptureIsRefusedBeforeAnyLinuxCall(CaptureKind kind, string expected)
    {
        var error = Assert.Throws<PacketDeviceException>(() => PacketDeviceFactory.Open("en0", s_filter, kind,
            protectedEndpoints: [IPEndPoint.Parse("198.18.0.1:80")], os: HostOs.SimulatedMacOS));

        Assert.StartsWith(expected, error.Message);
    }

    [Fact]
    public void SeveralThreadsOnMacOsAreRefusedWithAHintThatFitsMacOs()
    {
        var error = Assert.Throws<PacketDeviceException>(
            () => PacketDeviceFactory.Open("en0", s_filter, CaptureKind.Auto, fanoutGroup: 7, os: HostOs.SimulatedMacOS));

        Assert.Contains("no fanout", error.Message);
        Assert.Contains("--threads 1", error.Message);
        Assert.DoesNotContain("afpacket", error.Message);
    }

    [Fact]
    public void TheDefaultThreadCountOnMacOsIsOne()
    {
        Assert.Equal(1, CaptureService.DefaultThreads(CaptureKind.Auto, HostOs.SimulatedMacOS));
        Assert.Equal(Math.Clamp(Environment.ProcessorCount, 1, CaptureService.MaxDefaultThreads),
            CaptureService.DefaultThreads(CaptureKind.Auto, HostOs.Current));
    }

    [Fact]
    public void HidePortOnMacOsLoadsThePfAnchorAndRunsNoNft()
    {
        var pfctl = new PfRulesTests.FakePfctl("Status: Enabled for 0 days 00:00:05\n", "anchor \"cookieproxy\" all\n");
        ListenerOptions[] listeners = [new(IPEndPoint.Parse("198.18.0.1:80"), IPEndPoint.Parse("127.0.0.1:8080"), ProxyProtocolVersion.None)];

        using (PortHider hider = PortHider.Install("en0", listeners, HostOs.SimulatedMacOS, pfctl.Run))
        {
            Assert.Equal("pf anchor cookieproxy", hider.Method);
            Assert.Equal("block drop in quick on en0 inet proto tcp from any to 198.18.0.1 port 80\n", pfctl.LastStdin);
        }

        Assert.Equal(["-s info", "-s rules", "-a cookieproxy -f -", "-a cookieproxy -F rules"], pfctl.Calls);
    }

    [Fact]
    public void AReloadOnMacOsSwapsTheAnchorRulesWhole()
    {
        var pfctl = new PfRulesTests.FakePfctl("Status: Enabled for 0 days 00:00:05\n", "anchor \"cookieproxy\" all\n");
        ListenerOptions[] before = [new(IPEndPoint.Parse("198.18.0.1:80"), IPEndPoint.Parse("127.0.0.1:8080"), ProxyProtocolVersion.None)];
        ListenerOptions[] after = [new(IPEndPoint.Parse("198.18.0.1:443"), IPEndPoint.Parse("127.0.0.1:8443"), ProxyProtocolVersion.None)];
        using PortHider hider = PortHider.Install("en0", before, HostOs.SimulatedMacOS, pfctl.Run);

        Assert.Null(hider.Update(after));

        Assert.Equal("-a cookieproxy -f -", pfctl.Calls[^1]);
        Assert.Equal("block drop in quick on en0 inet proto tcp from any to 198.18.0.1 port 443\n", pfctl.LastStdin);
    }

    [RootFact]
    public void OnMacOsTheCaptureThreadWaitsWithPollNotEpoll()
    {
        if (!RootOnly.CanRun(_output))
        {
            return;
        }
        using IPacketDevice device = PacketDeviceFactory.Open("lo", s_filter, CaptureKind.Auto, os: HostOs.SimulatedMacOS);
        Assert.IsType<PcapDevice>(device);
        Assert.Equal("libpcap", device.Backend);

        // Backend sockets: no epoll set on macOS; the worker falls back to the device's poll(2) wait and the
        // runtime's own socket engine (kqueue there).
        Assert.Null(CaptureWorker.TryOpenReadiness(device, HostOs.SimulatedMacOS));

        // On the real Linux host the same device gets the epoll set as an extra descriptor of its poll.
        using SocketReadiness? linux = CaptureWorker.TryOpenReadiness(device, HostOs.Current);
        Assert.NotNull(linux);
    }
}
