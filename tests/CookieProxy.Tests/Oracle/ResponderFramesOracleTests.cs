using System.Net;
using CookieProxy.Cookies;
using CookieProxy.Crypto;
using CookieProxy.Diagnostics;
using CookieProxy.Io;
using CookieProxy.Responder;
using CookieProxy.Tcp;
using CookieProxy.Tests.Support;
using CookieProxy.Wire;
using PacketDotNet;

namespace CookieProxy.Tests.Oracle;

/// <summary>
/// The frames the SYN responder emits (cookie SYN+ACK, RST for an invalid ACK), decoded by PacketDotNet, an
/// independent decoder: every field and both checksums must say what we meant to send. IPv4 and IPv6, untagged,
/// 802.1Q and QinQ. The XDP SYN path is held byte for byte to this responder by its own differential tests
/// (Platform/XdpSynProgramTests), so these checks cover its SYN+ACKs too.
/// </summary>
public sealed class ResponderFramesOracleTests
{
    private const long Now = 1_763_700_000_000;
    private static readonly IPEndPoint s_v4 = OracleTemplates.ServerV4;
    private static readonly IPEndPoint s_v6 = OracleTemplates.ServerV6;
    private const string ClientV4 = OracleTemplates.ClientV4;
    private const string ClientV6 = OracleTemplates.ClientV6;

    private readonly MemoryPacketDevice _device = new();
    private readonly FrameBatch _batch = new(64);
    private readonly ProxyCounters _counters = new();
    private readonly ResponderConfig _config;
    private readonly SynResponder _responder;
    private ValidatedCounter _handler;

    public ResponderFramesOracleTests() : this(rstInvalid: true)
    {
    }

    private ResponderFramesOracleTests(bool rstInvalid)
    {
        var endpoints = new ProtectedEndpoints();
        endpoints.Add(s_v4);
        endpoints.Add(s_v6);
        _config = new ResponderConfig { RstInvalid = rstInvalid };
        _responder = new SynResponder(_config, new SynCookieCodec(new SipKey(0x0706050403020100, 0x0f0e0d0c0b0a0908)), endpoints, _counters);
    }

    private struct ValidatedCounter : IFlowHandler
    {
        public long Validated;

        public bool TryDeliver(ref ParsedPacket packet, Span<byte> frame, int listener) => false;

        public void OnCookieValid(ref ParsedPacket packet, Span<byte> frame, int listener, in CookieDecoded cookie) => Validated++;
    }

    private byte[] Exchange(byte[] frame)
    {
        _device.Sent.Clear();
        _device.Inject(frame);
        _device.Receive(_batch, 0);
        _responder.ProcessBatch(_batch, ref _handler, _device, Now);
        return Assert.Single(_device.Sent);
    }

    public static TheoryData<bool, Tagging, bool, bool, bool> SynVariants()
    {
        var data = new TheoryData<bool, Tagging, bool, bool, bool>();
        foreach (bool v6 in new[] { false, true })
        {
            foreach (Tagging tagging in Enum.GetValues<Tagging>())
            {
                data.Add(v6, tagging, true, true, true);
            }
            data.Add(v6, Tagging.None, false, true, true);
            data.Add(v6, Tagging.None, true, false, true);
            data.Add(v6, Tagging.None, true, true, false);
            data.Add(v6, Tagging.Dot1Q, false, false, false);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(SynVariants))]
    public void TheCookieSynAckSaysWhatWeMeantAndItsSeqIsTheCookie(bool v6, Tagging tagging, bool timestamps, bool sack, bool windowScale)
    {
        L2L3Template client = OracleTemplates.Client(v6, tagging);
        TcpRepr syn = Frames.LinuxSyn(40000, 0x11223344, dport: (ushort)(v6 ? s_v6.Port : s_v4.Port), timestamps: timestamps);
        syn.Options.SackPermitted = sack;
        syn.Options.WindowScale = (sbyte)(windowScale ? 7 : -1);
        byte[] synFrame = Frames.Build(client, syn);

        byte[] reply = Exchange(synFrame);
        OracleFrame o = PacketDotNetOracle.Decode(reply);

        // Layer 2: back to the client's MAC, from the one it addressed, with its tags.
        Assert.Equal("020000000002", o.DestinationMac);
        Assert.Equal("020000000001", o.SourceMac);
        OracleTemplates.AssertTags(tagging, o);
        // Layer 3: addresses swapped, our TTL, exact length, a valid header checksum.
        Assert.Equal(v6 ? 6 : 4, o.IpVersion);
        Assert.Equal(IPAddress.Parse(v6 ? s_v6.Address.ToString() : s_v4.Address.ToString()), o.Source);
        Assert.Equal(IPAddress.Parse(v6 ? ClientV6 : ClientV4), o.Destination);
        Assert.Equal(L2L3Template.DefaultTtl, o.Ttl);
        int l2 = 14 + 4 * o.Tags.Count;
        Assert.Equal(reply.Length - l2, o.IpTotalLength);
        // Layer 4: SYN+ACK only, acknowledging the SYN, a real window, both checksums right.
        Assert.Equal(syn.DstPort, o.SourcePort);
        Assert.Equal(syn.SrcPort, o.DestinationPort);
        Assert.True(o.Syn && o.AckFlag);
        Assert.False(o.Rst || o.Fin || o.Psh || o.Urg);
        Assert.Equal(syn.Seq.Value + 1, o.Ack);
        Assert.NotEqual(0, o.Window);
        Assert.Empty(o.Payload);
        Assert.True(o.ChecksumsValid, $"IP checksum valid: {o.IpChecksumValid}, TCP checksum valid: {o.TcpChecksumValid}");
        // Options: our MSS for the family; the others only when the client offered them (RFC 7323, RFC 2018).
        Assert.Equal(v6 ? _config.MssV6 : _config.Mss, o.Mss);
        Assert.Equal(sack, o.SackPermitted);
        Assert.Equal(windowScale ? _responder.WindowScale : null, o.WindowScale);
        Assert.Equal(timestamps ? syn.Options.TsVal : null, o.TsEcr);
        Assert.Equal(timestamps, o.TsVal is not null);
        Assert.Equal(0, o.TcpHeaderLength % 4);

        // The sequence number PacketDotNet read is the cookie: the ACK built from it validates.
        var ack = new TcpRepr
        {
            SrcPort = syn.SrcPort,
            DstPort = syn.DstPort,
            Seq = syn.Seq + 1,
            Ack = new SeqNumber(o.Seq + 1),
            Flags = TcpFlags.Ack,
            Window = 502,
            Options = TcpOptionsRepr.None,
        };
        if (o.TsVal is uint ourTs)
        {
            ack.Options.HasTimestamp = true;
            ack.Options.TsVal = syn.Options.TsVal + 1;
            ack.Options.TsEcr = ourTs;
        }
        _device.Inject(Frames.Build(client, ack));
        _device.Receive(_batch, 0);
        _responder.ProcessBatch(_batch, ref _handler, _device, Now + 100);
        Assert.Equal(1, _handler.Validated);
    }

    [Theory]
    [InlineData(false, Tagging.None)]
    [InlineData(true, Tagging.None)]
    [InlineData(false, Tagging.Dot1Q)]
    [InlineData(true, Tagging.QinQ)]
    public void TheRstForAnAckWithoutAValidCookieTakesItsSeqFromTheAck(bool v6, Tagging tagging)
    {
        L2L3Template client = OracleTemplates.Client(v6, tagging);
        var bogus = new TcpRepr
        {
            SrcPort = 41000,
            DstPort = (ushort)(v6 ? s_v6.Port : s_v4.Port),
            Seq = new SeqNumber(0x55667788),
            Ack = new SeqNumber(0xDEADBEEF),
            Flags = TcpFlags.Ack,
            Window = 502,
            Options = TcpOptionsRepr.None,
        };

        OracleFrame o = PacketDotNetOracle.Decode(Exchange(Frames.Build(client, bogus)));

        // RFC 9293 3.10.7.1: <SEQ=SEG.ACK><CTL=RST>, no ACK bit, nothing else.
        Assert.True(o.Rst);
        Assert.False(o.AckFlag || o.Syn || o.Fin || o.Psh);
        Assert.Equal(0xDEADBEEFu, o.Seq);
        Assert.Equal(bogus.DstPort, o.SourcePort);
        Assert.Equal(bogus.SrcPort, o.DestinationPort);
        Assert.Equal(IPAddress.Parse(v6 ? ClientV6 : ClientV4), o.Destination);
        OracleTemplates.AssertTags(tagging, o);
        Assert.Null(o.Mss);
        Assert.Empty(o.Payload);
        Assert.Equal(20, o.TcpHeaderLength);
        Assert.True(o.ChecksumsValid);
        Assert.Equal(1, _counters[Counter.CookieInvalid]);
    }
}
