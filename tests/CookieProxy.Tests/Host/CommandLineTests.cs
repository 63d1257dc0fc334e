using System.Net;
using CookieProxy.Host.Capture;
using CookieProxy.Host.Cli;
using CookieProxy.Host.Os;
using CookieProxy.Platform;
using CookieProxy.ProxyProtocol;

namespace CookieProxy.Tests.Host;

public class CommandLineTests
{
    private static CliParse Parse(string line) => CommandLine.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries));

    [Fact]
    public void AFullRunCommandLineParses()
    {
        CliParse r = Parse("run --interface cp-s0 --listen 198.18.0.1:80 --backend 127.0.0.1:8080 --proxy-protocol v2 "
            + "--listen [fd00::1]:443 --backend [::1]:8443 --key-file k --hide-port --capture afpacket --threads 2 "
            + "--stats-interval 1 --stats-file s.json --mss 1400 --slot-seconds 60 --rst-invalid --no-tx-offload --max-flows 10 --duration 3 "
            + "--first-data-timeout 10 --max-conn-per-source 5 --conn-rate-per-source 2.5 --syn-rate-per-source 100 --source-prefix4 24 --source-prefix6 48");
        Assert.Null(r.Error);
        ProxyOptions o = r.Options!;
        Assert.Equal("cp-s0", o.Interface);
        Assert.Equal(2, o.Listeners.Count);
        Assert.Equal(IPEndPoint.Parse("198.18.0.1:80"), o.Listeners[0].Listen);
        Assert.Equal(ProxyProtocolVersion.V2, o.Listeners[0].ProxyProtocol);
        Assert.Equal(ProxyProtocolVersion.None, o.Listeners[1].ProxyProtocol);
        Assert.Equal(IPEndPoint.Parse("[::1]:8443"), o.Listeners[1].Backend);
        Assert.True(o.HidePort);
        Assert.True(o.RstInvalid);
        Assert.False(o.TxOffload);
        Assert.Equal(PacketDeviceOptions.DefaultRingMegabytes, o.RingMegabytes);
        Assert.Equal(64, Parse("run --interface x --listen 198.18.0.1:80 --backend 127.0.0.1:1 --ring-mb 64").Options!.RingMegabytes);
        Assert.Equal(512, PacketDeviceOptions.RingBlocksFor(64));
        Assert.True(Parse("run --interface x --listen 198.18.0.1:80 --backend 127.0.0.1:1").Options!.TxOffload);
        Assert.Equal(CaptureKind.AfPacket, o.Capture);
        Assert.Equal(2, o.Threads);
        Assert.Equal(1400, o.Mss);
        Assert.Equal(60, o.SlotSeconds);
        Assert.Equal(10, o.MaxFlows);
        Assert.Equal(3, o.DurationSeconds);
        Assert.Equal(5, o.MaxConnectionsPerSource);
        Assert.Equal(10_000, o.FirstDataTimeoutMs);
        Assert.Equal(2.5, o.ConnectionRatePerSource);
        Assert.Equal(100, o.SynRatePerSource);
        Assert.Equal(24, o.SourcePrefixV4);
        Assert.Equal(48, o.SourcePrefixV6);
    }

    [Theory]
    [InlineData("", "no command")]
    [InlineData("frobnicate", "unknown command")]
    [InlineData("run --listen 198.18.0.1:80 --backend 127.0.0.1:8080", "--interface is required")]
    [InlineData("run --interface x", "at least one --listen")]
    [InlineData("run --interface x --listen 198.18.0.1:80", "has no --backend")]
    [InlineData("run --interface x --backend 127.0.0.1:1", "must follow a --listen")]
    [InlineData("run --interface x --listen 198.18.0.1 --backend 127.0.0.1:1", "--listen '198.18.0.1'")]
    [InlineData("run --interface x --listen 198.18.0.1:99999 --backend 127.0.0.1:1", "--listen '198.18.0.1:99999'")]
    [InlineData("run --interface x --listen 0.0.0.0:80 --backend 127.0.0.1:1", "wildcard")]
    [InlineData("run --interface x --listen 198.18.0.1:80 --backend 198.18.0.1:80", "is the protected endpoint itself")]
    [InlineData("run --interface x --listen 198.18.0.1:80 --backend 127.0.0.1:1 --listen 198.18.0.1:80 --backend 127.0.0.1:2", "given twice")]
    [InlineData("run --interface x --listen 198.18.0.1:80 --backend 127.0.0.1:1 --proxy-protocol v3", "expected v1, v2 or off")]
    [InlineData("run --interface x --proxy-protocol v1", "applies to the preceding")]
    [InlineData("run --interface x --listen 198.18.0.1:80 --backend 127.0.0.1:1 --capture dpdk", "--capture 'dpdk'")]
    [InlineData("run --interface x --listen 198.18.0.1:80 --backend 127.0.0.1:1 --ring-mb 0", "--ring-mb")]
    [InlineData("run --interface x --listen 198.18.0.1:80 --backend 127.0.0.1:1 --capture afxdp --threads 2", "AF_XDP capture here uses one socket")]
    [InlineData("run --interface x --listen 198.18.0.1:80 --backend 127.0.0.1:1 --xdp-syn turbo", "--xdp-syn 'turbo': expected auto, native, generic or off")]
    [InlineData("run --interface x --listen 198.18.0.1:80 --backend 127.0.0.1:1 --xdp-syn", "--xdp-syn")]
    [InlineData("run --interface x --listen 198.18.0.1:80 --backend 127.0.0.1:1 --xdp-syn generic --capture afxdp", "both need the interface's XDP hook")]
    [InlineData("run --interface x --listen 198.18.0.1:80 --backend 127.0.0.1:1 --xdp-syn native --capture pcap", "needs Linux and the AF_PACKET capture")]
    [InlineData("run --interface x --listen 198.18.0.1:80 --backend 127.0.0.1:1 --slot-seconds 10", "--slot-seconds")]
    [InlineData("run --interface x --listen 198.18.0.1:80 --backend 127.0.0.1:1 --mss 100", "--mss")]
    [InlineData("run --interface x --listen 198.18.0.1:80 --backend 127.0.0.1:1 --threads", "needs a value")]
    [InlineData("run --interface x --listen 198.18.0.1:80 --backend 127.0.0.1:1 --bogus", "unknown option '--bogus'")]
    [InlineData("run --interface x --listen 198.18.0.1:80 --backend 127.0.0.1:1 --source-prefix4 33", "--source-prefix4")]
    [InlineData("run --interface x --listen 198.18.0.1:80 --backend 127.0.0.1:1 --max-conn-per-source -1", "--max-conn-per-source")]
    public void BadArgumentsGiveAClearMessage(string line, string expected)
    {
        CliParse r = Parse(line);
        Assert.Null(r.Options);
        Assert.NotNull(r.Error);
        Assert.Contains(expected, r.Error);
    }

    private const string Minimal = "run --interface x --listen 198.18.0.1:80 --backend 127.0.0.1:1";

    [Fact]
    public void ThreadsDefaultToOnePerCoreAndFanoutToAuto()
    {
        ProxyOptions o = Parse(Minimal).Options!;
        Assert.Equal(0, o.Threads);
        Assert.Null(o.Fanout);
        Assert.Equal(1, CaptureService.DefaultThreads(CaptureKind.Pcap));
        Assert.Equal(1, CaptureService.DefaultThreads(CaptureKind.AfXdp));
        Assert.Equal(Math.Clamp(Environment.ProcessorCount, 1, CaptureService.MaxDefaultThreads), CaptureService.DefaultThreads(CaptureKind.Auto));
        Assert.Equal(CaptureService.DefaultThreads(CaptureKind.Auto), CaptureService.DefaultThreads(CaptureKind.AfPacket));
    }

    [Theory]
    [InlineData("auto", null)]
    [InlineData("source", FanoutMode.SourcePrefix)]
    [InlineData("flow", FanoutMode.FlowHash)]
    [InlineData("Source", FanoutMode.SourcePrefix)]
    public void FanoutParses(string value, FanoutMode? expected) =>
        Assert.Equal(expected, Parse($"{Minimal} --threads 2 --fanout {value}").Options!.Fanout);

    [Theory]
    [InlineData("", ReceiveRings.Separate)]
    [InlineData("--rx-rings separate", ReceiveRings.Separate)]
    [InlineData("--rx-rings separate-v3", ReceiveRings.SeparateSynBlocks)]
    [InlineData("--rx-rings Single", ReceiveRings.Single)]
    public void RxRingsDefaultToSeparateRingsForSyns(string extra, ReceiveRings expected) =>
        Assert.Equal(expected, Parse($"{Minimal} {extra}").Options!.RxRings);

    [Fact]
    public void AnUnknownRxRingsValueNamesTheChoices()
    {
        CliParse r = Parse($"{Minimal} --rx-rings v2");
        Assert.Null(r.Options);
        Assert.Contains("expected separate, separate-v3 or single", r.Error);
    }

    [Theory]
    [InlineData("", PcapSendMode.Batch)]
    [InlineData("--pcap-send batch", PcapSendMode.Batch)]
    [InlineData("--pcap-send Inject", PcapSendMode.Inject)]
    public void PcapSendDefaultsToOneSendmmsgPerBatch(string extra, PcapSendMode expected) =>
        Assert.Equal(expected, Parse($"{Minimal} {extra}").Options!.PcapSend);

    [Fact]
    public void AnUnknownPcapSendValueNamesTheChoices()
    {
        CliParse r = Parse($"{Minimal} --pcap-send mmsg");
        Assert.Null(r.Options);
        Assert.Contains("expected batch or inject", r.Error);
    }

    [Theory]
    [InlineData("", XdpSynMode.Auto)]
    [InlineData("--xdp-syn auto", XdpSynMode.Auto)]
    [InlineData("--xdp-syn generic", XdpSynMode.Generic)]
    [InlineData("--xdp-syn SKB", XdpSynMode.Generic)]
    [InlineData("--xdp-syn native", XdpSynMode.Native)]
    [InlineData("--xdp-syn off", XdpSynMode.Off)]
    [InlineData("--xdp-syn native --syn-rate-per-source 5", XdpSynMode.Native)]
    [InlineData("--capture afxdp", XdpSynMode.Auto)]
    public void XdpSynParses(string options, XdpSynMode expected) =>
        Assert.Equal(expected, Parse($"{Minimal} {options}").Options!.XdpSyn);

    [Theory]
    [InlineData("--capture pcap")]
    [InlineData("--capture pcap --threads 0")]
    [InlineData("--capture pcap --threads 1")]
    public void LibpcapWithTheDefaultOrOneThreadIsFine(string options)
    {
        CliParse r = Parse($"{Minimal} {options}");
        Assert.Null(r.Error);
        Assert.Equal(CaptureKind.Pcap, r.Options!.Capture);
    }

    [Theory]
    [InlineData("--capture pcap --threads 2", "--threads 2: libpcap capture cannot share the frames between threads")]
    [InlineData("--threads 4 --capture pcap", "--threads 4: libpcap")]
    [InlineData("--fanout hash", "--fanout 'hash': expected auto, source or flow")]
    [InlineData("--fanout", "--fanout needs a value")]
    [InlineData("--threads 65", "--threads")]
    public void ImpossibleThreadingIsAClearError(string options, string expected)
    {
        CliParse r = Parse($"{Minimal} {options}");
        Assert.Null(r.Options);
        Assert.Contains(expected, r.Error);
    }

    [Fact]
    public void HelpAndGenkeyAreCommands()
    {
        Assert.Contains("Usage:", Parse("--help").Output);
        Assert.Contains("--max-conn-per-source", Parse("run --help").Output);
        Assert.Contains("--max-conn-per-source", Parse("run -h").Output);
        Assert.Equal("genkey", Parse("genkey k").Command);
        Assert.Null(Parse("genkey k").Error);
    }

    [Fact]
    public void TheNftRuleSetDropsExactlyTheProtectedEndpointsBeforeConntrack()
    {
        var listeners = new[]
        {
            new ListenerOptions(IPEndPoint.Parse("198.18.0.1:80"), IPEndPoint.Parse("127.0.0.1:8080"), ProxyProtocolVersion.None),
            new ListenerOptions(IPEndPoint.Parse("[fd00::1]:443"), IPEndPoint.Parse("[::1]:8443"), ProxyProtocolVersion.None),
        };
        string script = PortHider.BuildNftScript("cp-s0", listeners, ingressHook: false);
        Assert.Contains($"table inet {PortHider.NftTable}", script);
        Assert.Contains("hook prerouting priority raw", script);
        Assert.Contains("iifname \"cp-s0\" ip daddr 198.18.0.1 tcp dport 80 counter drop", script);
        Assert.Contains("iifname \"cp-s0\" ip6 daddr fd00::1 tcp dport 443 counter drop", script);

        // The default: the interface's ingress hook (after the capture taps, before ip_rcv).
        string ingress = PortHider.BuildNftScript("cp-s0", listeners);
        Assert.Contains("type filter hook ingress device \"cp-s0\" priority -500", ingress);
        Assert.Contains("    ip daddr 198.18.0.1 tcp dport 80 counter drop", ingress);
        Assert.Contains("    ip6 daddr fd00::1 tcp dport 443 counter drop", ingress);
        Assert.DoesNotContain("prerouting", ingress);
        // Fragments to a protected address: dropped before the host could reassemble them (issue 12.5).
        Assert.Contains("    ip daddr 198.18.0.1 ip protocol tcp ip frag-off & 0x3fff != 0 counter drop", ingress);
        Assert.Contains("    ip6 daddr fd00::1 exthdr frag exists frag nexthdr tcp counter drop", ingress);
        string[] ipt = PortHider.BuildIptablesRules("cp-s0", listeners).ToArray();
        Assert.Equal($"-i cp-s0 -p tcp -d 198.18.0.1 --dport 80 -m comment --comment {PortHider.NftTable} -j DROP", ipt[0]);
        Assert.StartsWith("-6 ", ipt[1]);
    }
}
