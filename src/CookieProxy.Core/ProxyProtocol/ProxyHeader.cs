using CookieProxy.Wire;

namespace CookieProxy.ProxyProtocol;

// The PROXY protocol, versions 1 and 2 (haproxy doc/proxy-protocol.txt, W. Tarreau, 2010-2020):
// a header the proxy writes to the backend connection before any client byte so the backend learns
// the client's address. Version 1 is one text line, version 2 a binary block with a 12-byte signature.

public enum ProxyProtocolVersion : byte
{
    None = 0,
    V1 = 1,
    V2 = 2,
}

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
