using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using CookieProxy.Diagnostics;

namespace CookieProxy.Wire;

/// <summary>
/// A view over an IPv6 fixed header and what follows (RFC 8200 3). Accessors do not validate; call
/// <see cref="Validate"/> and <see cref="WalkExtensionHeaders"/> first on untrusted input.
/// </summary>
/// <remarks>
/// <code>
/// |Version| Traffic Class |           Flow Label                  |
/// |         Payload Length        |  Next Header  |   Hop Limit   |
/// |                  Source Address (128 bits)                    |
/// |               Destination Address (128 bits)                  |
/// </code>
/// </remarks>
public readonly ref struct Ipv6Packet
{
    public const int VersionClassFlowOffset = 0;
    public const int PayloadLengthOffset = 4;
    public const int NextHeaderOffset = 6;
    public const int HopLimitOffset = 7;
    public const int SrcOffset = 8;
    public const int DstOffset = 24;
    public const int HeaderLength = 40;

    /// <summary>Enough for any sane chain (HBH, DestOpts, Routing, DestOpts); bounds the work per packet.</summary>
    public const int MaxExtensionHeaders = 8;

    private readonly Span<byte> _buffer;

    public Ipv6Packet(Span<byte> buffer) => _buffer = buffer;

    public Span<byte> Buffer => _buffer;

    private uint VersionClassFlow
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => BinaryPrimitives.ReadUInt32BigEndian(_buffer);
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => BinaryPrimitives.WriteUInt32BigEndian(_buffer, value);
    }

    public byte Version => (byte)(_buffer[0] >> 4);

    public byte TrafficClass => (byte)(VersionClassFlow >> 20);

    public uint FlowLabel => VersionClassFlow & 0xF_FFFF;

    /// <summary>Writes version 6, a traffic class and a flow label.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetVersionClassFlow(byte trafficClass, uint flowLabel) =>
        VersionClassFlow = (6u << 28) | ((uint)trafficClass << 20) | (flowLabel & 0xF_FFFF);

    public ushort PayloadLength
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => BinaryPrimitives.ReadUInt16BigEndian(_buffer.Slice(PayloadLengthOffset));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => BinaryPrimitives.WriteUInt16BigEndian(_buffer.Slice(PayloadLengthOffset), value);
    }

    public byte NextHeader
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => _buffer[NextHeaderOffset];
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => _buffer[NextHeaderOffset] = value;
    }

    public byte HopLimit
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => _buffer[HopLimitOffset];
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => _buffer[HopLimitOffset] = value;
    }

    public IpAddr SrcAddress
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ReadAddress(_buffer.Slice(SrcOffset));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => WriteAddress(_buffer.Slice(SrcOffset), value);
    }

    public IpAddr DstAddress
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ReadAddress(_buffer.Slice(DstOffset));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => WriteAddress(_buffer.Slice(DstOffset), value);
    }

    public Span<byte> Payload => _buffer.Slice(HeaderLength, PayloadLength);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static IpAddr ReadAddress(ReadOnlySpan<byte> b) =>
        new(BinaryPrimitives.ReadUInt64BigEndian(b), BinaryPrimitives.ReadUInt64BigEndian(b.Slice(8)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void WriteAddress(Span<byte> b, in IpAddr a)
    {
        BinaryPrimitives.WriteUInt64BigEndian(b.Slice(8), a.Lo);
        BinaryPrimitives.WriteUInt64BigEndian(b, a.Hi);
    }

    /// <summary>
    /// Checks the version and Payload Length against the buffer; a shorter Payload Length is Ethernet padding
    /// and is trimmed by the caller. Payload Length 0 would announce a jumbogram (RFC 2675), which we refuse.
    /// </summary>
    public static DropReason Validate(ReadOnlySpan<byte> packet)
    {
        if (packet.Length < HeaderLength)
        {
            return DropReason.Ipv6TooShort;
        }
        if ((packet[0] >> 4) != 6)
        {
            return DropReason.Ipv6BadVersion;
        }
        int payloadLength = BinaryPrimitives.ReadUInt16BigEndian(packet.Slice(PayloadLengthOffset));
        if (payloadLength == 0 || payloadLength > packet.Length - HeaderLength)
        {
            return DropReason.Ipv6BadPayloadLength;
        }
        return DropReason.None;
    }

    /// <summary>
    /// Walks the extension header chain (RFC 8200 4) of a validated packet, already trimmed to 40 + Payload
    /// Length, up to the TCP header. Hop-by-Hop (first only, RFC 8200 4.1), Routing with Segments Left 0
    /// (RFC 8200 4.4: we are the final destination, so the pseudo-header's destination is the one in the
    /// fixed header) and Destination Options are skipped by their length. Fragments (a cookie SYN/ACK must
    /// not be fragmented), ESP/AH, Mobility, HIP, Shim6 and experimental headers are refused; No Next Header
    /// and any other upper layer are "not TCP".
    /// </summary>
    public static DropReason WalkExtensionHeaders(ReadOnlySpan<byte> packet, out int l4Offset)
    {
        l4Offset = 0;
        byte next = packet[NextHeaderOffset];
        int offset = HeaderLength;
        for (int count = 0; ; count++)
        {
            switch (next)
            {
                case IpProtocol.Tcp:
                    l4Offset = offset;
                    return DropReason.None;

                case IpProtocol.HopByHop:
                case IpProtocol.Ipv6Routing:
                case IpProtocol.Ipv6DestinationOptions:
                    if (count == MaxExtensionHeaders)
                    {
                        return DropReason.Ipv6ExtensionHeaderUnsupported;
                    }
                    if (next == IpProtocol.HopByHop && count != 0)
                    {
                        return DropReason.Ipv6ExtensionHeaderMalformed;
                    }
                    // Every one of these starts with (Next Header, Hdr Ext Len in 8-octet units beyond the first 8).
                    if (packet.Length - offset < 8)
                    {
                        return DropReason.Ipv6ExtensionHeaderMalformed;
                    }
                    int length = (packet[offset + 1] + 1) * 8;
                    if (length > packet.Length - offset)
                    {
                        return DropReason.Ipv6ExtensionHeaderMalformed;
                    }
                    if (next == IpProtocol.Ipv6Routing && packet[offset + 3] != 0)
                    {
                        // Segments Left != 0: we would be an intermediate hop, not the destination.
                        return DropReason.Ipv6ExtensionHeaderUnsupported;
                    }
                    next = packet[offset];
                    offset += length;
                    break;

                case IpProtocol.Ipv6Fragment:
                case IpProtocol.Esp:
                case IpProtocol.Ah:
                case IpProtocol.Mobility:
                case IpProtocol.Hip:
                case IpProtocol.Shim6:
                case IpProtocol.Experimental1:
                case IpProtocol.Experimental2:
                    return DropReason.Ipv6ExtensionHeaderUnsupported;

                default:
                    // Includes No Next Header (59), UDP, ICMPv6.
                    return DropReason.NotTcp;
            }
        }
    }

    /// <summary>
    /// Multicast (ff00::/8, RFC 4291 2.7) and the unspecified address never source a TCP segment; an
    /// IPv4-mapped address (::ffff:0:0/96) must not appear on the wire (RFC 4942 2.2) and would also be
    /// mistaken for IPv4 by <see cref="IpAddr.IsV4"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsBadSource(in IpAddr address) =>
        (address.Hi >> 56) == 0xFF || (address.Hi == 0 && address.Lo == 0) || address.IsV4;

    /// <summary>An IPv4-mapped destination would alias an IPv4 flow key (see <see cref="IsBadSource"/>).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static bool IsBadDestination(in IpAddr address) => address.IsV4;
}
