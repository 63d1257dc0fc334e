using System.Net;
using CookieProxy.Cookies;
using CookieProxy.Crypto;
using CookieProxy.Diagnostics;
using CookieProxy.Io;
using CookieProxy.Responder;
using CookieProxy.Tcp;
using CookieProxy.Tests.Support;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Responder;

public class SynResponderTests
{
    private const long Now = 1_763_700_000_000;
    private readonly MemoryPacketDevice _dev = new();
    private readonly FrameBatch _batch = new(64);
    private readonly ProxyCounters _counters = new();
    private readonly SynResponder _responder;
    private CountOnlyFlowHandler _handler;

    public SynResponderTests()
    {
        var endpoints = new ProtectedEndpoints();
        endpoints.Add(IPEndPoint.Parse("198.18.0.1:80"));
        endpoints.Add(IPEndPoint.Parse("[fd00:198:18::1]:443"));
        _responder = new SynResponder(new ResponderConfig(), new SynCookieCodec(new SipKey(1, 2)), endpoints, _counters);
    }

    private void Run(long now = Now)
    {
        _dev.Receive(_batch, 0);
        _responder.ProcessBatch(_batch, ref _handler, _dev, now);
    }

    private static TcpRepr AckFor(in ParsedPacket synAck, in TcpRepr syn)
    {
        var ack = new TcpRepr
        {
            SrcPort = syn.SrcPort,
            DstPort = syn.DstPort,
            Seq = syn.Seq + 1,
            Ack = synAck.Tcp.Seq + 1,
            Flags = TcpFlags.Ack,
            Window = 502,
            Options = TcpOptionsRepr.None,
        };
        if (synAck.Tcp.Options.HasTimestamp)
        {
            ack.Options.HasTimestamp = true;
            ack.Options.TsVal = syn.Options.TsVal + 1;
            ack.Options.TsEcr = synAck.Tcp.Options.TsVal;
        }
        return ack;
    }

    [Fact]
    public void ASynIsAnsweredWithOneWellFormedSynAckAndItsAckValidates()
    {
        L2L3Template c = Frames.ClientToServer();
        TcpRepr syn = Frames.LinuxSyn(40000, 0x11223344);
        _dev.Inject(Frames.Build(c, syn));
        Run();

        byte[] reply = Assert.Single(_dev.Sent);
        ParsedPacket sa = Frames.Parse(reply); // verifies IPv4 and TCP checksums
        Assert.Equal(TcpFlags.Syn | TcpFlags.Ack, sa.Tcp.Flags);
        Assert.Equal(syn.Seq + 1, sa.Tcp.Ack);
        Assert.Equal(syn.SrcPort, sa.Tcp.DstPort);
        Assert.Equal(IpAddr.FromIPAddress(IPAddress.Parse("198.18.0.2")), sa.Flow.DstAddr);
        Assert.Equal(1460, sa.Tcp.Options.Mss);
        Assert.True(sa.Tcp.Options.SackPermitted);
        Assert.Equal(_responder.WindowScale, sa.Tcp.Options.WindowScale);
        Assert.True(sa.Tcp.Options.HasTimestamp);
        Assert.Equal(syn.Options.TsVal, sa.Tcp.Options.TsEcr);
        Assert.NotEqual(0, sa.Tcp.Window); // a real window, not SYNPROXY's zero window
        Assert.Equal(1, _counters[Counter.SynReceived]);
        Assert.Equal(1, _counters[Counter.SynAckSent]);

        _dev.Sent.Clear();
        _dev.Inject(Frames.Build(c, AckFor(sa, syn)));
        Run(Now + 200);
        Assert.Equal(1, _handler.Validated);
        Assert.Equal(1, _counters[Counter.CookieValid]);
        Assert.Empty(_dev.Sent);
    }

    [Fact]
    public void IPv6AndVlanTaggedSynsAreAnsweredOnTheSameVlan()
    {
        L2L3Template c = Frames.ClientToServer("fd00:198:18::2", "fd00:198:18::1", vlanTci: 42);
        TcpRepr syn = Frames.LinuxSyn(40001, 7, dport: 443);
        _dev.Inject(Frames.Build(c, syn));
        Run();
        ParsedPacket sa = Frames.Parse(Assert.Single(_dev.Sent));
        Assert.Equal(6, sa.IpVersion);
        Assert.Equal(1, sa.VlanCount);
        Assert.Equal(42, sa.OuterVlanTci & 0xFFF);
        Assert.Equal(1440, sa.Tcp.Options.Mss);

        _dev.Inject(Frames.Build(c, AckFor(sa, syn)));
        Run();
        Assert.Equal(1, _handler.Validated);
    }

    [Fact]
    public void ABareSynGetsOnlyMssAndNoReflectedOptions()
    {
        // hping3-style SYN: no options at all.
        L2L3Template c = Frames.ClientToServer();
        var syn = new TcpRepr { SrcPort = 3000, DstPort = 80, Seq = new SeqNumber(5), Flags = TcpFlags.Syn, Window = 512, Options = TcpOptionsRepr.None };
        _dev.Inject(Frames.Build(c, syn));
        Run();
        ParsedPacket sa = Frames.Parse(Assert.Single(_dev.Sent));
        Assert.Equal(1460, sa.Tcp.Options.Mss);
        Assert.False(sa.Tcp.Options.SackPermitted);
        Assert.Equal(-1, sa.Tcp.Options.WindowScale);
        Assert.False(sa.Tcp.Options.HasTimestamp);
    }

    [Fact]
    public void ABatchOfSynsGetsOneSynAckEachWithDistinctCookies()
    {
        L2L3Template c = Frames.ClientToServer();
        for (int i = 0; i < 40; i++)
        {
            _dev.Inject(Frames.Build(c, Frames.LinuxSyn((ushort)(10000 + i), (uint)i * 1000, timestamps: i % 2 == 0)));
        }
        _dev.Inject(Frames.Build(Frames.ClientToServer("fd00:198:18::2", "fd00:198:18::1"), Frames.LinuxSyn(9, 9, dport: 443)));
        Run();
        Assert.Equal(41, _dev.Sent.Count);
        var cookies = new HashSet<uint>();
        foreach (byte[] f in _dev.Sent)
        {
            ParsedPacket sa = Frames.Parse(f);
            cookies.Add(sa.Tcp.Seq.Value);
        }
        Assert.Equal(41, cookies.Count);

        // And every one of them validates (the SIMD batch MAC equals the scalar check).
        var synAcks = _dev.Sent.ToArray();
        for (int i = 0; i < 40; i++)
        {
            ParsedPacket sa = Frames.Parse(synAcks[i]);
            TcpRepr syn = Frames.LinuxSyn(sa.Tcp.DstPort, sa.Tcp.Ack.Value - 1, timestamps: sa.Tcp.Options.HasTimestamp);
            _dev.Inject(Frames.Build(c, AckFor(sa, syn)));
        }
        Run();
        Assert.Equal(40, _handler.Validated);
        Assert.Equal(0, _counters[Counter.CookieInvalid]);
    }

    [Fact]
    public void AForgedAckIsDroppedSilentlyByDefaultAndCounted()
    {
        L2L3Template c = Frames.ClientToServer();
        var ack = new TcpRepr { SrcPort = 5555, DstPort = 80, Seq = new SeqNumber(100), Ack = new SeqNumber(0x12345678), Flags = TcpFlags.Ack, Window = 100, Options = TcpOptionsRepr.None };
        _dev.Inject(Frames.Build(c, ack));
        Run();
        Assert.Empty(_dev.Sent);
        Assert.Equal(0, _handler.Validated);
        Assert.Equal(1, _counters[Counter.CookieInvalid]);
        Assert.Equal(1, _counters.Drops(DropReason.CookieInvalid));
    }

    [Fact]
    public void WithRstInvalidAForgedAckGetsAResetAtItsAckNumber()
    {
        var endpoints = new ProtectedEndpoints();
        endpoints.Add(IPEndPoint.Parse("198.18.0.1:80"));
        var r = new SynResponder(new ResponderConfig { RstInvalid = true }, new SynCookieCodec(new SipKey(1, 2)), endpoints, _counters);
        var ack = new TcpRepr { SrcPort = 5555, DstPort = 80, Seq = new SeqNumber(100), Ack = new SeqNumber(0x12345678), Flags = TcpFlags.Ack, Window = 100, Options = TcpOptionsRepr.None };
        _dev.Inject(Frames.Build(Frames.ClientToServer(), ack));
        _dev.Receive(_batch, 0);
        r.ProcessBatch(_batch, ref _handler, _dev, Now);
        ParsedPacket rst = Frames.Parse(Assert.Single(_dev.Sent));
        Assert.Equal(TcpFlags.Rst, rst.Tcp.Flags);
        Assert.Equal(0x12345678u, rst.Tcp.Seq.Value);
        Assert.Equal(1, _counters[Counter.RstSent]);
    }

    [Fact]
    public void RstAndSynAckAndUnprotectedTrafficAreNeverAnswered()
    {
        L2L3Template c = Frames.ClientToServer();
        _dev.Inject(Frames.Build(c, new TcpRepr { SrcPort = 1, DstPort = 80, Seq = new SeqNumber(1), Flags = TcpFlags.Rst, Options = TcpOptionsRepr.None }));
        _dev.Inject(Frames.Build(c, new TcpRepr { SrcPort = 1, DstPort = 80, Seq = new SeqNumber(1), Ack = new SeqNumber(1), Flags = TcpFlags.Syn | TcpFlags.Ack, Options = TcpOptionsRepr.None }));
        _dev.Inject(Frames.Build(c, Frames.LinuxSyn(2, 2, dport: 81)));
        _dev.Inject(Frames.Build(Frames.ClientToServer("198.18.0.2", "198.18.0.9"), Frames.LinuxSyn(2, 2)));
        Run();
        Assert.Empty(_dev.Sent);
        Assert.Equal(1, _counters.Drops(DropReason.NoFlow));
        Assert.Equal(1, _counters.Drops(DropReason.TcpBadFlags));
        Assert.Equal(2, _counters.Drops(DropReason.NotProtected));
    }

    [Fact]
    public void ACorruptedSynIsDroppedUnlessTheCaptureSaysTheChecksumIsNotReady()
    {
        byte[] frame = Frames.Build(Frames.ClientToServer(), Frames.LinuxSyn(7, 7));
        frame[^1] ^= 0xFF; // last option byte: TCP checksum now wrong
        _dev.Inject(frame);
        Run();
        Assert.Empty(_dev.Sent);
        Assert.Equal(1, _counters.Drops(DropReason.TcpBadChecksum));

        // A locally generated frame with checksum offload (TP_STATUS_CSUMNOTREADY) is trusted.
        byte[] offloaded = Frames.Build(Frames.ClientToServer(), Frames.LinuxSyn(8, 8));
        offloaded[14 + 20 + 16] ^= 0x5A; // TCP checksum field
        _dev.Inject(offloaded, FrameFlags.ChecksumNotReady);
        Run();
        Assert.Single(_dev.Sent);
    }

    [Fact]
    public void GarbageFramesNeverThrow()
    {
        var rng = new Random(99);
        byte[] good = Frames.Build(Frames.ClientToServer(), Frames.LinuxSyn(7, 7));
        for (int round = 0; round < 300; round++)
        {
            for (int k = 0; k < 32; k++)
            {
                byte[] f = (byte[])good.Clone();
                int flips = rng.Next(1, 6);
                for (int j = 0; j < flips; j++)
                {
                    f[rng.Next(f.Length)] = (byte)rng.Next(256);
                }
                _dev.Inject(f.AsSpan(0, rng.Next(0, f.Length + 1)).ToArray(), rng.Next(3) == 0 ? FrameFlags.ChecksumNotReady : FrameFlags.None);
            }
            Run();
        }
        Assert.True(_counters[Counter.FramesReceived] == 300 * 32);
    }

    [Fact]
    public void APerSourceSynBudgetShedsTheExcessAndSparesOtherSources()
    {
        var endpoints = new ProtectedEndpoints();
        endpoints.Add(IPEndPoint.Parse("198.18.0.1:80"));
        var limiter = new CookieProxy.Limits.SourceLimiter(new CookieProxy.Limits.SourceLimitConfig { SynsPerSecond = 3, Ipv4PrefixLength = 24 });
        var r = new SynResponder(new ResponderConfig(), new SynCookieCodec(new SipKey(1, 2)), endpoints, _counters, limiter: limiter);
        for (int i = 0; i < 10; i++)
        {
            _dev.Inject(Frames.Build(Frames.ClientToServer($"198.18.1.{i + 1}"), Frames.LinuxSyn((ushort)(1000 + i), 1)));
        }
        _dev.Inject(Frames.Build(Frames.ClientToServer("198.18.2.1"), Frames.LinuxSyn(999, 1)));
        _dev.Receive(_batch, 0);
        r.ProcessBatch(_batch, ref _handler, _dev, Now);
        // 198.18.1.0/24 gets its burst of 3; 198.18.2.0/24 is untouched.
        Assert.Equal(4, _dev.Sent.Count);
        Assert.Equal(7, _counters.Drops(DropReason.RateLimited));
        Assert.Equal(11, _counters[Counter.SynReceived]);
    }

    [Fact]
    public void SendFailuresAreCountedNotThrown()
    {
        _dev.FailSends = true;
        _dev.Inject(Frames.Build(Frames.ClientToServer(), Frames.LinuxSyn(7, 7)));
        Run();
        Assert.Equal(0, _counters[Counter.SynAckSent]);
        Assert.Equal(1, _counters.Drops(DropReason.TxFailed));
    }
}
