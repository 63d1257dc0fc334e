using BenchmarkDotNet.Attributes;
using CookieProxy.Diagnostics;
using CookieProxy.Wire;

namespace CookieProxy.Benchmarks;

/// <summary>
/// The per-frame cost of the capture path: parsing a real Linux SYN, and turning it into our SYN+ACK in
/// place. Both must allocate nothing (MemoryDiagnoser shows 0 B).
/// </summary>
[MemoryDiagnoser]
public class WireBenchmarks
{
    // tcpdump -xx of a Linux 6.x SYN: mss 1460,sackOK,TS val 180637476 ecr 0,nop,wscale 10
    private static readonly byte[] s_synV4 = Convert.FromHexString(
        "ae39131312bffa9b4d126a1d08004500003c281e40004006ec73c6134d01c6134d02" +
        "cc340050a9aeeb7d00000000a002faf06b480000020405b40402080a0ac44f24000000000103030a");

    private static readonly byte[] s_synV6 = Convert.FromHexString(
        "ae39131312bffa9b4d126a1d86dd6003dd2700280640fd000077000000000000000000000001" +
        "fd000077000000000000000000000002d8da0050cbc7ab9100000000a002fd206d800000" +
        "020405a00402080ab125e0d3000000000103030a");

    private readonly byte[] _work = new byte[256];
    private readonly byte[] _mtuSegment = new byte[1460];
    private TcpOptionsRepr _ours;

    [GlobalSetup]
    public void Setup()
    {
        new Random(1).NextBytes(_mtuSegment);
        _ours = TcpOptionsRepr.None;
        _ours.Mss = 1460;
        _ours.SackPermitted = true;
        _ours.HasTimestamp = true;
        _ours.TsVal = 12345;
        _ours.WindowScale = 7;
    }

    [Benchmark(Baseline = true)]
    public DropReason ParseSynV4() => PacketParser.Parse(s_synV4, out _, verifyChecksums: false);

    [Benchmark]
    public DropReason ParseSynV4VerifyChecksums() => PacketParser.Parse(s_synV4, out _, verifyChecksums: true);

    [Benchmark]
    public DropReason ParseSynV6VerifyChecksums() => PacketParser.Parse(s_synV6, out _, verifyChecksums: true);

    /// <summary>Copy the SYN into the work buffer (74 bytes: the cheap reset), parse, rewrite to SYN+ACK.</summary>
    [Benchmark]
    public int ParseAndRewriteSynAckV4()
    {
        Span<byte> buffer = _work;
        s_synV4.CopyTo(buffer);
        if (PacketParser.Parse(buffer.Slice(0, s_synV4.Length), out ParsedPacket syn, verifyChecksums: true) != DropReason.None)
        {
            return 0;
        }
        TcpOptionsRepr ours = _ours;
        ours.TsEcr = syn.Tcp.Options.TsVal;
        return SynAckWriter.RewriteInPlace(buffer, syn, 0xC0FFEE, ours, 65535);
    }

    [Benchmark]
    public int ParseAndRewriteSynAckV6()
    {
        Span<byte> buffer = _work;
        s_synV6.CopyTo(buffer);
        if (PacketParser.Parse(buffer.Slice(0, s_synV6.Length), out ParsedPacket syn, verifyChecksums: true) != DropReason.None)
        {
            return 0;
        }
        TcpOptionsRepr ours = _ours;
        ours.TsEcr = syn.Tcp.Options.TsVal;
        return SynAckWriter.RewriteInPlace(buffer, syn, 0xC0FFEE, ours, 65535);
    }

    /// <summary>Internet checksum of a full-MSS segment (how fast the data path can checksum).</summary>
    [Benchmark]
    public uint Checksum1460() => Checksum.Sum(_mtuSegment);
}
