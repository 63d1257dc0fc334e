using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using CookieProxy.Io;
using static CookieProxy.Platform.Interop.PacketSocket;

namespace CookieProxy.Platform;

/// <summary>
/// Walks a mapped TPACKET_V3 receive ring in place (Documentation/networking/packet_mmap.rst):
/// <code>
///   ring: | block 0 | block 1 | ... | block N-1 |      each block: tpacket_block_desc, then frames
///   block: [desc: version, priv, block_status, num_pkts, offset_to_first_pkt, ...]
///          [tpacket3_hdr | sockaddr_ll | pad | frame bytes at tp_mac] -- tp_next_offset --> [next] ...
/// </code>
/// The kernel owns a block while block_status is TP_STATUS_KERNEL, fills it, then publishes it with
/// TP_STATUS_USER (after a write barrier). We read that word with an acquire load, copy the frames into the
/// batch, and hand the block back with a release store right after its last frame is copied. When the batch
/// fills mid-block we remember the position and resume there on the next call.
/// Not thread-safe: one ring, one capture thread.
/// </summary>
internal unsafe struct TPacketV3Ring
{
    private readonly byte* _ring;
    private readonly int _blockSize;
    private readonly int _blockCount;
    private int _block;
    private uint _packetIndex;
    private uint _packetOffset;

    public TPacketV3Ring(byte* ring, int blockSize, int blockCount)
    {
        _ring = ring;
        _blockSize = blockSize;
        _blockCount = blockCount;
    }

    /// <summary>Frames the kernel reported as our own transmissions (only seen without PACKET_IGNORE_OUTGOING).</summary>
    public long SkippedOutgoing { get; private set; }

    /// <summary>Blocks whose frame headers pointed outside the block (a kernel bug: never seen, but never trusted).</summary>
    public long CorruptBlocks { get; private set; }

    /// <summary>True when the block at the read position is ours: a poll() is not needed.</summary>
    public readonly bool HasUserBlock
    {
        get
        {
            var desc = (tpacket_block_desc*)(_ring + (nint)_block * _blockSize);
            return (Volatile.Read(ref desc->bh1.block_status) & TP_STATUS_USER) != 0;
        }
    }

    /// <summary>Copies frames into <paramref name="batch"/> until it is full or no user-owned block is left.</summary>
    public int Drain(FrameBatch batch)
    {
        int added = 0;
        while (!batch.IsFull)
        {
            var desc = (tpacket_block_desc*)(_ring + (nint)_block * _blockSize);
            // Acquire: the frame headers written before the kernel set TP_STATUS_USER are visible after this load.
            if ((Volatile.Read(ref desc->bh1.block_status) & TP_STATUS_USER) == 0)
            {
                break;
            }
            uint count = desc->bh1.num_pkts;
            if (_packetIndex == 0)
            {
                _packetOffset = desc->bh1.offset_to_first_pkt;
            }
            while (_packetIndex < count)
            {
                if (_packetOffset > (uint)(_blockSize - sizeof(tpacket3_hdr) - sizeof(sockaddr_ll)))
                {
                    CorruptBlocks++;
                    break;
                }
                var header = (tpacket3_hdr*)((byte*)desc + _packetOffset);
                CopyResult result = CopyFrame(header, (uint)_blockSize - _packetOffset, batch);
                if (result == CopyResult.NoRoom)
                {
                    return added;
                }
                if (result == CopyResult.Copied)
                {
                    added++;
                }
                else if (result == CopyResult.Corrupt)
                {
                    CorruptBlocks++;
                    break;
                }
                _packetIndex++;
                _packetOffset += header->tp_next_offset;
            }
            // Release: our reads of this block complete before the kernel may refill it.
            Volatile.Write(ref desc->bh1.block_status, TP_STATUS_KERNEL);
            _packetIndex = 0;
            _packetOffset = 0;
            _block = _block + 1 == _blockCount ? 0 : _block + 1;
        }
        return added;
    }

    private enum CopyResult
    {
        Copied,
        Skipped,
        NoRoom,
        Corrupt,
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private CopyResult CopyFrame(tpacket3_hdr* header, uint roomInBlock, FrameBatch batch)
    {
        uint status = header->tp_status;
        uint snapLength = header->tp_snaplen;
        uint macOffset = header->tp_mac;
        if (macOffset + (ulong)snapLength > roomInBlock)
        {
            return CopyResult.Corrupt;
        }
        // sockaddr_ll sits at TPACKET_ALIGN(sizeof(tpacket3_hdr)) (packet_mmap.rst, "Frame structure").
        var address = (sockaddr_ll*)((byte*)header + 48);
        if (address->sll_pkttype == PACKET_OUTGOING)
        {
            SkippedOutgoing++;
            return CopyResult.Skipped;
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
        if (snapLength < header->tp_len)
        {
            flags |= FrameFlags.Truncated;
        }

        var frame = new ReadOnlySpan<byte>((byte*)header + macOffset, (int)snapLength);
        // The kernel moved an 802.1Q tag into the metadata (skb_vlan_untag); put it back so the core sees
        // the frame as it was on the wire and answers on the same VLAN. libpcap does the same.
        bool tagged = (status & TP_STATUS_VLAN_VALID) != 0 && frame.Length >= 12;
        int length = frame.Length + (tagged ? 4 : 0);
        if (length > batch.MaxFrameBytes)
        {
            length = batch.MaxFrameBytes;
            flags |= FrameFlags.Truncated;
        }
        if (!batch.TryReserve(length, out Span<byte> destination))
        {
            return CopyResult.NoRoom;
        }
        if (tagged)
        {
            frame[..12].CopyTo(destination);
            ushort tpid = (status & TP_STATUS_VLAN_TPID_VALID) != 0 ? header->hv1.tp_vlan_tpid : ETH_P_8021Q;
            BinaryPrimitives.WriteUInt16BigEndian(destination[12..], tpid);
            BinaryPrimitives.WriteUInt16BigEndian(destination[14..], (ushort)header->hv1.tp_vlan_tci);
            frame[12..(length - 4)].CopyTo(destination[16..]);
        }
        else
        {
            frame[..length].CopyTo(destination);
        }
        batch.Commit(length, flags);
        return CopyResult.Copied;
    }
}
