using CookieProxy.Wire;

namespace CookieProxy.Limits;

/// <summary>
/// A source address cut to its prefix (/24 for IPv4, /64 for IPv6 by default): the unit that per-source limits
/// and the top-sources sketch count by, since one host of an attacker owns many addresses of its prefix.
/// </summary>
public readonly struct SourcePrefixMask
{
    private readonly ulong _v4LoMask;
    private readonly ulong _v6HiMask;
    private readonly ulong _v6LoMask;

    public SourcePrefixMask(int ipv4PrefixLength, int ipv6PrefixLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(ipv4PrefixLength);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(ipv4PrefixLength, 32);
        ArgumentOutOfRangeException.ThrowIfNegative(ipv6PrefixLength);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(ipv6PrefixLength, 128);
        // An IPv4 address sits in the low 32 bits of Lo (IpAddr's v4-mapped layout); the high half is kept whole.
        _v4LoMask = 0xFFFF_FFFF_0000_0000UL | (ipv4PrefixLength == 0 ? 0UL : (ulong)(uint.MaxValue << (32 - ipv4PrefixLength)));
        // C# masks shift counts to 6 bits, so 0 and 64+ are spelled out rather than shifted by 64.
        _v6HiMask = ipv6PrefixLength == 0 ? 0UL : ipv6PrefixLength >= 64 ? ulong.MaxValue : ulong.MaxValue << (64 - ipv6PrefixLength);
        _v6LoMask = ipv6PrefixLength <= 64 ? 0UL : ulong.MaxValue << (128 - ipv6PrefixLength);
    }

    public void Apply(in IpAddr source, out ulong hi, out ulong lo)
    {
        if (source.IsV4)
        {
            hi = source.Hi;
            lo = source.Lo & _v4LoMask;
        }
        else
        {
            hi = source.Hi & _v6HiMask;
            lo = source.Lo & _v6LoMask;
        }
    }
}
