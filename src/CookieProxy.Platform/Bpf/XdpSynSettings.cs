using System.Net;

namespace CookieProxy.Platform;

/// <summary>
/// Where the cookie's bits go, as plain numbers the host takes from SynCookieCodec (the one definition):
/// ISN = MAC[MacBits-1:0] &lt;&lt; (32 - MacBits) | opts &lt;&lt; 1 | slot parity, with opts = WSI &lt;&lt;
/// (WsiShift - 1) | MSI &lt;&lt; (MsiShift - 1) | SACK &lt;&lt; (SackShift - 1) XORed with the next MAC bits;
/// TSval = MAC[32 + MacBits - 1 : 32] &lt;&lt; (32 - MacBits) | TsEcnBit (if ECN) | the exact shift or TsWsNone.
/// </summary>
public readonly record struct XdpCookieLayout(int MacBits, int WsiShift, int MsiShift, int SackShift, int TsEcnBit, int TsWsNone);

/// <summary>The per-source SYN budget (--syn-rate-per-source) as SourceLimiter's GCRA keeps it.</summary>
/// <param name="IntervalMicros">Emission interval: one token per this many µs.</param>
/// <param name="ToleranceMicros">(burst - 1) × interval.</param>
/// <param name="PrefixV4">IPv4 sources sharing this many leading bits share a bucket (0..32).</param>
/// <param name="PrefixV6">IPv6 likewise (0..128).</param>
/// <param name="Buckets">Prefixes the program remembers (an LRU map per CPU).</param>
public readonly record struct XdpSynBudget(long IntervalMicros, long ToleranceMicros, int PrefixV4, int PrefixV6, int Buckets);

/// <summary>The SipHash-2-4 key the program signs with.</summary>
public readonly record struct XdpSynKey(ulong K0, ulong K1);

/// <summary>
/// What the XDP SYN responder answers with: the same values <c>SynResponder</c> uses, handed over by the
/// host as plain numbers (this project does not reach into the responder, the codec or the crypto).
/// </summary>
public sealed record XdpSynSettings
{
    /// <summary>The protected endpoints (the set the capture filter matches).</summary>
    public required IReadOnlyList<IPEndPoint> Endpoints { get; init; }

    /// <summary>MSS in the SYN+ACK over IPv4 and over IPv6.</summary>
    public required ushort MssV4 { get; init; }

    public required ushort MssV6 { get; init; }

    /// <summary>The unscaled SYN+ACK window (RFC 7323 2.2: never scaled in a SYN).</summary>
    public required ushort Window { get; init; }

    /// <summary>Our shift, announced when the client sent one (RFC 7323 2.2).</summary>
    public required byte WindowScale { get; init; }

    /// <summary>CookieTables.Mss: what each value of the ISN's 3-bit MSS index means (ascending).</summary>
    public required IReadOnlyList<ushort> MssTable { get; init; }

    /// <summary>CookieTables.WindowScale (index 0 = no option; ascending).</summary>
    public required IReadOnlyList<sbyte> WindowScaleTable { get; init; }

    public required XdpCookieLayout Layout { get; init; }

    /// <summary>The per-source SYN budget; null = off.</summary>
    public XdpSynBudget? Budget { get; init; }

    /// <summary>Live flows the program can remember (an LRU map: the oldest go first when it is full).</summary>
    public int LiveFlowCapacity { get; init; } = 65536;

    /// <summary>Protected endpoints the map can hold, now and after <see cref="XdpSynResponder.UpdateEndpoints"/>.</summary>
    public int EndpointCapacity { get; init; } = 1024;

    internal void Validate()
    {
        if (Endpoints.Count == 0)
        {
            throw new ArgumentException("At least one protected endpoint is required.", nameof(Endpoints));
        }
        if (Endpoints.Count > EndpointCapacity)
        {
            throw new ArgumentException($"{Endpoints.Count} protected endpoints, the XDP map holds {EndpointCapacity}.", nameof(Endpoints));
        }
        if (MssTable.Count != 8 || WindowScaleTable.Count != 8)
        {
            throw new ArgumentException("The cookie tables have 8 entries each (3 bits).");
        }
        if (Layout.MacBits is < 1 or > 30 || Layout.WsiShift is < 1 or > 31 || Layout.MsiShift is < 1 or > 31 || Layout.SackShift is < 1 or > 31)
        {
            throw new ArgumentException($"Cookie layout {Layout} does not fit a 32-bit ISN.", nameof(Layout));
        }
        if (WindowScale > 14)
        {
            throw new ArgumentOutOfRangeException(nameof(WindowScale), WindowScale, "RFC 7323 2.3: at most 14.");
        }
        if (LiveFlowCapacity < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(LiveFlowCapacity), LiveFlowCapacity, "At least one entry.");
        }
        if (Budget is XdpSynBudget b && (b.IntervalMicros < 1 || b.ToleranceMicros < 0 || b.PrefixV4 is < 0 or > 32
            || b.PrefixV6 is < 0 or > 128 || b.Buckets < 1))
        {
            throw new ArgumentOutOfRangeException(nameof(Budget), b, "Not a valid SYN budget.");
        }
    }
}
