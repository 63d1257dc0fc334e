namespace CookieProxy.Limits;

/// <summary>
/// Per-source limits, grouped by source prefix like nmsynproxy's ratehash (/24, /64) and pf's
/// <c>max-src-conn</c> / <c>max-src-conn-rate</c>. Every limit is off at 0.
/// </summary>
public sealed class SourceLimitConfig
{
    /// <summary>Largest table we accept: 4M entries of 32 bytes (128 MiB) per table.</summary>
    public const int MaxTableSize = 1 << 22;

    /// <summary>Largest rate we accept: one token per microsecond, the bucket's time resolution.</summary>
    public const double MaxRate = 1_000_000;

    /// <summary>Smallest non-zero rate we accept (one per 1000 s), so interval * burst stays far from overflow.</summary>
    public const double MinRate = 0.001;

    /// <summary>Largest burst we accept.</summary>
    public const int MaxBurst = 1_000_000;

    /// <summary>IPv4 sources sharing this many leading bits share one entry (0..32; 24 groups a /24).</summary>
    public int Ipv4PrefixLength { get; init; } = 32;

    /// <summary>IPv6 sources sharing this many leading bits share one entry (0..128). A /64 is one
    /// subscriber's LAN (RFC 6177), so counting finer lets one host rotate through 2^64 addresses.</summary>
    public int Ipv6PrefixLength { get; init; } = 64;

    /// <summary>Concurrent proxied connections per source prefix (pf <c>max-src-conn</c>); 0 = off.</summary>
    public int MaxConnectionsPerSource { get; init; }

    /// <summary>New proxied connections per second per source prefix (pf <c>max-src-conn-rate</c>); 0 = off.</summary>
    public double NewConnectionsPerSecond { get; init; }

    /// <summary>Bucket depth for <see cref="NewConnectionsPerSecond"/>: connections one idle source may open at once.</summary>
    public int Burst { get; init; } = 20;

    /// <summary>SYN+ACK answers per second per source prefix; 0 = off. Sources are spoofable, so this only
    /// caps what one prefix can make us reflect; cookies, not this, carry a spoofed flood.</summary>
    public int SynsPerSecond { get; init; }

    /// <summary>Bucket depth for <see cref="SynsPerSecond"/>; 0 = one second's worth (= SynsPerSecond).</summary>
    public int SynBurst { get; init; }

    /// <summary>Entries per table (a power of two, at least 4): one table for SYN buckets, one for
    /// connection state. Fixed at construction; the tables never grow.</summary>
    public int TableSize { get; init; } = 65536;

    /// <summary>True when <see cref="SourceLimiter.TryAcceptSyn"/> can refuse.</summary>
    public bool SynLimitEnabled => SynsPerSecond > 0;

    /// <summary>True when <see cref="SourceLimiter.TryOpenConnection"/> can refuse.</summary>
    public bool ConnectionLimitEnabled => MaxConnectionsPerSource > 0 || NewConnectionsPerSecond > 0;

    /// <summary>The SYN bucket depth after applying the 0 = one-second default.</summary>
    public int EffectiveSynBurst => SynBurst > 0 ? SynBurst : Math.Max(1, SynsPerSecond);

    /// <summary>The SYN bucket's emission interval in µs (the GCRA's T; 0 when the limit is off), the one
    /// <see cref="SourceLimiter"/> uses and the XDP responder is given.</summary>
    public long SynIntervalMicros => IntervalMicros(SynsPerSecond);

    /// <summary>The SYN bucket's tolerance in µs: (burst - 1) × interval.</summary>
    public long SynToleranceMicros => (EffectiveSynBurst - 1) * SynIntervalMicros;

    /// <summary>A token bucket's emission interval for <paramref name="perSecond"/> tokens per second, in whole
    /// µs (at least 1); 0 for a rate of 0 (off).</summary>
    public static long IntervalMicros(double perSecond) => perSecond > 0 ? Math.Max(1, (long)Math.Round(1_000_000 / perSecond)) : 0;

    /// <summary>Throws <see cref="ArgumentOutOfRangeException"/> naming the first bad setting.</summary>
    public void Validate()
    {
        CheckRange(Ipv4PrefixLength, 0, 32, nameof(Ipv4PrefixLength), "an IPv4 prefix length is 0..32 bits");
        CheckRange(Ipv6PrefixLength, 0, 128, nameof(Ipv6PrefixLength), "an IPv6 prefix length is 0..128 bits");
        CheckRange(MaxConnectionsPerSource, 0, int.MaxValue, nameof(MaxConnectionsPerSource), "use 0 to turn the limit off");
        CheckRate(NewConnectionsPerSecond, nameof(NewConnectionsPerSecond));
        if (NewConnectionsPerSecond > 0)
        {
            CheckRange(Burst, 1, MaxBurst, nameof(Burst), "a rate limit needs a burst of at least 1");
        }
        CheckRate(SynsPerSecond, nameof(SynsPerSecond));
        CheckRange(SynBurst, 0, MaxBurst, nameof(SynBurst), "use 0 for one second's worth of SynsPerSecond");
        if (TableSize < 4 || TableSize > MaxTableSize || (TableSize & (TableSize - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(TableSize), TableSize,
                $"{nameof(TableSize)} must be a power of two from 4 to {MaxTableSize} (got {TableSize}).");
        }
    }

    private static void CheckRange(int value, int min, int max, string name, string why)
    {
        if (value < min || value > max)
        {
            throw new ArgumentOutOfRangeException(name, value, $"{name} must be {min}..{max} (got {value}): {why}.");
        }
    }

    private static void CheckRate(double value, string name)
    {
        // The negated comparison also rejects NaN.
        if (!(value == 0 || (value >= MinRate && value <= MaxRate)))
        {
            throw new ArgumentOutOfRangeException(name, value,
                $"{name} must be 0 (off) or {MinRate}..{MaxRate} per second (got {value}).");
        }
    }
}
