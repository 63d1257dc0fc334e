using System.Net;
using CookieProxy.Cookies;
using CookieProxy.Crypto;
using CookieProxy.Diagnostics;
using CookieProxy.Io;
using CookieProxy.Limits;
using CookieProxy.Responder;
using CookieProxy.Tcp;
using CookieProxy.Tests.Support;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Responder;

/// <summary>What the responder tells `cookieproxy top` and --sample-pcap: per-listener counts, the source sketch
/// and the dropped frames.</summary>
public class SynResponderObservabilityTests
{
    private const long Now = 1_763_700_000_000;
    private readonly MemoryPacketDevice _dev = new();
    private readonly FrameBatch _batch = new(64);
    private readonly ProxyCounters _counters = new();
    private readonly ProtectedEndpoints _endpoints = new();
    private CountOnlyFlowHandler _handler;

    private static readonly IPEndPoint Http = IPEndPoint.Parse("198.18.0.1:80");
    private static readonly IPEndPoint Https = IPEndPoint.Parse("198.18.0.1:443");

    public SynResponderObservabilityTests()
    {
        _endpoints.Add(Http);
        _endpoints.Add(Https);
    }

    private SynResponder Create(SourceSketch? sketch = null, DropSampler? sampler = null, SourceLimiter? limiter = null) =>
        new(new ResponderConfig(), new SynCookieCodec(new SipKey(1, 2)), _endpoints, _counters, limiter: limiter, sketch: sketch, sampler: sampler);

    private void Run(SynResponder responder, long now = Now)
    {
        _dev.Receive(_batch, 0);
        responder.ProcessBatch(_batch, ref _handler, _dev, now);
    }

    private static TcpRepr ForgedAck(ushort dport) => new()
    {
        SrcPort = 5555, DstPort = dport, Seq = new SeqNumber(100), Ack = new SeqNumber(0x12345678), Flags = TcpFlags.Ack, Window = 100,
        Options = TcpOptionsRepr.None,
    };

    [Fact]
    public void SynsAndAcksAreCountedUnderTheListenerTheyAreFor()
    {
        SynResponder responder = Create();
        L2L3Template c = Frames.ClientToServer();
        for (int i = 0; i < 3; i++)
        {
            _dev.Inject(Frames.Build(c, Frames.LinuxSyn((ushort)(1000 + i), 1, dport: 80)));
        }
        _dev.Inject(Frames.Build(c, Frames.LinuxSyn(2000, 1, dport: 443)));
        _dev.Inject(Frames.Build(c, ForgedAck(443)));
        Run(responder);

        ListenerCounters l = responder.ListenerCounters;
        Assert.Equal(3, l.Read(Http, ListenerCounter.SynReceived));
        Assert.Equal(1, l.Read(Https, ListenerCounter.SynReceived));
        Assert.Equal(0, l.Read(Http, ListenerCounter.CookieInvalid));
        Assert.Equal(1, l.Read(Https, ListenerCounter.CookieInvalid));

        // The SYN+ACK of one SYN to port 80, ACKed: a valid cookie on listener 0.
        ParsedPacket sa = Frames.Parse(_dev.Sent[0]);
        TcpRepr syn = Frames.LinuxSyn(1000, 1);
        var ack = new TcpRepr
        {
            SrcPort = 1000, DstPort = 80, Seq = syn.Seq + 1, Ack = sa.Tcp.Seq + 1, Flags = TcpFlags.Ack, Window = 502,
            Options = TcpOptionsRepr.None,
        };
        ack.Options.HasTimestamp = true;
        ack.Options.TsVal = syn.Options.TsVal + 1;
        ack.Options.TsEcr = sa.Tcp.Options.TsVal;
        _dev.Inject(Frames.Build(c, ack));
        Run(responder, Now + 100);
        Assert.Equal(1, l.Read(Http, ListenerCounter.CookieValid));
    }

    [Fact]
    public void AListenerAddedAfterTheResponderWasBuiltIsCountedFromItsFirstSyn()
    {
        SynResponder responder = Create();
        _endpoints.Add(IPEndPoint.Parse("198.18.0.1:8443"));
        _dev.Inject(Frames.Build(Frames.ClientToServer(), Frames.LinuxSyn(1000, 1, dport: 8443)));
        Run(responder);
        Assert.Equal(1, responder.ListenerCounters.Read(IPEndPoint.Parse("198.18.0.1:8443"), ListenerCounter.SynReceived));
    }

    [Fact]
    public void NewEndpointsInPlaceOfTheOldKeepEachEndpointsCountsApart()
    {
        // What a reload does: a new endpoint set in which the indexes mean other endpoints.
        var endpoints = new ProtectedEndpoints();
        endpoints.Add(Https);
        endpoints.Add(Http);
        var responder = new SynResponder(new ResponderConfig(), new SynCookieCodec(new SipKey(1, 2)), endpoints, _counters);
        _dev.Inject(Frames.Build(Frames.ClientToServer(), Frames.LinuxSyn(1000, 1, dport: 80)));
        Run(responder);
        responder.CountListener(0, ListenerCounter.FlowsClosed);    // index 0 is :443 here

        Assert.Equal(1, responder.ListenerCounters.Read(Http, ListenerCounter.SynReceived));
        Assert.Equal(1, responder.ListenerCounters.Read(Https, ListenerCounter.FlowsClosed));
        Assert.Equal(0, responder.ListenerCounters.Read(Http, ListenerCounter.FlowsClosed));
    }

    [Fact]
    public void EverySynFeedsTheSourceSketchAndRefusedSynsCountAsRateLimited()
    {
        var sketch = new SourceSketch(sampleEvery: 1);
        var limiter = new SourceLimiter(new SourceLimitConfig { SynsPerSecond = 2, SynBurst = 2 });
        SynResponder responder = Create(sketch, limiter: limiter);
        for (int i = 0; i < 5; i++)
        {
            _dev.Inject(Frames.Build(Frames.ClientToServer("198.18.1.9"), Frames.LinuxSyn((ushort)(1000 + i), 1)));
        }
        Run(responder);
        Run(responder, Now + 1000);    // an empty batch closes the window

        var top = new SourceCount[8];
        SourceWindow window = sketch.CopyCompleted(top);
        Assert.Equal(1, window.Entries);
        Assert.Equal(IpAddr.FromIPAddress(IPAddress.Parse("198.18.1.0")), top[0].Prefix);
        Assert.Equal(5, top[0].Count);
        Assert.Equal(3, responder.ListenerCounters.Read(Http, ListenerCounter.SynRateLimited));
        Assert.Equal(2, _dev.Sent.Count);
    }

    [Fact]
    public void DroppedFramesReachTheSamplerAsTheyArrivedWithTheirReason()
    {
        var sampler = new DropSampler(_counters, every: 1);
        SynResponder responder = Create(sampler: sampler);
        byte[] forged = Frames.Build(Frames.ClientToServer(), ForgedAck(80));
        byte[] corrupt = Frames.Build(Frames.ClientToServer(), Frames.LinuxSyn(7, 7));
        corrupt[^1] ^= 0xFF;
        _dev.Inject(forged);
        _dev.Inject(corrupt);
        _dev.Inject(Frames.Build(Frames.ClientToServer(), Frames.LinuxSyn(8, 8)));    // answered: not a drop
        Run(responder);

        var buffer = new byte[sampler.SnapBytes];
        int n = sampler.TryRead(buffer, out DropSample first);
        Assert.Equal(DropReason.CookieInvalid, first.Reason);
        Assert.Equal(forged, buffer[..n]);
        n = sampler.TryRead(buffer, out DropSample second);
        Assert.Equal(DropReason.TcpBadChecksum, second.Reason);
        Assert.Equal(corrupt, buffer[..n]);
        Assert.Equal(-1, sampler.TryRead(buffer, out _));
        Assert.Equal(2, _counters[Counter.PcapSampled]);
    }

    [Fact]
    public void WithRstInvalidTheSampleIsTheForgedAckNotTheResetBuiltOverIt()
    {
        var sampler = new DropSampler(_counters, every: 1);
        var responder = new SynResponder(new ResponderConfig { RstInvalid = true }, new SynCookieCodec(new SipKey(1, 2)), _endpoints,
            _counters, sampler: sampler);
        byte[] forged = Frames.Build(Frames.ClientToServer(), ForgedAck(80));
        _dev.Inject(forged);
        Run(responder);

        Assert.Single(_dev.Sent);
        var buffer = new byte[sampler.SnapBytes];
        int n = sampler.TryRead(buffer, out _);
        Assert.Equal(forged, buffer[..n]);
    }
}
