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
/// What the hybrid syncache costs per SYN: a batch of 64 distinct Linux-style SYNs through
/// <see cref="SynResponder.ProcessBatch{THandler}"/> plus the capture loop's <see cref="SynResponder.Tick"/>, with
/// no syncache (the baseline: <c>--syncache 0</c>), with the default syncache in pure-cookie mode (a flood: the
/// acceptance is at most 5% over the baseline), and with a syncache that remembers every SYN (the low-rate mode,
/// here at a rate no real low-rate phase reaches, with the ring wrapping and entries expiring).
/// </summary>
[MemoryDiagnoser]
public class SynCacheBenchmarks
{
    private const int Frames = 64;
    private const long Unix = 1_763_700_000_000;
    private readonly FrameBatch _batch = new(Frames);
    private readonly byte[][] _syns = new byte[Frames][];
    private readonly NullDevice _device = new();
    private SynResponder _plain = null!;
    private SynResponder _flooded = null!;
    private SynResponder _remembering = null!;
    private NoFlowsHandler _handler;
    private long _now;
    private ushort _portBase;

    [GlobalSetup]
    public void Setup()
    {
        var endpoints = new ProtectedEndpoints();
        endpoints.Add(IPEndPoint.Parse("198.18.0.1:80"));
        var codec = new SynCookieCodec(new SipKey(1, 2));
        _plain = new SynResponder(new ResponderConfig(), codec, endpoints, new ProxyCounters());

        var floodCounters = new ProxyCounters();
        var flooded = new SynCache(SynCacheConfig.For(SynCacheConfig.DefaultCapacity), floodCounters, 0);
        _flooded = new SynResponder(new ResponderConfig(), codec, endpoints, floodCounters, synCache: flooded);

        var rememberCounters = new ProxyCounters();
        var remembering = new SynCache(new SynCacheConfig
        {
            Capacity = SynCacheConfig.DefaultCapacity,
            EnterCookiesPerSecond = int.MaxValue / 2,
            LeaveCookiesPerSecond = 1,
        }, rememberCounters, 0);
        _remembering = new SynResponder(new ResponderConfig(), codec, endpoints, rememberCounters, synCache: remembering);

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
            var syn = new TcpRepr { SrcPort = (ushort)(1024 + i), DstPort = 80, Seq = new SeqNumber((uint)rng.Next()), Flags = TcpFlags.Syn, Window = 64240, Options = opts };
            var buf = new byte[256];
            int n = TcpFrameBuilder.Write(buf, t, syn, default, default);
            _syns[i] = buf.AsSpan(0, n).ToArray();
        }

        // Put the flooded one into pure-cookie mode, as a flood does within its first window.
        for (int i = 0; i < 40; i++)
        {
            Run(_flooded);
        }
    }

    /// <summary>One batch: refill (a memcpy per frame, as the capture backends do), answer, tick; 1 ms per batch.
    /// Checksums count as verified by the kernel (TP_STATUS_CSUM_VALID), as for a veth or an offloading NIC.</summary>
    private void Run(SynResponder responder)
    {
        _batch.Clear();
        for (int i = 0; i < Frames; i++)
        {
            _batch.TryAdd(_syns[i], FrameFlags.ChecksumValid);
        }
        _now++;
        responder.ProcessBatch(_batch, ref _handler, _device, Unix + _now, _now);
        responder.Tick(_now, _device);
    }

    /// <summary>Distinct flows per batch for the remembering table (else every SYN would be a repeat of one it holds),
    /// 50 ms apart: 64 batches span more than an entry's 3 s, so the table turns over, each SYN remembered once and
    /// its SYN+ACK sent twice more.</summary>
    private void RunDistinct(SynResponder responder)
    {
        _batch.Clear();
        _portBase += Frames;
        for (int i = 0; i < Frames; i++)
        {
            _batch.TryReserve(_syns[i].Length, out Span<byte> dst);
            _syns[i].CopyTo(dst);
            // Source port (and its checksum share) changed in place: TCP checksum left as is, the parse does not verify it here.
            System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(dst[34..], (ushort)(_portBase + i));
            _batch.Commit(_syns[i].Length, FrameFlags.ChecksumValid);
        }
        _now += 50;
        responder.ProcessBatch(_batch, ref _handler, _device, Unix + _now, _now);
        responder.Tick(_now, _device);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Frames, Description = "no syncache (--syncache 0)")]
    public void PureCookies() => Run(_plain);

    [Benchmark(OperationsPerInvoke = Frames, Description = "syncache 4096, flood (pure-cookie mode)")]
    public void SyncacheUnderFlood() => Run(_flooded);

    [Benchmark(OperationsPerInvoke = Frames, Description = "syncache 4096, remembering every SYN")]
    public void SyncacheRemembering() => RunDistinct(_remembering);

    private sealed class NullDevice : IPacketDevice
    {
        public string Name => "null";
        public string Backend => "null";
        public int Receive(FrameBatch batch, int timeoutMs) => 0;
        public bool Send(ReadOnlySpan<byte> frame) => true;
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

    /// <summary>No flow table: valid cookies are only counted (CountOnlyFlowHandler moved to the tests, issue 12.7).</summary>
    private struct NoFlowsHandler : IFlowHandler
    {
        public long Validated;

        public readonly bool TryDeliver(ref ParsedPacket packet, Span<byte> frame, int listener) => false;

        public void OnCookieValid(ref ParsedPacket packet, Span<byte> frame, int listener, in CookieDecoded cookie) => Validated++;
    }
}
