using System.Runtime.InteropServices;
using BenchmarkDotNet.Attributes;
using CookieProxy.Io;
using CookieProxy.Platform;
using static CookieProxy.Platform.Interop.PacketSocket;

namespace CookieProxy.Benchmarks;

/// <summary>
/// Per-frame cost of the AF_PACKET receive path without a socket: a TPACKET_V3 block of 64 frames laid out
/// in memory as the kernel does, walked in place and copied into a <see cref="FrameBatch"/>, block handed back;
/// and the same 64 frames in TPACKET_V2 slots (the SYN ring's 256-byte slots for a SYN, the flow ring's 2 KiB
/// for a full segment), each slot's status word read and handed back on its own.
/// Baseline: the bare copy of the same 64 frames into the batch (what any backend must pay).
/// Expect 0 B allocated per operation.
/// </summary>
[MemoryDiagnoser]
public unsafe class RingBenchmarks
{
    private const int FramesPerBlock = 64;
    private const int BlockSize = 128 * 1024;

    private byte* _block;
    private TPacketV3Ring _ring;
    private byte* _slots;
    private int _slotSize;
    private TPacketV2Ring _slotRing;
    private FrameBatch _batch = null!;
    private byte[][] _frames = null!;

    /// <summary>74 bytes: a SYN with options (the proxy's hot case); 1514: a full-size data segment.</summary>
    [Params(74, 1514)]
    public int FrameBytes { get; set; }

    [GlobalSetup]
    public void Setup()
    {
        _block = (byte*)NativeMemory.AlignedAlloc(BlockSize, 4096);
        NativeMemory.Clear(_block, BlockSize);
        _frames = new byte[FramesPerBlock][];
        var writer = new TPacketV3BlockWriter(_block, BlockSize);
        for (int i = 0; i < FramesPerBlock; i++)
        {
            _frames[i] = new byte[FrameBytes];
            _frames[i].AsSpan().Fill((byte)i);
            if (!writer.TryAppend(_frames[i], TP_STATUS_USER | TP_STATUS_CSUM_VALID))
            {
                throw new InvalidOperationException("block too small");
            }
        }
        writer.Publish();
        _ring = new TPacketV3Ring(_block, BlockSize, blockCount: 1);
        _batch = new FrameBatch(FramesPerBlock);

        _slotSize = FrameBytes <= 190 ? 256 : 2048;
        _slots = (byte*)NativeMemory.AlignedAlloc((nuint)(_slotSize * FramesPerBlock), 4096);
        NativeMemory.Clear(_slots, (nuint)(_slotSize * FramesPerBlock));
        for (int i = 0; i < FramesPerBlock; i++)
        {
            TPacketV2SlotWriter.Write(_slots, _slotSize, i, _frames[i], TP_STATUS_USER | TP_STATUS_CSUM_VALID);
        }
        _slotRing = new TPacketV2Ring(_slots, _slotSize, FramesPerBlock);
    }

    [GlobalCleanup]
    public void Cleanup()
    {
        NativeMemory.AlignedFree(_block);
        NativeMemory.AlignedFree(_slots);
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = FramesPerBlock)]
    public int CopyOnly()
    {
        _batch.Clear();
        byte[][] frames = _frames;
        for (int i = 0; i < frames.Length; i++)
        {
            _batch.TryAdd(frames[i], FrameFlags.ChecksumValid);
        }
        return _batch.Count;
    }

    [Benchmark(OperationsPerInvoke = FramesPerBlock)]
    public int WalkBlock()
    {
        // Play the kernel: publish the same block again (the walker handed it back on the previous call).
        Volatile.Write(ref ((tpacket_block_desc*)_block)->bh1.block_status, TP_STATUS_USER);
        _batch.Clear();
        return _ring.Drain(_batch);
    }

    [Benchmark(OperationsPerInvoke = FramesPerBlock)]
    public int WalkSlots()
    {
        // Play the kernel: hand every slot to user space again (the walker handed them back on the previous call).
        for (int i = 0; i < FramesPerBlock; i++)
        {
            Volatile.Write(ref ((tpacket2_hdr*)(_slots + i * _slotSize))->tp_status, TP_STATUS_USER | TP_STATUS_CSUM_VALID);
        }
        _batch.Clear();
        var none = default(NoCopySource);
        return _slotRing.Drain(_batch, ref none);
    }
}
