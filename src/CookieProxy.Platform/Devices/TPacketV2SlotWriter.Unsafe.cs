using static CookieProxy.Platform.Interop.PacketSocket;

namespace CookieProxy.Platform;

/// <summary>
/// Fills TPACKET_V2 slots in memory the way the kernel does (net/packet/af_packet.c, tpacket_rcv): the
/// tpacket2_hdr, the sockaddr_ll at 32, the frame at tp_mac = TPACKET_ALIGN(TPACKET2_HDRLEN + 16) - 14
/// (66 for Ethernet: the IP header 16-byte aligned), truncated to the slot, the status word written last.
/// For ring-walker tests and benchmarks without a socket.
/// </summary>
internal static unsafe class TPacketV2SlotWriter
{
    /// <summary>tp_mac of an Ethernet frame: netoff = TPACKET_ALIGN(52 + max(14, 16)) = 80, minus the 14-byte MAC header.</summary>
    public const uint MacOffset = 66;

    /// <summary>Writes <paramref name="frame"/> (without its VLAN tag, which the kernel keeps in the header) into
    /// slot <paramref name="index"/>; a frame longer than the slot is cut (TP_STATUS_COPY says a whole copy is queued).</summary>
    public static void Write(byte* ring, int frameSize, int index, ReadOnlySpan<byte> frame, uint status = TP_STATUS_USER,
        byte packetType = 0, ushort vlanTci = 0, ushort vlanTpid = 0, uint wireLength = 0)
    {
        byte* slot = ring + (nint)index * frameSize;
        var header = (tpacket2_hdr*)slot;
        int room = frameSize - (int)MacOffset;
        int snap = Math.Min(frame.Length, room);
        frame[..snap].CopyTo(new Span<byte>(slot + MacOffset, snap));
        var address = (sockaddr_ll*)(slot + 32);
        *address = default;
        address->sll_family = AF_PACKET;
        address->sll_pkttype = packetType;
        header->tp_len = wireLength != 0 ? wireLength : (uint)frame.Length;
        header->tp_snaplen = (uint)snap;
        header->tp_mac = (ushort)MacOffset;
        header->tp_net = (ushort)(MacOffset + 14);
        header->tp_vlan_tci = vlanTci;
        header->tp_vlan_tpid = vlanTpid;
        Volatile.Write(ref header->tp_status, status);
    }
}
