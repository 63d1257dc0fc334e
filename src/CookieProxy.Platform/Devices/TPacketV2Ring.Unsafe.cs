using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using CookieProxy.Io;
using static CookieProxy.Platform.Interop.PacketSocket;

namespace CookieProxy.Platform;

/// <summary>
/// Where a <see cref="TPacketV2Ring"/> walker fetches the whole frame of a slot the kernel marked TP_STATUS_COPY
/// (PACKET_COPY_THRESH: a frame longer than its slot is truncated in the ring and also queued whole on the socket).
/// </summary>
internal interface IRingCopySource
{
    /// <summary>Dequeues the next queued frame into <paramref name="destination"/>: bytes written (the rest of a
    /// longer frame is dropped), or -1 when nothing is queued.</summary>
    int ReceiveWhole(Span<byte> destination);

    /// <summary>Dequeues and drops the next queued frame (its slot was skipped).</summary>
    void Discard();
}

/// <summary>A ring without PACKET_COPY_THRESH: nothing is ever queued besides the ring.</summary>
internal readonly struct NoCopySource : IRingCopySource
{
    public int ReceiveWhole(Span<byte> destination) => -1;

    public void Discard()
    {
    }
}

/// <summary>
/// Walks a mapped TPACKET_V2 receive ring in place (Documentation/networking/packet_mmap.rst): fixed frame
/// slots, each one owned by the kernel (TP_STATUS_KERNEL) or by us (TP_STATUS_USER) on its own.
/// <code>
///   ring: | slot 0 | slot 1 | ... | slot N-1 |           every slot frame_size bytes, blocks back to back
///   slot: [tpacket2_hdr: status, len, snaplen, mac, net, ...][sockaddr_ll at 32] ... [frame bytes at tp_mac]
/// </code>
/// Unlike a V3 block, a V2 slot is handed over as soon as the kernel has filled it, and the kernel wakes a
/// poll()er for every frame (tpacket_rcv calls sk_data_ready per frame for V1/V2, only per retired block for
/// V3): a frame waits for no timer. We read the status word with an acquire load, copy the frame into the
/// batch and hand the slot back with a release store. When the batch is full the slot stays ours and the next
/// call resumes there. A slot marked TP_STATUS_COPY holds a truncated frame whose whole copy waits on the
/// socket's receive queue, in slot order (both are filled under the receive-queue lock): the walker takes
/// the whole copy from <see cref="IRingCopySource"/> instead.
/// Not thread-safe: one ring, one capture thread.
/// </summary>
internal unsafe struct TPacketV2Ring
{
    /// <summary>sockaddr_ll sits at TPACKET_ALIGN(sizeof(tpacket2_hdr)) (packet_mmap.rst, "Frame structure").</summary>
    private const int AddressOffset = 32;

    private readonly byte* _ring;
    private readonly int _frameSize;
    private readonly int _frameCount;
    private int _index;

    /// <param name="ring">The mapping: the blocks back to back, each a whole number of slots.</param>
    public TPacketV2Ring(byte* ring, int frameSize, int frameCount)
    {
        _ring = ring;
        _frameSize = frameSize;
        _frameCount = frameCount;
    }

    /// <summary>Frames the kernel reported as our own transmissions (only seen without PACKET_IGNORE_OUTGOING).</summary>
    public long SkippedOutgoing { get; private set; }

    /// <summary>Slots whose header pointed outside the slot (a kernel bug: never seen, but never trusted).</summary>
    public long CorruptFrames { get; private set; }

    /// <summary>Frames taken whole from the receive queue because they were longer than a slot.</summary>
    public long WholeCopies { get; private set; }

    /// <summary>True when the slot at the read position is ours: a poll() is not needed.</summary>
    public readonly bool HasUserFrame => (Volatile.Read(ref Slot(_index)->tp_status) & TP_STATUS_USER) != 0;

    /// <summary>Copies frames into <paramref name="batch"/> until it is full or the next slot is the kernel's.</summary>
    public int Drain<TCopy>(FrameBatch batch, ref TCopy copy) where TCopy : struct, IRingCopySource
    {
        int added = 0;
        while (!batch.IsFull)
        {
            tpacket2_hdr* header = Slot(_index);
            // Acquire: the frame bytes and header fields written before TP_STATUS_USER are visible after this load.
            uint status = Volatile.Read(ref header->tp_status);
            if ((status & TP_STATUS_USER) == 0)
            {
                break;
            }
            CopyResult result = CopyFrame(header, status, batch, ref copy);
            if (result == CopyResult.NoRoom)
            {
                return added;
            }
            if (result == CopyResult.Copied)
            {
                added++;
            }
            // Release: our reads of this slot complete before the kernel may refill it.
            Volatile.Write(ref header->tp_status, TP_STATUS_KERNEL);
            _index = _index + 1 == _frameCount ? 0 : _index + 1;
        }
        return added;
    }

    private readonly tpacket2_hdr* Slot(int index) => (tpacket2_hdr*)(_ring + (nint)index * _frameSize);

    private enum CopyResult
    {
        Copied,
        Skipped,
        NoRoom,
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private CopyResult CopyFrame<TCopy>(tpacket2_hdr* header, uint status, FrameBatch batch, ref TCopy copy)
        where TCopy : struct, IRingCopySource
    {
        bool whole = (status & TP_STATUS_COPY) != 0;
        uint snapLength = header->tp_snaplen;
        uint macOffset = header->tp_mac;
        if (macOffset < AddressOffset + sizeof(sockaddr_ll) || macOffset + (ulong)snapLength > (ulong)_frameSize)
        {
            CorruptFrames++;
            return Skip(whole, ref copy);
        }
        var address = (sockaddr_ll*)((byte*)header + AddressOffset);
        if (address->sll_pkttype == PACKET_OUTGOING)
        {
            SkippedOutgoing++;
            return Skip(whole, ref copy);
        }

        FrameFlags flags = FrameFlags.None;
        if ((status & TP_STATUS_CSUMNOTREADY) != 0)
        {
            flags |= FrameFlags.ChecksumNotReady;
        }
        if ((status & TP_STATUS_CSUM_VALID) != 0)
        {
            flags |= FrameFlags.ChecksumValid;
        }
        // The kernel moved an 802.1Q tag into the metadata (skb_vlan_untag); put it back so the core sees the
        // frame as it was on the wire and answers on the same VLAN. libpcap does the same.
        bool tagged = (status & TP_STATUS_VLAN_VALID) != 0 && snapLength >= 12;
        int tag = tagged ? 4 : 0;
        var inRing = new ReadOnlySpan<byte>((byte*)header + macOffset, (int)snapLength);

        if (whole)
        {
            // The slot holds the first snaplen bytes; the whole frame (tp_len) is next on the receive queue.
            int wanted = (int)Math.Min(header->tp_len + (uint)tag, (uint)batch.MaxFrameBytes);
            if (!batch.TryReserve(wanted, out Span<byte> destination))
            {
                return CopyResult.NoRoom;
            }
            int received = copy.ReceiveWhole(destination[tag..]);
            if (received >= 12)
            {
                WholeCopies++;
                if (tagged)
                {
                    destination.Slice(4, 12).CopyTo(destination);    // MAC addresses first, then the tag
                    WriteTag(destination, header, status);
                }
                if (received < header->tp_len)
                {
                    flags |= FrameFlags.Truncated;
                }
                batch.Commit(received + tag, flags);
                return CopyResult.Copied;
            }
            // Nothing queued after all (or a runt): fall back to the truncated bytes of the slot.
        }

        if (snapLength < header->tp_len)
        {
            flags |= FrameFlags.Truncated;
        }
        int length = inRing.Length + tag;
        if (length > batch.MaxFrameBytes)
        {
            length = batch.MaxFrameBytes;
            flags |= FrameFlags.Truncated;
        }
        if (!batch.TryReserve(length, out Span<byte> target))
        {
            return CopyResult.NoRoom;
        }
        if (tagged)
        {
            inRing[..12].CopyTo(target);
            WriteTag(target, header, status);
            inRing[12..(length - 4)].CopyTo(target[16..]);
        }
        else
        {
            inRing[..length].CopyTo(target);
        }
        batch.Commit(length, flags);
        return CopyResult.Copied;
    }

    private static CopyResult Skip<TCopy>(bool whole, ref TCopy copy) where TCopy : struct, IRingCopySource
    {
        if (whole)
        {
            copy.Discard();    // keep the receive queue in step with the slots
        }
        return CopyResult.Skipped;
    }

    private static void WriteTag(Span<byte> frame, tpacket2_hdr* header, uint status)
    {
        ushort tpid = (status & TP_STATUS_VLAN_TPID_VALID) != 0 ? header->tp_vlan_tpid : ETH_P_8021Q;
        BinaryPrimitives.WriteUInt16BigEndian(frame[12..], tpid);
        BinaryPrimitives.WriteUInt16BigEndian(frame[14..], header->tp_vlan_tci);
    }
}
