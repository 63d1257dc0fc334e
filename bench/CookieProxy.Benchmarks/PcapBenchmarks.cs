using System.Buffers.Binary;
using BenchmarkDotNet.Attributes;
using CookieProxy.Io;
using CookieProxy.Platform;
using SharpPcap;
using SharpPcap.LibPcap;
using PcapDevice = CookieProxy.Platform.PcapDevice;

namespace CookieProxy.Benchmarks;

/// <summary>
/// The libpcap capture device (<see cref="PcapDevice"/>, on SharpPcap) against SharpPcap's own per-packet calls,
/// on the loopback interface: 64 SYN-sized frames injected, then received. One operation = one frame.
/// <list type="bullet">
/// <item><see cref="DeviceSendAndReceive"/>: what the proxy runs on Linux (the 64 frames queued, one sendmmsg on
/// libpcap's descriptor at Flush, then poll + pcap_next_ex through SharpPcap's GetNextPacketPointers into a
/// FrameBatch). Expect 0 B per frame.</item>
/// <item><see cref="DeviceInjectAndReceive"/>: the same with one pcap_inject per frame, what BSD/macOS run
/// (<see cref="PcapSendMode.Inject"/>). The difference is the system calls batching saves.</item>
/// <item><see cref="SharpPcapSendPacketAndGetNextPacket"/>: the same frames through SharpPcap's
/// SendPacket(ReadOnlySpan) and GetNextPacket(out PacketCapture).</item>
/// <item>The two Refused benchmarks: a frame the interface refuses (larger than lo's MTU: EMSGSIZE), as a flood that
/// fills a BSD interface queue (ENOBUFS) makes them: pcap_inject returns -1, SharpPcap's SendPacket throws.</item>
/// </list>
/// Needs root (or CAP_NET_RAW) to capture on lo. Run:
/// <c>dotnet run -c Release --project bench/CookieProxy.Benchmarks -- --filter '*PcapBenchmarks*'</c>.
/// </summary>
[MemoryDiagnoser]
public class PcapBenchmarks
{
    private const int Frames = 64;
    private const ushort Port = 9;
    private const string Filter = "tcp and dst host 198.18.77.1 and dst port 9";

    private PcapDevice? _device;
    private LibPcapLiveDevice? _sharpPcap;
    private FrameBatch _batch = null!;
    private byte[] _frame = null!;
    private byte[] _tooLarge = null!;

    // Each benchmark opens only the device it measures: a second capture on lo with the same filter would
    // take every frame too and share the kernel's work.
    [GlobalSetup(Targets = [nameof(DeviceSendAndReceive), nameof(DeviceSendRefused)])]
    public void SetupDevice()
    {
        MakeFrames();
        _device = new PcapDevice("lo", Filter);
        _batch = new FrameBatch(Frames);
    }

    [GlobalSetup(Target = nameof(DeviceInjectAndReceive))]
    public void SetupInjectingDevice()
    {
        MakeFrames();
        _device = new PcapDevice("lo", Filter, new PacketDeviceOptions { PcapSend = PcapSendMode.Inject });
        _batch = new FrameBatch(Frames);
    }

    [GlobalSetup(Targets = [nameof(SharpPcapSendPacketAndGetNextPacket), nameof(SharpPcapSendPacketRefused)])]
    public void SetupSharpPcap()
    {
        MakeFrames();
        _sharpPcap = FindLoopback();
        _sharpPcap.Open(new DeviceConfiguration { Snaplen = 65535, ReadTimeout = 1, Immediate = true });
        _sharpPcap.Filter = Filter;
        // As the device does: inbound only, or lo shows each injected frame twice (outgoing and incoming).
        _ = Interop.Pcap.pcap_setdirection(_sharpPcap.Handle.DangerousGetHandle(), Interop.Pcap.PCAP_D_IN);
    }

    private void MakeFrames()
    {
        _frame = SynFrame();
        _tooLarge = new byte[70_000]; // lo's MTU is 65536: the kernel refuses it (EMSGSIZE)
        _frame.CopyTo(_tooLarge, 0);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        _device?.Dispose();
        _sharpPcap?.Close();
    }

    private static LibPcapLiveDevice FindLoopback()
    {
        foreach (LibPcapLiveDevice d in LibPcapLiveDeviceList.New())
        {
            if (d.Name == "lo")
            {
                return d;
            }
        }
        throw new InvalidOperationException("no 'lo' device");
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Frames)]
    public int DeviceSendAndReceive() => SendAndReceive();

    [Benchmark(OperationsPerInvoke = Frames)]
    public int DeviceInjectAndReceive() => SendAndReceive();

    private int SendAndReceive()
    {
        for (int i = 0; i < Frames; i++)
        {
            _device!.Send(_frame);
        }
        _device!.Flush();
        int received = 0;
        while (received < Frames)
        {
            int n = _device!.Receive(_batch, 100);
            if (n == 0)
            {
                throw new InvalidOperationException($"lost frames: {received} of {Frames}");
            }
            received += n;
        }
        return received;
    }

    /// <summary>
    /// Lock-step, one frame sent then one read: GetNextPacket polls the descriptor before pcap_next_ex, but libpcap
    /// keeps the rest of a TPACKET_V3 block in user space, where poll() does not see it. Sending 64 and then reading
    /// returned ReadTimeout after 32 frames here, with the other 32 still buffered (PcapDevice drains first, then polls).
    /// </summary>
    [Benchmark(OperationsPerInvoke = Frames)]
    public int SharpPcapSendPacketAndGetNextPacket()
    {
        int length = 0;
        for (int i = 0; i < Frames; i++)
        {
            _sharpPcap!.SendPacket(_frame);
            GetPacketStatus status = _sharpPcap.GetNextPacket(out PacketCapture capture);
            if (status != GetPacketStatus.PacketRead)
            {
                throw new InvalidOperationException($"frame {i} of {Frames} not read: {status}");
            }
            length += capture.Data.Length;
        }
        return length;
    }

    [Benchmark(OperationsPerInvoke = Frames)]
    public int DeviceSendRefused()
    {
        int refused = 0;
        for (int i = 0; i < Frames; i++)
        {
            // Longer than the Linux send queue takes: each goes alone through pcap_inject, as on BSD/macOS.
            refused += _device!.Send(_tooLarge) ? 0 : 1;
        }
        return refused;
    }

    [Benchmark(OperationsPerInvoke = Frames)]
    public int SharpPcapSendPacketRefused()
    {
        int refused = 0;
        for (int i = 0; i < Frames; i++)
        {
            try
            {
                _sharpPcap!.SendPacket(_tooLarge);
            }
            catch (PcapException)
            {
                refused++;
            }
        }
        return refused;
    }

    /// <summary>Ethernet + IPv4 + TCP SYN with a 20-byte option block: 74 bytes, the proxy's hot frame.</summary>
    private static byte[] SynFrame()
    {
        var f = new byte[74];
        BinaryPrimitives.WriteUInt16BigEndian(f.AsSpan(12), 0x0800);
        Span<byte> ip = f.AsSpan(14);
        ip[0] = 0x45;
        BinaryPrimitives.WriteUInt16BigEndian(ip[2..], 60);
        ip[8] = 64;
        ip[9] = 6;
        ip[12..16].CopyFrom([198, 18, 77, 2]);
        ip[16..20].CopyFrom([198, 18, 77, 1]);
        Span<byte> tcp = ip[20..];
        BinaryPrimitives.WriteUInt16BigEndian(tcp, 40000);
        BinaryPrimitives.WriteUInt16BigEndian(tcp[2..], Port);
        tcp[12] = 10 << 4; // 40-byte header
        tcp[13] = 0x02;    // SYN
        BinaryPrimitives.WriteUInt16BigEndian(tcp[14..], 64240);
        return f;
    }
}

file static class SpanExtensions
{
    public static void CopyFrom(this Span<byte> destination, ReadOnlySpan<byte> source) => source.CopyTo(destination);
}
