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

/// <summary>
/// The syncache behind <see cref="SynResponder"/>: the SYN+ACK it retransmits is the cookie SYN+ACK the SYN got,
/// the ACK to either validates from its cookie, the ACK or a RST ends the retransmissions, and a flood gets pure
/// cookies. Wall clock (cookie slots) and monotonic clock (the schedule) are separate, as in the host.
/// </summary>
public class SynCacheResponderTests
{
    private const long Unix = 1_763_700_000_000;
    private const long Mono = 50_000;
    private readonly MemoryPacketDevice _dev = new();
    private readonly FrameBatch _batch = new(64);
    private readonly ProxyCounters _counters = new();
    private readonly SynResponder _responder;
    private readonly SynCache _cache;
    private CountOnlyFlowHandler _handler;

    public SynCacheResponderTests()
    {
        var endpoints = new ProtectedEndpoints();
        endpoints.Add(IPEndPoint.Parse("198.18.0.1:80"));
        endpoints.Add(IPEndPoint.Parse("[2001:db8::1]:80"));
        _cache = new SynCache(new SynCacheConfig { Capacity = 64, EnterCookiesPerSecond = 32, LeaveCookiesPerSecond = 8 }, _counters, Mono);
        _responder = new SynResponder(new ResponderConfig(), new SynCookieCodec(new SipKey(1, 2)), endpoints, _counters, synCache: _cache);
    }

    private void Run(long elapsedMs)
    {
        _dev.Receive(_batch, 0);
        _responder.ProcessBatch(_batch, ref _handler, _dev, Unix + elapsedMs, Mono + elapsedMs);
    }

    private List<byte[]> Tick(long elapsedMs)
    {
        _dev.Sent.Clear();
        _responder.Tick(Mono + elapsedMs, _dev);
        var sent = _dev.Sent.ToList();
        _dev.Sent.Clear();
        return sent;
    }

    private byte[] SendSyn(in L2L3Template c, in TcpRepr syn, long elapsedMs = 0)
    {
        _dev.Sent.Clear();
        _dev.Inject(Frames.Build(c, syn));
        Run(elapsedMs);
        byte[] synAck = Assert.Single(_dev.Sent);
        _dev.Sent.Clear();
        return synAck;
    }

    private static TcpRepr AckFor(in ParsedPacket synAck, in TcpRepr syn, TcpFlags flags = TcpFlags.Ack) => new()
    {
        SrcPort = syn.SrcPort,
        DstPort = syn.DstPort,
        Seq = syn.Seq + 1,
        Ack = synAck.Tcp.Seq + 1,
        Flags = flags,
        Window = 502,
        Options = TcpOptionsRepr.None,
    };

    [Fact]
    public void AnUnansweredSynAckIsSentAgainAtOneAndThreeSecondsByteForByte()
    {
        L2L3Template c = Frames.ClientToServer();
        TcpRepr syn = Frames.LinuxSyn(40000, 0x11223344, timestamps: false);
        byte[] synAck = SendSyn(c, syn);
        Assert.Equal(1, _cache.Count);
        Assert.Equal(Mono + 1000, _responder.NextDeadlineMs);

        Assert.Empty(Tick(999));
        Assert.Equal(synAck, Assert.Single(Tick(1000)));
        Assert.Empty(Tick(2999));
        Assert.Equal(synAck, Assert.Single(Tick(3000)));
        Assert.Empty(Tick(30_000));
        Assert.Equal(3, _counters[Counter.SynAckSent]);
        Assert.Equal(2, _counters[Counter.SynCacheRetransmits]);
        Assert.Equal(1, _counters[Counter.SynCacheExpired]);
    }

    [Fact]
    public void TheAckToARetransmittedSynAckValidatesAndEndsTheRetransmissions()
    {
        L2L3Template c = Frames.ClientToServer();
        TcpRepr syn = Frames.LinuxSyn(40000, 0x11223344, timestamps: false);
        SendSyn(c, syn);
        ParsedPacket again = Frames.Parse(Assert.Single(Tick(1000)));

        _dev.Inject(Frames.Build(c, AckFor(again, syn)));
        Run(1100);
        Assert.Equal(1, _handler.Validated);
        Assert.Equal(0, _cache.Count);
        Assert.Equal(1, _counters[Counter.SynCacheAcked]);
        Assert.Empty(Tick(10_000));
    }

    [Fact]
    public void AnAckWithDataAlsoEndsTheRetransmissions()
    {
        L2L3Template c = Frames.ClientToServer();
        TcpRepr syn = Frames.LinuxSyn(40000, 0x11223344, timestamps: false);
        ParsedPacket sa = Frames.Parse(SendSyn(c, syn));
        _dev.Inject(Frames.Build(c, AckFor(sa, syn, TcpFlags.Ack | TcpFlags.Psh), "GET / HTTP/1.0\r\n\r\n"u8));
        Run(200);
        Assert.Equal(1, _handler.Validated);
        Assert.Empty(Tick(10_000));
    }

    [Fact]
    public void TheClientsResetAtItsNextSequenceNumberEndsTheRetransmissions()
    {
        L2L3Template c = Frames.ClientToServer();
        TcpRepr syn = Frames.LinuxSyn(40000, 0x11223344, timestamps: false);
        ParsedPacket sa = Frames.Parse(SendSyn(c, syn));
        // What a host that never sent the SYN answers to our SYN+ACK (RFC 9293 3.10.7.1): <SEQ=SEG.ACK><CTL=RST>.
        _dev.Inject(Frames.Build(c, new TcpRepr { SrcPort = 40000, DstPort = 80, Seq = sa.Tcp.Ack, Flags = TcpFlags.Rst, Options = TcpOptionsRepr.None }));
        Run(100);
        Assert.Empty(_dev.Sent);
        Assert.Equal(1, _counters[Counter.SynCacheReset]);
        Assert.Empty(Tick(10_000));
    }

    [Fact]
    public void AnIPv6SynOnAVlanIsRetransmittedOnTheSameVlan()
    {
        L2L3Template c = Frames.ClientToServer("2001:db8::2", "2001:db8::1", vlanTci: 42);
        TcpRepr syn = Frames.LinuxSyn(40001, 7);
        byte[] synAck = SendSyn(c, syn);
        byte[] again = Assert.Single(Tick(1000));
        Assert.Equal(synAck, again);
        ParsedPacket p = Frames.Parse(again);
        Assert.Equal(6, p.IpVersion);
        Assert.Equal(42, p.OuterVlanTci & 0xFFF);

        _dev.Inject(Frames.Build(c, AckFor(p, syn) with { Options = TimestampEcho(syn, p) }));
        Run(1200);
        Assert.Equal(1, _handler.Validated);
    }

    private static TcpOptionsRepr TimestampEcho(in TcpRepr syn, in ParsedPacket synAck)
    {
        TcpOptionsRepr o = TcpOptionsRepr.None;
        o.HasTimestamp = true;
        o.TsVal = syn.Options.TsVal + 1;
        o.TsEcr = synAck.Tcp.Options.TsVal;
        return o;
    }

    [Fact]
    public void AboveTheEnterRateSynsGetPureCookiesAndNothingIsRemembered()
    {
        L2L3Template c = Frames.ClientToServer();
        for (int i = 0; i < 40; i++)
        {
            _dev.Inject(Frames.Build(c, Frames.LinuxSyn((ushort)(10000 + i), (uint)i)));
        }
        Run(0);
        List<byte[]> synAcks = _dev.Sent.ToList();
        Assert.Equal(40, synAcks.Count);
        Assert.Equal(SynCacheMode.PureCookies, _cache.Mode);
        Assert.Equal(0, _cache.Count);
        Assert.Empty(Tick(5000));
        // Every one of them still validates from its cookie.
        foreach (byte[] f in synAcks)
        {
            ParsedPacket sa = Frames.Parse(f);
            var syn = Frames.LinuxSyn(sa.Tcp.DstPort, sa.Tcp.Ack.Value - 1);
            _dev.Inject(Frames.Build(c, AckFor(sa, syn) with { Options = TimestampEcho(syn, sa) }));
        }
        Run(500);
        Assert.Equal(40, _handler.Validated);
    }

    [Fact]
    public void WhileDrainingNothingIsRetransmitted()
    {
        SendSyn(Frames.ClientToServer(), Frames.LinuxSyn(40000, 1, timestamps: false));
        _responder.Draining = true;
        Assert.Equal(long.MaxValue, _responder.NextDeadlineMs);
        Assert.Empty(Tick(10_000));
    }

    [Fact]
    public void WithoutASyncacheNothingIsEverRetransmitted()
    {
        var endpoints = new ProtectedEndpoints();
        endpoints.Add(IPEndPoint.Parse("198.18.0.1:80"));
        var plain = new SynResponder(new ResponderConfig(), new SynCookieCodec(new SipKey(1, 2)), endpoints, new ProxyCounters());
        _dev.Inject(Frames.Build(Frames.ClientToServer(), Frames.LinuxSyn(1, 1)));
        _dev.Receive(_batch, 0);
        plain.ProcessBatch(_batch, ref _handler, _dev, Unix, Mono);
        Assert.Single(_dev.Sent);
        Assert.Null(plain.SynCache);
        Assert.Equal(long.MaxValue, plain.NextDeadlineMs);
        _dev.Sent.Clear();
        plain.Tick(Mono + 10_000, _dev);
        Assert.Empty(_dev.Sent);
    }
}
