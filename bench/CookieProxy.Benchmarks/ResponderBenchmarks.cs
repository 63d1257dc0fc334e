using System.Net;
using BenchmarkDotNet.Attributes;
using CookieProxy.Cookies;
using CookieProxy.Crypto;
using CookieProxy.Diagnostics;
using CookieProxy.Io;
using CookieProxy.Responder;
using CookieProxy.Tcp;
using CookieProxy.Wire;

namespace CookieProxy.Benchmarks;

/// <summary>
/// The SYN-flood hot path end to end, minus the kernel: a captured batch of 64 frames through
/// <see cref="SynResponder.ProcessBatch{THandler}"/> (parse + checksum verify + classify + SIMD cookie MAC +
/// in-place SYN+ACK + checksum), reported per frame. The refill of the batch (a memcpy per frame, as the
/// capture backends do) is included. Baseline: the same frames parsed only.
/// </summary>
[MemoryDiagnoser]
public class ResponderBenchmarks
{
    private const int Frames = 64;
    private readonly FrameBatch _batch = new(Frames);
    private readonly byte[][] _syns = new byte[Frames][];
    private readonly byte[][] _bareSyns = new byte[Frames][];
    private readonly byte[][] _badAcks = new byte[Frames][];
    private readonly NullDevice _device = new();
    private SynResponder _responder = null!;
    private NoFlowsHandler _handler;

    [GlobalSetup]
    public void Setup()
    {
        var endpoints = new ProtectedEndpoints();
        endpoints.Add(IPEndPoint.Parse("198.18.0.1:80"));
        _responder = new SynResponder(new ResponderConfig(), new SynCookieCodec(new SipKey(1, 2)), endpoints, new ProxyCounters());
        var rng = new Random(7);
        for (int i = 0; i < Frames; i++)
        {
            L2L3Template t = default;
            t.OurMac = 0x020000000002;
            t.ClientMac = 0x020000000001;
            t.IpVersion = 4;
            t.OurIp = IpAddr.FromV4(0xC6120100u | (uint)rng.Next(1, 255));
            t.ClientIp = IpAddr.FromV4(0xC6120001u);
            t.Ttl = 64;
            var opts = TcpOptionsRepr.None;
            opts.Mss = 1460;
            opts.SackPermitted = true;
            opts.WindowScale = 7;
            opts.HasTimestamp = true;
            opts.TsVal = (uint)rng.Next();
            var syn = new TcpRepr { SrcPort = (ushort)rng.Next(1024, 65535), DstPort = 80, Seq = new SeqNumber((uint)rng.Next()), Flags = TcpFlags.Syn, Window = 64240, Options = opts };
            _syns[i] = Build(t, syn);
            syn.Options = TcpOptionsRepr.None; // hping3-style bare SYN
            _bareSyns[i] = Build(t, syn);
            var ack = new TcpRepr { SrcPort = syn.SrcPort, DstPort = 80, Seq = syn.Seq + 1, Ack = new SeqNumber((uint)rng.Next()), Flags = TcpFlags.Ack, Window = 502, Options = TcpOptionsRepr.None };
            _badAcks[i] = Build(t, ack);
        }
    }

    private static byte[] Build(in L2L3Template t, in TcpRepr tcp)
    {
        var buf = new byte[256];
        int n = TcpFrameBuilder.Write(buf, t, tcp, default, default);
        return buf.AsSpan(0, n).ToArray();
    }

    private void Fill(byte[][] frames)
    {
        _batch.Clear();
        for (int i = 0; i < frames.Length; i++)
        {
            _batch.TryAdd(frames[i]);
        }
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Frames, Description = "parse only (baseline)")]
    public int ParseOnly()
    {
        Fill(_syns);
        int ok = 0;
        for (int i = 0; i < _batch.Count; i++)
        {
            ok += PacketParser.Parse(_batch[i], out _, verifyChecksums: true) == DropReason.None ? 1 : 0;
        }
        return ok;
    }

    [Benchmark(OperationsPerInvoke = Frames, Description = "SYN -> SYN+ACK (Linux options)")]
    public void AnswerLinuxSyns()
    {
        Fill(_syns);
        _responder.ProcessBatch(_batch, ref _handler, _device, 1_763_700_000_000);
    }

    [Benchmark(OperationsPerInvoke = Frames, Description = "SYN -> SYN+ACK (bare, hping3)")]
    public void AnswerBareSyns()
    {
        Fill(_bareSyns);
        _responder.ProcessBatch(_batch, ref _handler, _device, 1_763_700_000_000);
    }

    [Benchmark(OperationsPerInvoke = Frames, Description = "forged ACK -> CookieInvalid")]
    public void RejectForgedAcks()
    {
        Fill(_badAcks);
        _responder.ProcessBatch(_batch, ref _handler, _device, 1_763_700_000_000);
    }

    /// <summary>No flow table: valid cookies are only counted.</summary>
    private struct NoFlowsHandler : IFlowHandler
    {
        public long Validated;

        public readonly bool TryDeliver(ref ParsedPacket packet, Span<byte> frame, int listener) => false;

        public void OnCookieValid(ref ParsedPacket packet, Span<byte> frame, int listener, in CookieDecoded cookie) => Validated++;
    }

    private sealed class NullDevice : IPacketDevice
    {
        public long Sent;
        public string Name => "null";
        public string Backend => "null";
        public int Receive(FrameBatch batch, int timeoutMs) => 0;
        public bool Send(ReadOnlySpan<byte> frame)
        {
            Sent++;
            return true;
        }
        public void Flush()
        {
        }
        public void Wake()
        {
        }
        public DeviceStats GetStats() => default;
        public void Dispose()
        {
        }
    }
}
