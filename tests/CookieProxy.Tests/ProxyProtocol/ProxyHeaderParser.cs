using System.Buffers.Binary;
using CookieProxy.ProxyProtocol;
using CookieProxy.Wire;

namespace CookieProxy.Tests.ProxyProtocol;

// Test-only: the proxy writes PROXY headers (ProxyHeaderWriter) and never parses one. The parser checks what the
// writer sends (round trips, the splice tests' backends) and is fuzzed with the receive path.

/// <summary>proxy-protocol.txt 2.2: the low nibble of the 13th byte.</summary>
public enum ProxyCommand : byte
{
    /// <summary>Health check from the proxy itself: the receiver uses the real connection endpoints.</summary>
    Local = 0x0,
    /// <summary>Relayed on behalf of another node: the addresses describe the original connection.</summary>
    Proxy = 0x1,
}

/// <summary>Transport of the original connection, as the header describes it.</summary>
public enum ProxyTransport : byte
{
    /// <summary>v1 "UNKNOWN", v2 AF_UNSPEC / UNIX / UDP: the receiver ignores the addresses.</summary>
    Unknown = 0,
    Tcp4,
    Tcp6,
}

/// <summary>Why a header was not accepted. Hostile input never throws: it gets one of these.</summary>
public enum ProxyParseResult : byte
{
    Success = 0,
    /// <summary>The bytes so far are a valid prefix; read more and call again.</summary>
    NeedMoreData,
    /// <summary>Neither the v1 "PROXY " prefix nor the v2 signature.</summary>
    NotProxyProtocol,
    /// <summary>v1 line longer than 107 bytes without CRLF (proxy-protocol.txt 2.1).</summary>
    V1LineTooLong,
    V1BadProtocol,
    V1BadAddress,
    V1BadPort,
    /// <summary>Missing/extra spaces or bytes, or CR not followed by LF.</summary>
    V1BadSyntax,
    /// <summary>v2: the version nibble is not 2.</summary>
    V2BadVersion,
    /// <summary>v2: command other than LOCAL or PROXY.</summary>
    V2BadCommand,
    /// <summary>v2: family/transport byte unknown.</summary>
    V2BadFamily,
    /// <summary>v2: the length is smaller than the addresses of the announced family.</summary>
    V2BadLength,
}

/// <summary>A parsed PROXY header. Addresses are meaningful only when <see cref="Transport"/> is TCP4/TCP6 and the command is PROXY.</summary>
public readonly record struct ProxyHeader(
    ProxyProtocolVersion Version,
    ProxyCommand Command,
    ProxyTransport Transport,
    IpAddr SourceAddress,
    IpAddr DestinationAddress,
    ushort SourcePort,
    ushort DestinationPort,
    int Length);

/// <summary>
/// Parses a PROXY protocol v1 or v2 header at the start of a byte stream (haproxy proxy-protocol.txt).
/// Never throws on input and never allocates: malformed input gets a <see cref="ProxyParseResult"/>.
/// </summary>
public static class ProxyHeaderParser
{
    private static ReadOnlySpan<byte> V1Prefix => "PROXY "u8;

    /// <summary>
    /// Parses the header at the start of <paramref name="data"/>. On <see cref="ProxyParseResult.Success"/>,
    /// <c>header.Length</c> bytes belong to the header and the application stream follows them.
    /// </summary>
    public static ProxyParseResult TryParse(ReadOnlySpan<byte> data, out ProxyHeader header)
    {
        header = default;
        if (data.IsEmpty)
        {
            return ProxyParseResult.NeedMoreData;
        }

        // proxy-protocol.txt 2.2: the v2 signature's first byte (\r) can never start a v1 header.
        if (data[0] == 0x0D)
        {
            return TryParseV2(data, out header);
        }

        int prefix = Math.Min(data.Length, V1Prefix.Length);
        if (!data[..prefix].SequenceEqual(V1Prefix[..prefix]))
        {
            return ProxyParseResult.NotProxyProtocol;
        }
        return TryParseV1(data, out header);
    }

    // proxy-protocol.txt 2.1: "PROXY" SP ("TCP4" | "TCP6" | "UNKNOWN") [SP src SP dst SP sport SP dport] CRLF,
    // at most 107 bytes including CRLF.
    private static ProxyParseResult TryParseV1(ReadOnlySpan<byte> data, out ProxyHeader header)
    {
        header = default;
        ReadOnlySpan<byte> window = data[..Math.Min(data.Length, ProxyHeaderWriter.V1MaxLength)];
        int cr = window.IndexOf((byte)'\r');
        if (cr < 0)
        {
            if (window.IndexOf((byte)'\n') >= 0)
            {
                return ProxyParseResult.V1BadSyntax;
            }
            return data.Length >= ProxyHeaderWriter.V1MaxLength ? ProxyParseResult.V1LineTooLong : ProxyParseResult.NeedMoreData;
        }
        if (cr + 1 >= window.Length)
        {
            return data.Length >= ProxyHeaderWriter.V1MaxLength ? ProxyParseResult.V1LineTooLong : ProxyParseResult.NeedMoreData;
        }
        if (window[cr + 1] != (byte)'\n')
        {
            return ProxyParseResult.V1BadSyntax;
        }
        if (cr < V1Prefix.Length)
        {
            return ProxyParseResult.V1BadSyntax;
        }

        ReadOnlySpan<byte> line = data[V1Prefix.Length..cr];
        if (line.IndexOf((byte)'\n') >= 0)
        {
            return ProxyParseResult.V1BadSyntax;
        }

        int length = cr + 2;
        ReadOnlySpan<byte> protocol = NextToken(ref line, out bool more);

        // "UNKNOWN": the receiver must ignore everything up to CRLF and use the real connection endpoints.
        if (protocol.SequenceEqual("UNKNOWN"u8))
        {
            header = new ProxyHeader(ProxyProtocolVersion.V1, ProxyCommand.Proxy, ProxyTransport.Unknown, default, default, 0, 0, length);
            return ProxyParseResult.Success;
        }

        bool v4;
        if (protocol.SequenceEqual("TCP4"u8))
        {
            v4 = true;
        }
        else if (protocol.SequenceEqual("TCP6"u8))
        {
            v4 = false;
        }
        else
        {
            return ProxyParseResult.V1BadProtocol;
        }

        if (!more)
        {
            return ProxyParseResult.V1BadSyntax;
        }
        ReadOnlySpan<byte> srcText = NextToken(ref line, out more);
        if (!more)
        {
            return ProxyParseResult.V1BadSyntax;
        }
        ReadOnlySpan<byte> dstText = NextToken(ref line, out more);
        if (!more)
        {
            return ProxyParseResult.V1BadSyntax;
        }
        ReadOnlySpan<byte> sportText = NextToken(ref line, out more);
        if (!more)
        {
            return ProxyParseResult.V1BadSyntax;
        }
        ReadOnlySpan<byte> dportText = NextToken(ref line, out more);
        if (more || srcText.IsEmpty || dstText.IsEmpty || sportText.IsEmpty || dportText.IsEmpty)
        {
            return ProxyParseResult.V1BadSyntax;
        }

        IpAddr src, dst;
        bool addressesOk = v4
            ? TryParseIpv4(srcText, out src) & TryParseIpv4(dstText, out dst)
            : TryParseIpv6(srcText, out src) & TryParseIpv6(dstText, out dst);
        if (!addressesOk)
        {
            return ProxyParseResult.V1BadAddress;
        }
        if (!TryParsePort(sportText, out ushort sport) || !TryParsePort(dportText, out ushort dport))
        {
            return ProxyParseResult.V1BadPort;
        }

        header = new ProxyHeader(ProxyProtocolVersion.V1, ProxyCommand.Proxy, v4 ? ProxyTransport.Tcp4 : ProxyTransport.Tcp6,
            src, dst, sport, dport, length);
        return ProxyParseResult.Success;
    }

    private static ProxyParseResult TryParseV2(ReadOnlySpan<byte> data, out ProxyHeader header)
    {
        header = default;
        ReadOnlySpan<byte> signature = ProxyHeaderWriter.V2Signature;
        int prefix = Math.Min(data.Length, signature.Length);
        if (!data[..prefix].SequenceEqual(signature[..prefix]))
        {
            return ProxyParseResult.NotProxyProtocol;
        }
        if (data.Length < ProxyHeaderWriter.V2FixedLength)
        {
            return ProxyParseResult.NeedMoreData;
        }

        byte versionCommand = data[12];
        if (versionCommand >> 4 != 2)
        {
            return ProxyParseResult.V2BadVersion;
        }
        int command = versionCommand & 0xF;
        if (command > (int)ProxyCommand.Proxy)
        {
            return ProxyParseResult.V2BadCommand;
        }

        byte family = data[13];
        int addressFamily = family >> 4;      // 0 UNSPEC, 1 INET, 2 INET6, 3 UNIX
        int transport = family & 0xF;         // 0 UNSPEC, 1 STREAM, 2 DGRAM
        if (addressFamily > 3 || transport > 2)
        {
            return ProxyParseResult.V2BadFamily;
        }

        int length = BinaryPrimitives.ReadUInt16BigEndian(data[14..]);
        int required = addressFamily switch
        {
            1 => 12,
            2 => 36,
            3 => 216,
            _ => 0,
        };
        // proxy-protocol.txt 2.2: the receiver must check the length covers the addresses; TLVs may follow.
        if (length < required)
        {
            return ProxyParseResult.V2BadLength;
        }
        int total = ProxyHeaderWriter.V2FixedLength + length;
        if (data.Length < total)
        {
            return ProxyParseResult.NeedMoreData;
        }

        ReadOnlySpan<byte> body = data[ProxyHeaderWriter.V2FixedLength..total];
        ProxyTransport kind = ProxyTransport.Unknown;
        IpAddr src = default, dst = default;
        ushort sport = 0, dport = 0;
        if (transport == 1 && addressFamily == 1)
        {
            kind = ProxyTransport.Tcp4;
            src = IpAddr.FromBytes(body[..4]);
            dst = IpAddr.FromBytes(body[4..8]);
            sport = BinaryPrimitives.ReadUInt16BigEndian(body[8..]);
            dport = BinaryPrimitives.ReadUInt16BigEndian(body[10..]);
        }
        else if (transport == 1 && addressFamily == 2)
        {
            kind = ProxyTransport.Tcp6;
            src = IpAddr.FromBytes(body[..16]);
            dst = IpAddr.FromBytes(body[16..32]);
            sport = BinaryPrimitives.ReadUInt16BigEndian(body[32..]);
            dport = BinaryPrimitives.ReadUInt16BigEndian(body[34..]);
        }

        header = new ProxyHeader(ProxyProtocolVersion.V2, (ProxyCommand)command, kind, src, dst, sport, dport, total);
        return ProxyParseResult.Success;
    }

    /// <summary>Splits at the next single space; <paramref name="more"/> says whether a space was found.</summary>
    private static ReadOnlySpan<byte> NextToken(ref ReadOnlySpan<byte> rest, out bool more)
    {
        int space = rest.IndexOf((byte)' ');
        if (space < 0)
        {
            ReadOnlySpan<byte> last = rest;
            rest = default;
            more = false;
            return last;
        }
        ReadOnlySpan<byte> token = rest[..space];
        rest = rest[(space + 1)..];
        more = true;
        return token;
    }

    private static bool TryParsePort(ReadOnlySpan<byte> text, out ushort port)
    {
        port = 0;
        if (text.Length is 0 or > 5)
        {
            return false;
        }
        uint value = 0;
        foreach (byte c in text)
        {
            uint digit = (uint)(c - '0');
            if (digit > 9)
            {
                return false;
            }
            value = value * 10 + digit;
        }
        if (value > ushort.MaxValue)
        {
            return false;
        }
        port = (ushort)value;
        return true;
    }

    /// <summary>Strict dotted quad: four decimal numbers 0..255 of 1-3 digits (no octal/hex/short forms).</summary>
    internal static bool TryParseIpv4(ReadOnlySpan<byte> text, out IpAddr address)
    {
        address = default;
        uint value = 0;
        int parts = 0;
        int i = 0;
        while (parts < 4)
        {
            int start = i;
            uint part = 0;
            while (i < text.Length && i - start < 4 && (uint)(text[i] - '0') <= 9)
            {
                part = part * 10 + (uint)(text[i] - '0');
                i++;
            }
            int digits = i - start;
            if (digits is 0 or > 3 || part > 255)
            {
                return false;
            }
            value = (value << 8) | part;
            parts++;
            if (parts < 4)
            {
                if (i >= text.Length || text[i] != (byte)'.')
                {
                    return false;
                }
                i++;
            }
        }
        if (i != text.Length)
        {
            return false;
        }
        address = IpAddr.FromV4(value);
        return true;
    }

    /// <summary>RFC 4291 2.2 text forms: up to 8 hex groups, one optional "::", optional trailing dotted quad. No zone id.</summary>
    internal static bool TryParseIpv6(ReadOnlySpan<byte> text, out IpAddr address)
    {
        address = default;
        Span<ushort> groups = stackalloc ushort[8];
        int count = 0;
        int gap = -1;    // index in groups where "::" stands
        int i = 0;

        if (text.Length >= 2 && text[0] == (byte)':' && text[1] == (byte)':')
        {
            gap = 0;
            i = 2;
        }
        else if (text.Length >= 1 && text[0] == (byte)':')
        {
            return false;
        }

        while (i < text.Length)
        {
            if (count == 8)
            {
                return false;
            }

            // An embedded IPv4 address takes the last two groups (RFC 4291 2.2 form 3).
            int dot = text[i..].IndexOf((byte)'.');
            int colon = text[i..].IndexOf((byte)':');
            if (dot >= 0 && colon < 0)
            {
                if (count > 6 || !TryParseIpv4(text[i..], out IpAddr v4))
                {
                    return false;
                }
                groups[count++] = (ushort)(v4.V4 >> 16);
                groups[count++] = (ushort)v4.V4;
                i = text.Length;
                break;
            }

            int start = i;
            uint group = 0;
            while (i < text.Length && i - start < 5 && TryHexDigit(text[i], out uint digit))
            {
                group = (group << 4) | digit;
                i++;
            }
            if (i == start || i - start > 4)
            {
                return false;
            }
            groups[count++] = (ushort)group;

            if (i == text.Length)
            {
                break;
            }
            if (text[i] != (byte)':')
            {
                return false;
            }
            i++;
            if (i < text.Length && text[i] == (byte)':')
            {
                if (gap >= 0)
                {
                    return false;    // a second "::"
                }
                gap = count;
                i++;
            }
            else if (i == text.Length)
            {
                return false;        // trailing single ':'
            }
        }

        if (gap < 0 ? count != 8 : count > 7)
        {
            return false;
        }

        Span<ushort> full = stackalloc ushort[8];
        full.Clear();
        if (gap < 0)
        {
            groups.CopyTo(full);
        }
        else
        {
            int tail = count - gap;
            groups[..gap].CopyTo(full);
            groups[gap..count].CopyTo(full[(8 - tail)..]);
        }

        ulong hi = 0, lo = 0;
        for (int g = 0; g < 4; g++)
        {
            hi = (hi << 16) | full[g];
            lo = (lo << 16) | full[g + 4];
        }
        address = new IpAddr(hi, lo);
        return true;
    }

    private static bool TryHexDigit(byte c, out uint digit)
    {
        uint d = (uint)(c - '0');
        if (d <= 9)
        {
            digit = d;
            return true;
        }
        uint l = (uint)((c | 0x20) - 'a');
        if (l <= 5)
        {
            digit = l + 10;
            return true;
        }
        digit = 0;
        return false;
    }
}
