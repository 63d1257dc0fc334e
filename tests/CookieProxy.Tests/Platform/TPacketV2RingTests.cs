using System.Runtime.InteropServices;
using CookieProxy.Io;
using CookieProxy.Platform;
using static CookieProxy.Platform.Interop.PacketSocket;

namespace CookieProxy.Tests.Platform;

/// <summary>The TPACKET_V2 walker over slots laid out in ordinary memory the way the kernel fills them.</summary>
public sealed unsafe class TPacketV2RingTests : IDisposable
{
    private const int FrameSize = 256;
    private const int FrameCount = 8;
    private readonly byte* _ring = (byte*)NativeMemory.AlignedAlloc(FrameSize * FrameCount, 4096);

    public TPacketV2RingTests() => NativeMemory.Clear(_ring, FrameSize * FrameCount);

    public void Dispose() => NativeMemory.AlignedFree(_ring);

    private tpacket2_hdr* Slot(int i) => (tpacket2_hdr*)(_ring + i * FrameSize);

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

    private void Fill(int slot, byte[] frame, uint status = TP_STATUS_USER, byte packetType = 0, ushort vlanTci = 0,
        ushort vlanTpid = 0, uint wireLength = 0) =>
        TPacketV2SlotWriter.Write(_ring, FrameSize, slot, frame, status, packetType, vlanTci, vlanTpid, wireLength);

    private TPacketV2Ring Ring() => new(_ring, FrameSize, FrameCount);

    private static int Drain(ref TPacketV2Ring ring, FrameBatch batch)
    {
        var none = default(NoCopySource);
        return ring.Drain(batch, ref none);
    }

    /// <summary>The socket's receive queue as PACKET_COPY_THRESH fills it: whole frames, in slot order.</summary>
    private struct FakeQueue : IRingCopySource
    {
        public Queue<byte[]> Frames;
        public int Discarded;

        public int ReceiveWhole(Span<byte> destination)
        {
            if (Frames.Count == 0)
            {
                return -1;
            }
            byte[] frame = Frames.Dequeue();
            int n = Math.Min(frame.Length, destination.Length);
            frame.AsSpan(0, n).CopyTo(destination);
            return n;
        }

        public void Discard()
        {
            Frames.Dequeue();
            Discarded++;
        }
    }

    [Fact]
    public void NothingIsReadWhileTheKernelOwnsTheSlot()
    {
        TPacketV2Ring ring = Ring();
        var batch = new FrameBatch(8);
        Assert.Equal(0, Drain(ref ring, batch));
        Assert.False(ring.HasUserFrame);
    }

    [Fact]
    public void FramesAreCopiedInOrderAndEverySlotIsHandedBack()
    {
        for (int i = 0; i < 5; i++)
        {
            Fill(i, Frame(i, 60 + i));
        }
        TPacketV2Ring ring = Ring();
        Assert.True(ring.HasUserFrame);
        var batch = new FrameBatch(16);

        Assert.Equal(5, Drain(ref ring, batch));

        for (int i = 0; i < 5; i++)
        {
            Assert.Equal(Frame(i, 60 + i), batch[i].ToArray());
            Assert.Equal(FrameFlags.None, batch.GetFlags(i));
            Assert.Equal(TP_STATUS_KERNEL, Slot(i)->tp_status);
        }
        Assert.False(ring.HasUserFrame);
    }

    [Fact]
    public void AFullBatchLeavesTheRestForTheNextDrain()
    {
        for (int i = 0; i < 5; i++)
        {
            Fill(i, Frame(i));
        }
        TPacketV2Ring ring = Ring();
        var batch = new FrameBatch(3);

        Assert.Equal(3, Drain(ref ring, batch));
        Assert.Equal(TP_STATUS_USER, Slot(3)->tp_status);

        batch.Clear();
        Assert.Equal(2, Drain(ref ring, batch));
        Assert.Equal(Frame(3), batch[0].ToArray());
        Assert.Equal(Frame(4), batch[1].ToArray());
        Assert.Equal(TP_STATUS_KERNEL, Slot(4)->tp_status);
    }

    [Fact]
    public void TheWalkWrapsAroundTheRing()
    {
        TPacketV2Ring ring = Ring();
        var batch = new FrameBatch(4);
        for (int round = 0; round < FrameCount * 2 + 1; round++)
        {
            Fill(round % FrameCount, Frame(round));
            batch.Clear();
            Assert.Equal(1, Drain(ref ring, batch));
            Assert.Equal(Frame(round), batch[0].ToArray());
        }
    }

    [Fact]
    public void AFrameLongerThanItsSlotArrivesTruncatedAndFlagged()
    {
        byte[] big = Frame(1, 400);
        Fill(0, big);
        TPacketV2Ring ring = Ring();
        var batch = new FrameBatch(4);

        Assert.Equal(1, Drain(ref ring, batch));

        Assert.Equal(big[..(FrameSize - (int)TPacketV2SlotWriter.MacOffset)], batch[0].ToArray());
        Assert.Equal(FrameFlags.Truncated, batch.GetFlags(0));
    }

    [Fact]
    public void StatusBitsBecomeFrameFlags()
    {
        Fill(0, Frame(0), TP_STATUS_USER | TP_STATUS_CSUMNOTREADY);
        Fill(1, Frame(1), TP_STATUS_USER | TP_STATUS_CSUM_VALID);
        Fill(2, Frame(2), TP_STATUS_USER, wireLength: 1500);
        TPacketV2Ring ring = Ring();
        var batch = new FrameBatch(8);

        Assert.Equal(3, Drain(ref ring, batch));

        Assert.Equal(FrameFlags.ChecksumNotReady, batch.GetFlags(0));
        Assert.Equal(FrameFlags.ChecksumValid, batch.GetFlags(1));
        Assert.Equal(FrameFlags.Truncated, batch.GetFlags(2));
    }

    [Fact]
    public void OurOwnOutgoingFramesAreSkipped()
    {
        Fill(0, Frame(0));
        Fill(1, Frame(1), packetType: PACKET_OUTGOING);
        Fill(2, Frame(2));
        TPacketV2Ring ring = Ring();
        var batch = new FrameBatch(8);

        Assert.Equal(2, Drain(ref ring, batch));

        Assert.Equal(Frame(2), batch[1].ToArray());
        Assert.Equal(1, ring.SkippedOutgoing);
        Assert.Equal(TP_STATUS_KERNEL, Slot(1)->tp_status);
    }

    [Fact]
    public void AStrippedVlanTagIsPutBack()
    {
        byte[] untagged = Frame(9, 64);
        Fill(0, untagged, TP_STATUS_USER | TP_STATUS_VLAN_VALID | TP_STATUS_VLAN_TPID_VALID, vlanTci: 0x2064, vlanTpid: 0x88A8);
        Fill(1, untagged, TP_STATUS_USER | TP_STATUS_VLAN_VALID, vlanTci: 0x0005);
        TPacketV2Ring ring = Ring();
        var batch = new FrameBatch(8);

        Assert.Equal(2, Drain(ref ring, batch));

        Assert.Equal((byte[])[.. untagged[..12], 0x88, 0xA8, 0x20, 0x64, .. untagged[12..]], batch[0].ToArray());
        // Without TP_STATUS_VLAN_TPID_VALID the tag is 802.1Q.
        Assert.Equal((byte[])[.. untagged[..12], 0x81, 0x00, 0x00, 0x05, .. untagged[12..]], batch[1].ToArray());
    }

    [Fact]
    public void ASlotMarkedCopyIsReplacedByItsWholeFrameFromTheQueue()
    {
        byte[] whole = Frame(3, 9000);
        Fill(0, Frame(0));
        Fill(1, whole, TP_STATUS_USER | TP_STATUS_COPY);
        Fill(2, Frame(2));
        TPacketV2Ring ring = Ring();
        var queue = new FakeQueue { Frames = new Queue<byte[]>([whole]) };
        var batch = new FrameBatch(8);

        Assert.Equal(3, ring.Drain(batch, ref queue));

        Assert.Equal(Frame(0), batch[0].ToArray());
        Assert.Equal(whole, batch[1].ToArray());
        Assert.Equal(FrameFlags.None, batch.GetFlags(1));
        Assert.Equal(Frame(2), batch[2].ToArray());
        Assert.Equal(1, ring.WholeCopies);
        Assert.Empty(queue.Frames);
    }

    [Fact]
    public void AWholeFrameGetsItsVlanTagBackToo()
    {
        byte[] whole = Frame(4, 3000);
        Fill(0, whole, TP_STATUS_USER | TP_STATUS_COPY | TP_STATUS_VLAN_VALID, vlanTci: 0x0064);
        TPacketV2Ring ring = Ring();
        var queue = new FakeQueue { Frames = new Queue<byte[]>([whole]) };
        var batch = new FrameBatch(8);

        Assert.Equal(1, ring.Drain(batch, ref queue));

        Assert.Equal((byte[])[.. whole[..12], 0x81, 0x00, 0x00, 0x64, .. whole[12..]], batch[0].ToArray());
    }

    [Fact]
    public void ACopySlotWithNothingQueuedFallsBackToTheTruncatedBytes()
    {
        byte[] whole = Frame(5, 3000);
        Fill(0, whole, TP_STATUS_USER | TP_STATUS_COPY);
        TPacketV2Ring ring = Ring();
        var queue = new FakeQueue { Frames = new Queue<byte[]>() };
        var batch = new FrameBatch(8);

        Assert.Equal(1, ring.Drain(batch, ref queue));

        Assert.Equal(whole[..(FrameSize - (int)TPacketV2SlotWriter.MacOffset)], batch[0].ToArray());
        Assert.Equal(FrameFlags.Truncated, batch.GetFlags(0));
    }

    [Fact]
    public void AWholeFrameThatDoesNotFitTheBatchWaitsForTheNextDrain()
    {
        byte[] first = Frame(6, 20_000);
        byte[] second = Frame(7, 20_000);
        Fill(0, first, TP_STATUS_USER | TP_STATUS_COPY);
        Fill(1, second, TP_STATUS_USER | TP_STATUS_COPY);
        TPacketV2Ring ring = Ring();
        var queue = new FakeQueue { Frames = new Queue<byte[]>([first, second]) };
        // Four slots of 2 KiB plus one 20 000-byte frame: the second long frame does not fit behind the first.
        var batch = new FrameBatch(4, maxFrameBytes: 20_000);

        Assert.Equal(1, ring.Drain(batch, ref queue));
        Assert.Equal(first, batch[0].ToArray());
        Assert.Equal(TP_STATUS_USER | TP_STATUS_COPY, Slot(1)->tp_status);    // still ours, untouched
        Assert.Single(queue.Frames);

        batch.Clear();
        Assert.Equal(1, ring.Drain(batch, ref queue));
        Assert.Equal(second, batch[0].ToArray());
        Assert.Equal(TP_STATUS_KERNEL, Slot(1)->tp_status);
    }

    [Fact]
    public void ASkippedCopySlotStillTakesItsWholeFrameOffTheQueue()
    {
        byte[] outgoing = Frame(7, 3000);
        byte[] next = Frame(8, 4000);
        Fill(0, outgoing, TP_STATUS_USER | TP_STATUS_COPY, packetType: PACKET_OUTGOING);
        Fill(1, next, TP_STATUS_USER | TP_STATUS_COPY);
        TPacketV2Ring ring = Ring();
        var queue = new FakeQueue { Frames = new Queue<byte[]>([outgoing, next]) };
        var batch = new FrameBatch(8);

        Assert.Equal(1, ring.Drain(batch, ref queue));

        Assert.Equal(1, queue.Discarded);
        Assert.Equal(next, batch[0].ToArray());
    }

    [Fact]
    public void AHeaderPointingOutsideTheSlotIsSkippedNotRead()
    {
        Fill(0, Frame(0));
        Fill(1, Frame(1));
        Slot(0)->tp_snaplen = FrameSize; // with tp_mac 66 the frame would run past the slot
        TPacketV2Ring ring = Ring();
        var batch = new FrameBatch(8);

        Assert.Equal(1, Drain(ref ring, batch));

        Assert.Equal(1, ring.CorruptFrames);
        Assert.Equal(Frame(1), batch[0].ToArray());
        Assert.Equal(TP_STATUS_KERNEL, Slot(0)->tp_status);
    }
}
