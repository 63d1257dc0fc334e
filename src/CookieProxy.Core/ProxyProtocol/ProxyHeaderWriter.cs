using System.Buffers.Binary;
using System.Diagnostics;
using CookieProxy.Wire;

namespace CookieProxy.ProxyProtocol;

/// <summary>
/// Writes PROXY protocol headers (haproxy proxy-protocol.txt) into a caller's span without allocating.
/// The source is the client, the destination the address the client connected to (the protected endpoint).
/// </summary>
public static class ProxyHeaderWriter
{
    /// <summary>proxy-protocol.txt 2.1: "a 108-byte buffer is always enough to store all the line and a trailing zero".</summary>
    public const int V1MaxLength = 107;

    /// <summary>proxy-protocol.txt 2.2: 16 fixed bytes, then 12 address bytes for TCP over IPv4.</summary>
    public const int V2Tcp4Length = V2FixedLength + 12;

    /// <summary>16 fixed bytes, then 36 address bytes for TCP over IPv6.</summary>
    public const int V2Tcp6Length = V2FixedLength + 36;

    public const int V2FixedLength = 16;

    /// <summary>proxy-protocol.txt 2.2: \r\n\r\n\0\r\nQUIT\n — cannot start a valid v1 line or a common protocol.</summary>
    public static ReadOnlySpan<byte> V2Signature => [0x0D, 0x0A, 0x0D, 0x0A, 0x00, 0x0D, 0x0A, 0x51, 0x55, 0x49, 0x54, 0x0A];

    /// <summary>High nibble: version 2; low nibble: command PROXY (proxy-protocol.txt 2.2, 13th byte).</summary>
    public const byte V2VersionCommandProxy = 0x21;

    /// <summary>High nibble AF_INET (1), low nibble STREAM (1).</summary>
    public const byte V2FamilyTcp4 = 0x11;

    /// <summary>High nibble AF_INET6 (2), low nibble STREAM (1).</summary>
    public const byte V2FamilyTcp6 = 0x21;

    /// <summary>Largest header <see cref="Write(ProxyProtocolVersion, Span{byte}, in FlowKey)"/> can produce for a version.</summary>
    public static int MaxLength(ProxyProtocolVersion version) => version switch
    {
        ProxyProtocolVersion.V1 => V1MaxLength,
        ProxyProtocolVersion.V2 => V2Tcp6Length,
        _ => 0,
    };

    /// <summary>Writes the header describing <paramref name="key"/> (client = source); returns the length (0 for <see cref="ProxyProtocolVersion.None"/>).</summary>
    public static int Write(ProxyProtocolVersion version, Span<byte> destination, in FlowKey key) => version switch
    {
        ProxyProtocolVersion.V1 => WriteV1(destination, key.SrcAddr, key.DstAddr, key.SrcPort, key.DstPort),
        ProxyProtocolVersion.V2 => WriteV2(destination, key.SrcAddr, key.DstAddr, key.SrcPort, key.DstPort),
        _ => 0,
    };

    /// <summary>
    /// "PROXY TCP4 src dst sport dport\r\n" (or TCP6), proxy-protocol.txt 2.1: single spaces, addresses in
    /// their usual text form (IPv6 as RFC 5952 recommends), ports in decimal. Returns the bytes written.
    /// </summary>
    public static int WriteV1(Span<byte> destination, IpAddr source, IpAddr target, ushort sourcePort, ushort targetPort)
    {
        CheckSameFamily(source, target);
        if (destination.Length < V1MaxLength)
        {
            ThrowDestinationTooSmall();
        }

        int n = 0;
        "PROXY "u8.CopyTo(destination);
        n += 6;
        (source.IsV4 ? "TCP4 "u8 : "TCP6 "u8).CopyTo(destination[n..]);
        n += 5;
        n += WriteAddressText(destination[n..], source);
        destination[n++] = (byte)' ';
        n += WriteAddressText(destination[n..], target);
        destination[n++] = (byte)' ';
        n += WriteDecimal(destination[n..], sourcePort);
        destination[n++] = (byte)' ';
        n += WriteDecimal(destination[n..], targetPort);
        destination[n++] = (byte)'\r';
        destination[n++] = (byte)'\n';
        Debug.Assert(n <= V1MaxLength);
        return n;
    }

    /// <summary>
    /// The binary header, proxy-protocol.txt 2.2: signature, ver/cmd 0x21, family 0x11 (TCP4) or 0x21 (TCP6),
    /// big-endian length of what follows, then src addr, dst addr, src port, dst port in network order.
    /// </summary>
    public static int WriteV2(Span<byte> destination, IpAddr source, IpAddr target, ushort sourcePort, ushort targetPort)
    {
        CheckSameFamily(source, target);
        bool v4 = source.IsV4;
        int length = v4 ? V2Tcp4Length : V2Tcp6Length;
        if (destination.Length < length)
        {
            ThrowDestinationTooSmall();
        }

        V2Signature.CopyTo(destination);
        destination[12] = V2VersionCommandProxy;
        destination[13] = v4 ? V2FamilyTcp4 : V2FamilyTcp6;
        BinaryPrimitives.WriteUInt16BigEndian(destination[14..], (ushort)(length - V2FixedLength));
        int n = V2FixedLength;
        n += source.WriteBytes(destination[n..]);
        n += target.WriteBytes(destination[n..]);
        BinaryPrimitives.WriteUInt16BigEndian(destination[n..], sourcePort);
        BinaryPrimitives.WriteUInt16BigEndian(destination[(n + 2)..], targetPort);
        return length;
    }

    /// <summary>Dotted quad for IPv4; RFC 5952 canonical text for IPv6. Returns bytes written.</summary>
    internal static int WriteAddressText(Span<byte> destination, IpAddr address)
    {
        if (address.IsV4)
        {
            uint a = address.V4;
            int n = 0;
            for (int shift = 24; shift >= 0; shift -= 8)
            {
                n += WriteDecimal(destination[n..], (a >> shift) & 0xFF);
                if (shift != 0)
                {
                    destination[n++] = (byte)'.';
                }
            }
            return n;
        }

        Span<ushort> groups = stackalloc ushort[8];
        for (int i = 0; i < 4; i++)
        {
            groups[i] = (ushort)(address.Hi >> (48 - 16 * i));
            groups[i + 4] = (ushort)(address.Lo >> (48 - 16 * i));
        }

        // RFC 5952 4.2: "::" replaces the longest run of two or more zero groups (the first on a tie).
        int bestStart = -1, bestLength = 1;
        for (int i = 0; i < 8;)
        {
            if (groups[i] != 0)
            {
                i++;
                continue;
            }
            int start = i;
            while (i < 8 && groups[i] == 0)
            {
                i++;
            }
            if (i - start > bestLength)
            {
                bestStart = start;
                bestLength = i - start;
            }
        }

        int w = 0;
        for (int i = 0; i < 8; i++)
        {
            if (i == bestStart)
            {
                destination[w++] = (byte)':';
                destination[w++] = (byte)':';
                i += bestLength - 1;
                continue;
            }
            if (w > 0 && destination[w - 1] != (byte)':')
            {
                destination[w++] = (byte)':';
            }
            w += WriteHex(destination[w..], groups[i]);
        }
        return w;
    }

    private static int WriteDecimal(Span<byte> destination, uint value)
    {
        bool ok = value.TryFormat(destination, out int written, default, System.Globalization.CultureInfo.InvariantCulture);
        Debug.Assert(ok);
        return written;
    }

    // RFC 5952 4.1 and 4.3: no leading zeros, lower case.
    private static int WriteHex(Span<byte> destination, ushort value)
    {
        int digits = value >= 0x1000 ? 4 : value >= 0x100 ? 3 : value >= 0x10 ? 2 : 1;
        for (int i = digits - 1; i >= 0; i--)
        {
            destination[i] = (byte)"0123456789abcdef"[value & 0xF];
            value >>= 4;
        }
        return digits;
    }

    private static void CheckSameFamily(IpAddr source, IpAddr target)
    {
        if (source.IsV4 != target.IsV4)
        {
            ThrowMixedFamilies();
        }
    }

    private static void ThrowDestinationTooSmall() =>
        throw new ArgumentException("The destination is smaller than the largest header of this version.", "destination");

    private static void ThrowMixedFamilies() =>
        throw new ArgumentException("Source and destination must both be IPv4 or both be IPv6.");
}
