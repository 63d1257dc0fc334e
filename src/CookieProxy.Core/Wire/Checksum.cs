using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace CookieProxy.Wire;

/// <summary>
/// The Internet checksum (RFC 1071): the 16-bit one's complement of the one's complement sum of 16-bit words,
/// with the IPv4 (RFC 9293 3.1) and IPv6 (RFC 8200 8.1) TCP pseudo-headers. Incremental update per RFC 1624.
/// </summary>
/// <remarks>
/// Sums are carried as "network-order values": a folded sum <c>s</c> means the 16-bit big-endian word <c>s</c>.
/// Internally the data is summed in native byte order, 32 bits at a time into a 64-bit accumulator, and
/// byte-swapped once at the end; RFC 1071 (2)(B) "byte order independence" makes that exact.
/// </remarks>
public static partial class Checksum
{
    /// <summary>One's complement sum of <paramref name="data"/> (odd tail padded with a zero byte), folded to 16 bits.</summary>
    public static uint Sum(ReadOnlySpan<byte> data)
    {
        ulong acc = 0;
        int pos = 0;
        // Headers (20..60 bytes) stay scalar; segments take the vector path. Each path consumes a multiple of
        // 32 bytes, so the scalar tail starts on an even offset and word boundaries are kept.
        if (Vector256.IsHardwareAccelerated && data.Length >= VectorThreshold)
        {
            acc = SumVector256(data, out pos);
        }
        else if (Vector128.IsHardwareAccelerated && data.Length >= VectorThreshold)
        {
            acc = SumVector128(data, out pos);
        }
        acc += SumScalar(data.Slice(pos));

        uint folded = Fold(acc);
        return BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness((ushort)folded) : folded;
    }

    /// <summary>Folds a wide one's complement accumulator to 16 bits (end-around carry).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Fold(ulong acc)
    {
        acc = (acc & 0xFFFF_FFFFUL) + (acc >> 32);
        acc = (acc & 0xFFFF_FFFFUL) + (acc >> 32);
        uint s = (uint)acc;
        s = (s & 0xFFFF) + (s >> 16);
        s = (s & 0xFFFF) + (s >> 16);
        return s;
    }

    /// <summary>Adds two partial sums (any width below 2^32) and folds.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint Add(uint a, uint b) => Fold((ulong)a + b);

    /// <summary>The checksum field value for data whose checksum field was zero: ~sum (RFC 1071).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Finish(uint partialSum) => (ushort)~Fold(partialSum);

    /// <summary>Checksum of a span (checksum field already zeroed).</summary>
    public static ushort Compute(ReadOnlySpan<byte> data) => Finish(Sum(data));

    /// <summary>IPv4 header checksum (RFC 791 3.1) of a header whose checksum field is zero.</summary>
    public static ushort Ipv4Header(ReadOnlySpan<byte> header) => Compute(header);

    /// <summary>True when a received IPv4 header sums to 0xFFFF including its checksum field.</summary>
    public static bool VerifyIpv4Header(ReadOnlySpan<byte> header) => Sum(header) == 0xFFFF;

    /// <summary>
    /// IPv4 pseudo-header sum (RFC 9293 3.1): source, destination, zero, protocol, TCP length.
    /// Addresses are big-endian numeric values.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint PseudoHeaderV4(uint src, uint dst, byte protocol, int length)
    {
        ulong acc = (ulong)(src >> 16) + (src & 0xFFFF) + (dst >> 16) + (dst & 0xFFFF) + protocol + (uint)length;
        return Fold(acc);
    }

    /// <summary>
    /// IPv6 pseudo-header sum (RFC 8200 8.1): source, destination (the final one), upper-layer length (32 bits),
    /// three zero bytes, next header.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint PseudoHeaderV6(in IpAddr src, in IpAddr dst, byte nextHeader, int length)
    {
        ulong acc = SumHalves(src.Hi) + SumHalves(src.Lo) + SumHalves(dst.Hi) + SumHalves(dst.Lo)
            + ((uint)length >> 16) + ((uint)length & 0xFFFF) + nextHeader;
        return Fold(acc);
    }

    /// <summary>Pseudo-header sum for either family (IPv4-mapped addresses select IPv4).</summary>
    public static uint PseudoHeader(in IpAddr src, in IpAddr dst, byte protocol, int length) =>
        src.IsV4 ? PseudoHeaderV4(src.V4, dst.V4, protocol, length) : PseudoHeaderV6(src, dst, protocol, length);

    /// <summary>TCP checksum field value for a segment (its checksum field zeroed) between the given addresses.</summary>
    public static ushort Tcp(in IpAddr src, in IpAddr dst, ReadOnlySpan<byte> segment) =>
        Finish(Add(PseudoHeader(src, dst, IpProtocol.Tcp, segment.Length), Sum(segment)));

    /// <summary>True when a received TCP segment (checksum field included) verifies.</summary>
    public static bool VerifyTcp(in IpAddr src, in IpAddr dst, ReadOnlySpan<byte> segment) =>
        Add(PseudoHeader(src, dst, IpProtocol.Tcp, segment.Length), Sum(segment)) == 0xFFFF;

    /// <summary>
    /// Incremental update when one 16-bit word changes from <paramref name="oldWord"/> to <paramref name="newWord"/>:
    /// HC' = ~(~HC + ~m + m') (RFC 1624 3, eqn. 3), which never produces the -0 pitfall of eqn. 2.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Update(ushort checksum, ushort oldWord, ushort newWord) =>
        (ushort)~Fold((ulong)(ushort)~checksum + (ushort)~oldWord + newWord);

    /// <summary>Incremental update for a 32-bit field (e.g. an IPv4 address or a sequence number).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static ushort Update(ushort checksum, uint oldValue, uint newValue) =>
        (ushort)~Fold((ulong)(ushort)~checksum
            + (ushort)~(oldValue >> 16) + (ushort)~(oldValue & 0xFFFF)
            + (newValue >> 16) + (newValue & 0xFFFF));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong SumHalves(ulong v) => (v >> 48) + ((v >> 32) & 0xFFFF) + ((v >> 16) & 0xFFFF) + (v & 0xFFFF);
}

/// <summary>IP protocol / next-header numbers used here (IANA "Assigned Internet Protocol Numbers").</summary>
public static class IpProtocol
{
    public const byte HopByHop = 0;
    public const byte Tcp = 6;
    public const byte Udp = 17;
    public const byte Ipv6Routing = 43;
    public const byte Ipv6Fragment = 44;
    public const byte Esp = 50;
    public const byte Ah = 51;
    public const byte Icmpv6 = 58;
    public const byte Ipv6NoNext = 59;
    public const byte Ipv6DestinationOptions = 60;
    public const byte Mobility = 135;
    public const byte Hip = 139;
    public const byte Shim6 = 140;
    public const byte Experimental1 = 253;
    public const byte Experimental2 = 254;
}
