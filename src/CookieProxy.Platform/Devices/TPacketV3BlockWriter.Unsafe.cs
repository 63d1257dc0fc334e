using static CookieProxy.Platform.Interop.PacketSocket;

namespace CookieProxy.Platform;

/// <summary>
/// Lays out a TPACKET_V3 block in memory the way the kernel does (net/packet/af_packet.c, prb_fill_curr_block):
/// a block descriptor, then per frame a tpacket3_hdr, a sockaddr_ll and the frame at tp_mac, each frame
/// 16-byte aligned and chained by tp_next_offset. For ring-walker tests and benchmarks without a socket.
/// </summary>
internal unsafe struct TPacketV3BlockWriter
{
    /// <summary>BLK_PLUS_PRIV(0): the descriptor rounded to 8 bytes.</summary>
    public const uint FirstFrameOffset = 48;

    /// <summary>TPACKET_ALIGN(TPACKET3_HDRLEN): header (48) + sockaddr_ll (20), aligned; NET_IP_ALIGN ignored.</summary>
    public const uint MacOffset = 80;

    private readonly byte* _block;
    private readonly int _blockSize;
    private uint _offset;
    private tpacket3_hdr* _last;

    public TPacketV3BlockWriter(byte* block, int blockSize)
    {
        _block = block;
        _blockSize = blockSize;
        var desc = (tpacket_block_desc*)block;
        *desc = default;
        desc->version = TPACKET_V3;
        desc->bh1.offset_to_first_pkt = FirstFrameOffset;
        _offset = FirstFrameOffset;
        _last = null;
    }

    /// <summary>Appends one frame; false when the block is full.</summary>
    public bool TryAppend(ReadOnlySpan<byte> frame, uint status = TP_STATUS_USER, byte packetType = 0,
        uint vlanTci = 0, ushort vlanTpid = 0, uint wireLength = 0)
    {
        uint size = TPACKET_ALIGN(MacOffset + (uint)frame.Length);
        if (_offset + size > (uint)_blockSize)
        {
            return false;
        }
        var header = (tpacket3_hdr*)(_block + _offset);
        *header = default;
        header->tp_snaplen = (uint)frame.Length;
        header->tp_len = wireLength == 0 ? (uint)frame.Length : wireLength;
        header->tp_status = status;
        header->tp_mac = (ushort)MacOffset;
        header->tp_net = (ushort)(MacOffset + 14);
        header->hv1.tp_vlan_tci = vlanTci;
        header->hv1.tp_vlan_tpid = vlanTpid;
        var address = (sockaddr_ll*)((byte*)header + 48);
        *address = default;
        address->sll_family = AF_PACKET;
        address->sll_pkttype = packetType;
        frame.CopyTo(new Span<byte>((byte*)header + MacOffset, frame.Length));
        if (_last != null)
        {
            _last->tp_next_offset = (uint)((byte*)header - (byte*)_last);
        }
        _last = header;
        _offset += size;
        ((tpacket_block_desc*)_block)->bh1.num_pkts++;
        return true;
    }

    /// <summary>Hands the block to user space: the status word is written last, with release semantics.</summary>
    public readonly void Publish()
    {
        var desc = (tpacket_block_desc*)_block;
        desc->bh1.blk_len = _offset;
        Volatile.Write(ref desc->bh1.block_status, TP_STATUS_USER);
    }
}
