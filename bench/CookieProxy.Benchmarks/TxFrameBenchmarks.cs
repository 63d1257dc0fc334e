using BenchmarkDotNet.Attributes;
using CookieProxy.Diagnostics;
using CookieProxy.Io;
using CookieProxy.Tcp;
using CookieProxy.Wire;

namespace CookieProxy.Benchmarks;

/// <summary>
/// The transmit side's per-frame work for 64 KiB of flow data (44 segments of 1448 bytes): one frame per
/// segment with its full TCP checksum (the baseline, what `--no-tx-offload` and libpcap do) against one
/// super-frame the device cuts (`TcpSuperFrame`, checksum left to the device), built from 44 emitted
/// segments or from one declared super-segment. All must allocate nothing.
/// </summary>
[MemoryDiagnoser]
public class TxFrameBenchmarks
{
    private const int Mss = 1448;
    private const int Segments = 44;

    private static readonly byte[] s_synV4 = Convert.FromHexString(
        "ae39131312bffa9b4d126a1d08004500003c281e40004006ec73c6134d01c6134d02" +
        "cc340050a9aeeb7d00000000a002faf06b480000020405b40402080a0ac44f24000000000103030a");

    private readonly byte[] _payload = new byte[Segments * Mss];
    private readonly byte[] _frame = new byte[70_000];
    private L2L3Template _template;

    [GlobalSetup]
    public void Setup()
    {
        new Random(1).NextBytes(_payload);
        if (PacketParser.Parse(s_synV4, out ParsedPacket p, verifyChecksums: false) != DropReason.None)
        {
            throw new InvalidOperationException("bad test frame");
        }
        _template = L2L3Template.FromReceived(p, s_synV4);
    }

    private static TcpRepr Segment(uint seq)
    {
        TcpRepr r = default;
        r.SrcPort = 80;
        r.DstPort = 40000;
        r.Seq = new SeqNumber(seq);
        r.Ack = new SeqNumber(1);
        r.Flags = TcpFlags.Ack;
        r.Window = 502;
        r.Options = TcpOptionsRepr.None;
        r.Options.HasTimestamp = true;
        r.Options.TsVal = 1;
        r.Options.TsEcr = 2;
        return r;
    }

    [Benchmark(Baseline = true)]
    public int FramePerSegmentWithChecksum()
    {
        int total = 0;
        for (int i = 0; i < Segments; i++)
        {
            total += TcpFrameBuilder.Write(_frame, _template, Segment((uint)(i * Mss)), _payload.AsSpan(i * Mss, Mss), default);
        }
        return total;
    }

    [Benchmark]
    public int SuperFrameFromSegments()
    {
        var frame = new TcpSuperFrame();
        frame.Start(_frame, _template, Segment(0), _payload.AsSpan(0, Mss), default);
        for (int i = 1; i < Segments; i++)
        {
            frame.TryAppend(Segment((uint)(i * Mss)), _payload.AsSpan(i * Mss, Mss), default);
        }
        return frame.Finish(out TxOffload _);
    }

    [Benchmark]
    public int SuperFrameFromOneSuperSegment()
    {
        var frame = new TcpSuperFrame();
        frame.Start(_frame, _template, Segment(0), _payload, default, segmentSize: Mss);
        return frame.Finish(out TxOffload _);
    }
}
