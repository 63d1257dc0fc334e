using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using CookieProxy.Diagnostics;

namespace CookieProxy.Wire;

/// <summary>EtherType values (IEEE 802.3, IEEE 802.1Q; IANA ieee-802-numbers).</summary>
public static class EtherType
{
    public const ushort Ipv4 = 0x0800;
    public const ushort Arp = 0x0806;
    public const ushort Vlan = 0x8100;      // IEEE 802.1Q C-tag
    public const ushort Ipv6 = 0x86DD;
    public const ushort QinQ = 0x88A8;      // IEEE 802.1ad S-tag
    public const ushort QinQLegacy = 0x9100; // pre-standard S-tag still emitted by some switches

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsVlanTag(ushort type) => type == Vlan || type == QinQ || type == QinQLegacy;
}

/// <summary>
/// A view over an Ethernet II frame (no FCS; capture hands us frames without it). VLAN tags follow the two
/// MAC addresses as 4-byte (TPID, TCI) pairs; <see cref="Walk"/> steps over at most <see cref="MaxVlanTags"/>.
/// </summary>
public readonly ref struct EthernetFrame
{
    public const int DstOffset = 0;
    public const int SrcOffset = 6;
    public const int EtherTypeOffset = 12;
    public const int HeaderLength = 14;
    public const int VlanTagLength = 4;
    public const int MacLength = 6;

    /// <summary>802.1Q plus 802.1ad (QinQ): deeper stacks are not something a client-facing port sees.</summary>
    public const int MaxVlanTags = 2;

    private readonly Span<byte> _buffer;

    public EthernetFrame(Span<byte> buffer) => _buffer = buffer;

    public Span<byte> Buffer => _buffer;

    /// <summary>Destination MAC as a 48-bit big-endian number.</summary>
    public ulong DstMac
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ReadMac(_buffer.Slice(DstOffset));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => WriteMac(_buffer.Slice(DstOffset), value);
    }

    public ulong SrcMac
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ReadMac(_buffer.Slice(SrcOffset));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => WriteMac(_buffer.Slice(SrcOffset), value);
    }

    /// <summary>The EtherType/TPID right after the MACs (a VLAN TPID when tagged).</summary>
    public ushort EtherType
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => BinaryPrimitives.ReadUInt16BigEndian(_buffer.Slice(EtherTypeOffset));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => BinaryPrimitives.WriteUInt16BigEndian(_buffer.Slice(EtherTypeOffset), value);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ulong ReadMac(ReadOnlySpan<byte> b) =>
        ((ulong)BinaryPrimitives.ReadUInt16BigEndian(b) << 32) | BinaryPrimitives.ReadUInt32BigEndian(b.Slice(2));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WriteMac(Span<byte> b, ulong mac)
    {
        BinaryPrimitives.WriteUInt32BigEndian(b.Slice(2), (uint)mac);
        BinaryPrimitives.WriteUInt16BigEndian(b, (ushort)(mac >> 32));
    }

    /// <summary>
    /// Steps over the MACs and up to two VLAN tags. Returns the header length (L3 offset), the tag count, the
    /// outer and inner tags (TPID/TCI, 0 when absent) and the payload EtherType.
    /// </summary>
    public static DropReason Walk(ReadOnlySpan<byte> frame, out EthernetHeaderInfo info)
    {
        info = default;
        if (frame.Length < HeaderLength)
        {
            return DropReason.FrameTooShort;
        }

        int offset = EtherTypeOffset;
        ushort type = BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(offset));
        int tags = 0;
        while (Wire.EtherType.IsVlanTag(type))
        {
            if (tags == MaxVlanTags)
            {
                return DropReason.VlanStackTooDeep;
            }
            if (frame.Length < offset + VlanTagLength + 2)
            {
                return DropReason.VlanTooShort;
            }
            ushort tci = BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(offset + 2));
            if (tags == 0)
            {
                info.OuterTpid = type;
                info.OuterTci = tci;
            }
            else
            {
                info.InnerTpid = type;
                info.InnerTci = tci;
            }
            tags++;
            offset += VlanTagLength;
            type = BinaryPrimitives.ReadUInt16BigEndian(frame.Slice(offset));
        }

        info.VlanCount = (byte)tags;
        info.EtherType = type;
        info.HeaderLength = (byte)(offset + 2);
        return DropReason.None;
    }
}

/// <summary>What <see cref="EthernetFrame.Walk"/> found.</summary>
public struct EthernetHeaderInfo
{
    public byte HeaderLength;
    public byte VlanCount;
    public ushort EtherType;
    public ushort OuterTpid;
    public ushort OuterTci;
    public ushort InnerTpid;
    public ushort InnerTci;
}
