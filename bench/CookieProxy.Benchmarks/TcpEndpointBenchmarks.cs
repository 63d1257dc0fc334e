using BenchmarkDotNet.Attributes;
using CookieProxy.Tcp;
using CookieProxy.Wire;

namespace CookieProxy.Benchmarks;

/// <summary>
/// The TCP endpoint's per-segment cost: receiving one in-order full-sized segment (Process + the backend's
/// Consume + the ACK Dispatch) against a bare ACK as the baseline, and one bulk-send Dispatch. 0 B allocated is
/// part of the contract.
/// </summary>
[MemoryDiagnoser]
public class TcpEndpointBenchmarks
{
    private struct CountingSink : ITcpSegmentSink
    {
        public int Segments;
        public int Bytes;

        public void Emit(in TcpRepr segment, ReadOnlySpan<byte> payloadHead, ReadOnlySpan<byte> payloadTail)
        {
            Segments++;
            Bytes += payloadHead.Length + payloadTail.Length;
        }
    }

    private readonly byte[] _payload = new byte[1448];
    private readonly byte[] _bulk = new byte[64 * 1024];
    private TcpEndpoint _receiver = null!;
    private TcpEndpoint _sender = null!;
    private TcpRepr _segment;
    private long _now;

    [Params(false, true)]
    public bool Timestamps { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        var hs = new TcpHandshake
        {
            Iss = new SeqNumber(1000), Irs = new SeqNumber(5000), SendMss = 1460, SendWindowScale = 7, RecvWindowScale = 7,
            SackPermitted = true, TimestampsEnabled = Timestamps, TsRecent = 1, LocalTsInitial = 1, InitialWindow = 2048,
        };
        _receiver = new TcpEndpoint(new TcpConfig(), in hs, 0);
        _sender = new TcpEndpoint(new TcpConfig { SendBufferSize = 1 << 20 }, in hs, 0);
        _segment = new TcpRepr
        {
            Seq = new SeqNumber(5001), Ack = new SeqNumber(1001), Flags = TcpFlags.Ack | TcpFlags.Psh, Window = 2048,
            Options = TcpOptionsRepr.None,
        };
        _segment.Options.HasTimestamp = Timestamps;
        _segment.Options.TsVal = 1;
    }

    [Benchmark(Baseline = true)]
    public int ProcessBareAck()
    {
        TcpRepr ack = _segment;
        ack.Seq = _receiver.ReceiveNext;
        _receiver.Process(in ack, default, ++_now);
        var sink = new CountingSink();
        _receiver.Dispatch(ref sink, _now);
        return sink.Segments;
    }

    [Benchmark]
    public int ProcessInOrderSegmentAndConsume()
    {
        TcpRepr seg = _segment;
        seg.Seq = _receiver.ReceiveNext;
        _receiver.Process(in seg, _payload, ++_now);
        _receiver.ConsumeReceived(_receiver.ReceiveAvailable);
        var sink = new CountingSink();
        _receiver.Dispatch(ref sink, _now);
        return sink.Segments;
    }

    /// <summary>Queue 64 KiB, emit it (cwnd/rwnd permitting), then acknowledge all of it.</summary>
    [Benchmark(OperationsPerInvoke = 45)]
    public int SendBulkAndAck()
    {
        _sender.Send(_bulk);
        var sink = new CountingSink();
        _sender.Dispatch(ref sink, ++_now);
        TcpRepr ack = _segment;
        ack.Seq = new SeqNumber(5001);
        ack.Ack = _sender.SendNext;
        _sender.Process(in ack, default, _now);
        return sink.Bytes;
    }
}
