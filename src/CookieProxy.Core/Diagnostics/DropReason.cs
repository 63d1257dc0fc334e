namespace CookieProxy.Diagnostics;

/// <summary>
/// Why a received frame was not acted upon. Hostile or malformed input never throws: it becomes one of
/// these and a counter increment (see <see cref="ProxyCounters"/>). Keep <see cref="Count"/> last.
/// </summary>
public enum DropReason : byte
{
    None = 0,

    // Link layer
    FrameTooShort,
    EtherTypeUnsupported,
    VlanTooShort,
    VlanStackTooDeep,

    // IPv4 (RFC 791)
    Ipv4TooShort,
    Ipv4BadVersion,
    Ipv4BadHeaderLength,
    Ipv4BadTotalLength,
    Ipv4BadChecksum,
    Ipv4Fragment,
    Ipv4BadSourceAddress,

    // IPv6 (RFC 8200)
    Ipv6TooShort,
    Ipv6BadVersion,
    Ipv6BadPayloadLength,
    Ipv6ExtensionHeaderUnsupported,
    Ipv6ExtensionHeaderMalformed,
    Ipv6BadSourceAddress,

    // TCP (RFC 9293)
    NotTcp,
    TcpTooShort,
    TcpBadDataOffset,
    TcpBadChecksum,
    TcpOptionMalformed,
    TcpBadFlags,
    TcpBadPort,

    // Policy
    NotProtected,
    RateLimited,

    // Cookie validation
    CookieInvalid,
    CookieExpired,
    CookieAckWithRstOrSyn,
    CookieNoAck,

    // Flows
    NoFlow,
    FlowTableFull,
    BufferLimit,

    // Transmit
    TxFailed,

    // Operator policy: SYNs and cookie ACKs while draining for shutdown; sources on the deny-source list.
    Draining,
    SourceDenied,

    // Flows (appended)
    /// <summary>A validated connection refused because its source prefix already holds its share of the flow table.</summary>
    SourceFlowLimit,

    Count,
}
