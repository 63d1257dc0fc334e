using System.Runtime.InteropServices;
using CookieProxy.Io;
using CookieProxy.Platform;
using static CookieProxy.Platform.Interop.PacketSocket;

namespace CookieProxy.Tests.Platform;

/// <summary>The ring walker over blocks laid out in ordinary memory the way the kernel lays them out.</summary>
public sealed unsafe class TPacketV3RingTests : IDisposable
{
    private const int BlockSize = 64 * 1024;
    private const int BlockCount = 4;
    private readonly byte* _ring = (byte*)NativeMemory.AlignedAlloc(BlockSize * BlockCount, 4096);

    public TPacketV3RingTests() => NativeMemory.Clear(_ring, BlockSize * BlockCount);

    public void Dispose() => NativeMemory.AlignedFree(_ring);

    private tpacket_block_desc* Block(int i) => (tpacket_block_desc*)(_ring + i * BlockSize);

    private static byte[] Frame(int index, int length = 60)
    {
        var frame = new byte[length];
        for (int i = 0; i < length; i++)
        {
            frame[i] = (byte)(index * 7 + i);
        }
        frame[12] = 0x08; // IPv4 ethertype
        frame[13] = 0x00;
        return frame;
    }

    private void FillBlock(int block, int firstIndex, int count)
    {
        var writer = new TPacketV3BlockWriter((byte*)Block(block), BlockSize);
        for (int i = 0; i < count; i++)
        {
            Assert.True(writer.TryAppend(Frame(firstIndex + i, 60 + i)));
        }
        writer.Publish();
    }

    [Fact]
    public void NothingIsReadWhileTheKernelOwnsTheBlock()
    {
        var ring = new TPacketV3Ring(_ring, BlockSize, BlockCount);
        var batch = new FrameBatch(8);
        Assert.Equal(0, ring.Drain(batch));
        Assert.False(ring.HasUserBlock);
    }

    [Fact]
    public void FramesAreCopiedInOrderAndTheBlockIsHandedBack()
    {
        FillBlock(0, 0, 5);
        FillBlock(1, 5, 3);
        var ring = new TPacketV3Ring(_ring, BlockSize, BlockCount);
        var batch = new FrameBatch(16);

        Assert.Equal(8, ring.Drain(batch));

        for (int i = 0; i < 8; i++)
        {
            Assert.Equal(Frame(i, 60 + (i < 5 ? i : i - 5)), batch[i].ToArray());
            Assert.Equal(FrameFlags.None, batch.GetFlags(i));
        }
        Assert.Equal(TP_STATUS_KERNEL, Block(0)->bh1.block_status);
        Assert.Equal(TP_STATUS_KERNEL, Block(1)->bh1.block_status);
    }

    [Fact]
    public void AFullBatchStopsMidBlockAndTheNextDrainResumesThere()
    {
        FillBlock(0, 0, 5);
        var ring = new TPacketV3Ring(_ring, BlockSize, BlockCount);
        var batch = new FrameBatch(3);

        Assert.Equal(3, ring.Drain(batch));
        Assert.Equal(TP_STATUS_USER, Block(0)->bh1.block_status & TP_STATUS_USER);

        batch.Clear();
        Assert.Equal(2, ring.Drain(batch));
        Assert.Equal(Frame(3, 63), batch[0].ToArray());
        Assert.Equal(Frame(4, 64), batch[1].ToArray());
        Assert.Equal(TP_STATUS_KERNEL, Block(0)->bh1.block_status);
    }

    [Fact]
    public void TheWalkWrapsAroundTheRing()
    {
        var ring = new TPacketV3Ring(_ring, BlockSize, BlockCount);
        var batch = new FrameBatch(4);
        for (int round = 0; round < BlockCount * 2 + 1; round++)
        {
            FillBlock(round % BlockCount, round, 1);
            batch.Clear();
            Assert.Equal(1, ring.Drain(batch));
            Assert.Equal(Frame(round, 60), batch[0].ToArray());
        }
    }

    [Fact]
    public void StatusBitsBecomeFrameFlags()
    {
        var writer = new TPacketV3BlockWriter((byte*)Block(0), BlockSize);
        writer.TryAppend(Frame(0), TP_STATUS_USER | TP_STATUS_CSUMNOTREADY);
        writer.TryAppend(Frame(1), TP_STATUS_USER | TP_STATUS_CSUM_VALID);
        writer.TryAppend(Frame(2), TP_STATUS_USER, wireLength: 1500);
        writer.Publish();
        var ring = new TPacketV3Ring(_ring, BlockSize, BlockCount);
        var batch = new FrameBatch(8);

        Assert.Equal(3, ring.Drain(batch));

        Assert.Equal(FrameFlags.ChecksumNotReady, batch.GetFlags(0));
        Assert.Equal(FrameFlags.ChecksumValid, batch.GetFlags(1));
        Assert.Equal(FrameFlags.Truncated, batch.GetFlags(2));
    }

    [Fact]
    public void OurOwnOutgoingFramesAreSkipped()
    {
        var writer = new TPacketV3BlockWriter((byte*)Block(0), BlockSize);
        writer.TryAppend(Frame(0));
        writer.TryAppend(Frame(1), packetType: PACKET_OUTGOING);
        writer.TryAppend(Frame(2));
        writer.Publish();
        var ring = new TPacketV3Ring(_ring, BlockSize, BlockCount);
        var batch = new FrameBatch(8);

        Assert.Equal(2, ring.Drain(batch));

        Assert.Equal(Frame(2), batch[1].ToArray());
        Assert.Equal(1, ring.SkippedOutgoing);
    }

    [Fact]
    public void AStrippedVlanTagIsPutBack()
    {
        byte[] untagged = Frame(9, 64);
        var writer = new TPacketV3BlockWriter((byte*)Block(0), BlockSize);
        writer.TryAppend(untagged, TP_STATUS_USER | TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID, vlanTci: 0x2064, vlanTpid: 0x88A8);
        writer.Publish();
        var ring = new TPacketV3Ring(_ring, BlockSize, BlockCount);
        var batch = new FrameBatch(8);

        Assert.Equal(1, ring.Drain(batch));

        byte[] expected = [.. untagged[..12], 0x88, 0xA8, 0x20, 0x64, .. untagged[12..]];
        Assert.Equal(expected, batch[0].ToArray());
    }

    [Fact]
    public void AHeaderPointingOutsideTheBlockEndsTheBlockInsteadOfReadingPastIt()
    {
        FillBlock(0, 0, 2);
        var first = (tpacket3_hdr*)((byte*)Block(0) + TPacketV3BlockWriter.FirstFrameOffset);
        first->tp_next_offset = BlockSize; // second header would lie outside the block
        var ring = new TPacketV3Ring(_ring, BlockSize, BlockCount);
        var batch = new FrameBatch(8);

        Assert.Equal(1, ring.Drain(batch));

        Assert.Equal(1, ring.CorruptBlocks);
        Assert.Equal(TP_STATUS_KERNEL, Block(0)->bh1.block_status);
    }
}
