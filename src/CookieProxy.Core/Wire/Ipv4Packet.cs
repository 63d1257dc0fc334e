using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using CookieProxy.Diagnostics;

namespace CookieProxy.Wire;

/// <summary>
/// A view over an IPv4 header and its payload (RFC 791 3.1). Accessors do not validate; call
/// <see cref="Validate"/> first on untrusted input.
/// </summary>
/// <remarks>
/// <code>
///  0                   1                   2                   3
///  0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
/// |Version|  IHL  |   DSCP    |ECN|          Total Length         |
/// |         Identification        |Flags|      Fragment Offset    |
/// |  Time to Live |    Protocol   |         Header Checksum       |
/// |                       Source Address                          |
/// |                    Destination Address                        |
/// |                    Options                    |    Padding    |
/// </code>
/// </remarks>
public readonly ref struct Ipv4Packet
{
    public const int VersionIhlOffset = 0;
    public const int TosOffset = 1;
    public const int TotalLengthOffset = 2;
    public const int IdentificationOffset = 4;
    public const int FlagsFragmentOffset = 6;
    public const int TtlOffset = 8;
    public const int ProtocolOffset = 9;
    public const int ChecksumOffset = 10;
    public const int SrcOffset = 12;
    public const int DstOffset = 16;
    public const int MinHeaderLength = 20;
    public const int MaxHeaderLength = 60;

    public const ushort FlagDontFragment = 0x4000;
    public const ushort FlagMoreFragments = 0x2000;
    public const ushort FragmentOffsetMask = 0x1FFF;

    private readonly Span<byte> _buffer;

    public Ipv4Packet(Span<byte> buffer) => _buffer = buffer;

    public Span<byte> Buffer => _buffer;

    public byte Version
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => (byte)(_buffer[VersionIhlOffset] >> 4);
    }

    /// <summary>Header length in 32-bit words.</summary>
    public byte Ihl
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => (byte)(_buffer[VersionIhlOffset] & 0x0F);
    }

    public int HeaderLength
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => Ihl * 4;
    }

    /// <summary>Writes version 4 and the IHL for a header of <paramref name="headerLength"/> bytes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetVersionAndHeaderLength(int headerLength) => _buffer[VersionIhlOffset] = (byte)(0x40 | (headerLength >> 2));

    /// <summary>The former TOS byte: DSCP (6 bits) and ECN (2 bits) (RFC 2474, RFC 3168).</summary>
    public byte TrafficClass
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => _buffer[TosOffset];
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => _buffer[TosOffset] = value;
    }

    public byte Dscp => (byte)(_buffer[TosOffset] >> 2);
    public byte Ecn => (byte)(_buffer[TosOffset] & 0x03);

    public ushort TotalLength
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => BinaryPrimitives.ReadUInt16BigEndian(_buffer.Slice(TotalLengthOffset));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => BinaryPrimitives.WriteUInt16BigEndian(_buffer.Slice(TotalLengthOffset), value);
    }

    public ushort Identification
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => BinaryPrimitives.ReadUInt16BigEndian(_buffer.Slice(IdentificationOffset));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => BinaryPrimitives.WriteUInt16BigEndian(_buffer.Slice(IdentificationOffset), value);
    }

    /// <summary>The raw flags + fragment offset word.</summary>
    public ushort FlagsAndFragmentOffset
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => BinaryPrimitives.ReadUInt16BigEndian(_buffer.Slice(FlagsFragmentOffset));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => BinaryPrimitives.WriteUInt16BigEndian(_buffer.Slice(FlagsFragmentOffset), value);
    }

    public bool DontFragment => (FlagsAndFragmentOffset & FlagDontFragment) != 0;
    public bool MoreFragments => (FlagsAndFragmentOffset & FlagMoreFragments) != 0;

    /// <summary>Fragment offset in 8-byte units.</summary>
    public ushort FragmentOffset => (ushort)(FlagsAndFragmentOffset & FragmentOffsetMask);

    public byte Ttl
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => _buffer[TtlOffset];
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => _buffer[TtlOffset] = value;
    }

    public byte Protocol
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => _buffer[ProtocolOffset];
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => _buffer[ProtocolOffset] = value;
    }

    public ushort HeaderChecksum
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => BinaryPrimitives.ReadUInt16BigEndian(_buffer.Slice(ChecksumOffset));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => BinaryPrimitives.WriteUInt16BigEndian(_buffer.Slice(ChecksumOffset), value);
    }

    /// <summary>Source address as a big-endian numeric value.</summary>
    public uint SrcAddress
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => BinaryPrimitives.ReadUInt32BigEndian(_buffer.Slice(SrcOffset));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => BinaryPrimitives.WriteUInt32BigEndian(_buffer.Slice(SrcOffset), value);
    }

    public uint DstAddress
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => BinaryPrimitives.ReadUInt32BigEndian(_buffer.Slice(DstOffset));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => BinaryPrimitives.WriteUInt32BigEndian(_buffer.Slice(DstOffset), value);
    }

    public Span<byte> Header => _buffer.Slice(0, HeaderLength);
    public Span<byte> Options => _buffer.Slice(MinHeaderLength, HeaderLength - MinHeaderLength);

    /// <summary>The payload as bounded by Total Length (Ethernet padding excluded).</summary>
    public Span<byte> Payload => _buffer.Slice(HeaderLength, TotalLength - HeaderLength);

    /// <summary>Recomputes the header checksum (RFC 791 3.1) over the current header.</summary>
    public void FillChecksum()
    {
        HeaderChecksum = 0;
        HeaderChecksum = Checksum.Ipv4Header(Header);
    }

    public bool VerifyChecksum() => Checksum.VerifyIpv4Header(Header);

    /// <summary>
    /// Checks version, IHL and Total Length against the buffer. A Total Length below the buffer length is
    /// accepted (Ethernet pads frames to 60 bytes, IEEE 802.3 3.2.8): the caller trims to it.
    /// </summary>
    public static DropReason Validate(ReadOnlySpan<byte> packet)
    {
        if (packet.Length < MinHeaderLength)
        {
            return DropReason.Ipv4TooShort;
        }
        byte vihl = packet[VersionIhlOffset];
        if ((vihl >> 4) != 4)
        {
            return DropReason.Ipv4BadVersion;
        }
        int headerLength = (vihl & 0x0F) * 4;
        if (headerLength < MinHeaderLength)
        {
            return DropReason.Ipv4BadHeaderLength;
        }
        if (headerLength > packet.Length)
        {
            return DropReason.Ipv4TooShort;
        }
        int totalLength = BinaryPrimitives.ReadUInt16BigEndian(packet.Slice(TotalLengthOffset));
        if (totalLength > packet.Length || totalLength < headerLength)
        {
            return DropReason.Ipv4BadTotalLength;
        }
        return DropReason.None;
    }

    /// <summary>
    /// Addresses that must never be a source (RFC 1122 3.2.1.3, RFC 1812 5.3.7): 0.0.0.0/8 ("this network"),
    /// 224.0.0.0/4 multicast and the limited broadcast 255.255.255.255.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsBadSource(uint address) =>
        (address >> 24) == 0 || (address >> 28) == 0xE || address == 0xFFFF_FFFF;
}
