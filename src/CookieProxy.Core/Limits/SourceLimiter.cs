// Per-source limits for the capture thread, in the manner of pf's max-src-conn / max-src-conn-rate
// (pf.conf(5): "the connection must have completed the TCP 3-way handshake", so the count cannot be
// inflated with spoofed sources) and nmsynproxy's ratehash (one bucket per /24 or /64).
//
// Two fixed tables, both 4-way set-associative and indexed by a keyed SipHash of the masked prefix:
//
//   SYN table         written by TryAcceptSyn. Spoofed floods rotate sources through it, so it only
//                     holds what may be lost: one SYN bucket per prefix, and any entry can be evicted.
//   connection table  written only by TryOpenConnection, i.e. after a valid cookie ACK proved the
//                     source can receive our packets. Spoofed SYNs never touch it, so a flood cannot
//                     evict it; entries with live connections are never evicted at all.
//
// Single-threaded by design (one limiter per capture thread): no locks, no atomics, no allocation
// after construction. Counters are plain 64-bit fields; another thread may read them stale, never torn.

using System.Security.Cryptography;
using CookieProxy.Crypto;
using CookieProxy.Wire;

namespace CookieProxy.Limits;

/// <summary>
/// Sans-IO per-source-prefix limiter: a SYN+ACK rate per prefix, and for handshake-proven sources a
/// cap on concurrent connections and a new-connection rate. Time is passed in as milliseconds from any
/// monotonic origin. The caller maps every refusal to <c>DropReason.RateLimited</c>.
/// </summary>
public sealed partial class SourceLimiter
{
    private readonly SourceLimitConfig _config;
    private readonly SipKey _hashKey;

    // Prefix masks over IpAddr's 128-bit value. IPv4 is held IPv4-mapped (::ffff:a.b.c.d), so its mask
    // keeps the ::ffff: part (which also keeps v4 keys apart from v6 keys) and cuts the low 32 bits.
    private readonly SourcePrefixMask _prefix;

    private readonly Bucket _synBucket;
    private readonly Bucket _connectionBucket;
    private readonly int _maxConnections;

    private readonly Entry[] _synTable;
    private readonly Entry[] _connectionTable;
    private readonly int _bucketMask;

    private int _synEntries;
    private int _connectionEntries;

    /// <summary>Creates a limiter with a random hash key (so nobody can aim sources at one table bucket).</summary>
    public SourceLimiter(SourceLimitConfig config)
        : this(config, RandomKey())
    {
    }

    /// <summary>Creates a limiter with a given hash key (tests and benchmarks want determinism).</summary>
    /// <exception cref="ArgumentOutOfRangeException">A setting of <paramref name="config"/> is out of range.</exception>
    public SourceLimiter(SourceLimitConfig config, SipKey hashKey)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        _config = config;
        _hashKey = hashKey;

        _prefix = new SourcePrefixMask(config.Ipv4PrefixLength, config.Ipv6PrefixLength);

        _synBucket = new Bucket(config.SynsPerSecond, config.EffectiveSynBurst);
        _connectionBucket = new Bucket(config.NewConnectionsPerSecond, config.Burst);
        _maxConnections = config.MaxConnectionsPerSource > 0 ? config.MaxConnectionsPerSource : int.MaxValue;

        // A table whose limit is off is never touched, so it is not allocated either.
        _synTable = config.SynLimitEnabled ? new Entry[config.TableSize] : [];
        _connectionTable = config.ConnectionLimitEnabled ? new Entry[config.TableSize] : [];
        _bucketMask = config.TableSize / Ways - 1;
    }

    public SourceLimitConfig Config => _config;

    /// <summary>SYNs refused by the per-prefix SYN+ACK rate.</summary>
    public long SynsLimited { get; private set; }

    /// <summary>Connections refused because the prefix already had MaxConnectionsPerSource open.</summary>
    public long ConnectionsRefusedConcurrent { get; private set; }

    /// <summary>Connections refused by the per-prefix new-connection rate.</summary>
    public long ConnectionsRefusedRate { get; private set; }

    /// <summary>Entries replaced while their bucket still held state (not yet refilled), in either table.
    /// Reusing an entry whose bucket has refilled loses nothing and is not counted.</summary>
    public long Evictions { get; private set; }

    /// <summary>Connections refused because all ways of the prefix's table bucket held live connections.</summary>
    public long TableFull { get; private set; }

    /// <summary><see cref="CloseConnection"/> calls that found no open connection for the prefix (a caller bug).</summary>
    public long UnmatchedCloses { get; private set; }

    /// <summary>Occupied entries in both tables (at most 2 * TableSize).</summary>
    public int LiveEntries => _synEntries + _connectionEntries;

    /// <summary>Occupied entries in the SYN table (at most TableSize).</summary>
    public int SynEntries => _synEntries;

    /// <summary>Occupied entries in the connection table (at most TableSize).</summary>
    public int ConnectionEntries => _connectionEntries;

    /// <summary>Connections opened and not yet closed, over all prefixes.</summary>
    public long OpenConnections { get; private set; }

    /// <summary>
    /// Whether to answer a SYN from <paramref name="source"/> with a SYN+ACK: one token from the prefix's
    /// SYN bucket. Always true when SynsPerSecond is 0. Never allocates; may evict another prefix's SYN bucket.
    /// </summary>
    public bool TryAcceptSyn(in IpAddr source, long nowMs)
    {
        if (_synTable.Length == 0)
        {
            return true;
        }

        Mask(source, out ulong hi, out ulong lo);
        long nowUs = ToMicros(nowMs);
        int slot = FindOrClaim(_synTable, hi, lo, Hash(hi, lo), in _synBucket, nowUs, ref _synEntries);
        // The SYN table holds no live connections, so a slot is always found.
        if (_synBucket.TryTake(ref _synTable[slot].Tat, nowUs))
        {
            return true;
        }

        SynsLimited++;
        return false;
    }

    /// <summary>
    /// Whether to proxy a connection whose cookie ACK from <paramref name="source"/> just validated:
    /// checks the prefix's concurrent cap, then its new-connection rate, and on success counts the
    /// connection as open. Always true when both limits are off. Every true must be paired with one
    /// <see cref="CloseConnection"/> when the connection ends; a false must not be.
    /// </summary>
    public bool TryOpenConnection(in IpAddr source, long nowMs)
    {
        if (_connectionTable.Length == 0)
        {
            return true;
        }

        Mask(source, out ulong hi, out ulong lo);
        long nowUs = ToMicros(nowMs);
        int slot = FindOrClaim(_connectionTable, hi, lo, Hash(hi, lo), in _connectionBucket, nowUs, ref _connectionEntries);
        if (slot < 0)
        {
            // Every way holds live connections: refuse rather than forget a live count.
            TableFull++;
            return false;
        }

        ref Entry entry = ref _connectionTable[slot];
        if (entry.Live >= _maxConnections)
        {
            ConnectionsRefusedConcurrent++;
            return false;
        }

        if (!_connectionBucket.TryTake(ref entry.Tat, nowUs))
        {
            ConnectionsRefusedRate++;
            return false;
        }

        entry.Live++;
        OpenConnections++;
        return true;
    }

    /// <summary>Ends a connection that <see cref="TryOpenConnection"/> accepted for <paramref name="source"/>.</summary>
    public void CloseConnection(in IpAddr source)
    {
        if (_connectionTable.Length == 0)
        {
            return;
        }

        Mask(source, out ulong hi, out ulong lo);
        int slot = Find(_connectionTable, hi, lo, Hash(hi, lo));
        if (slot < 0 || _connectionTable[slot].Live == 0)
        {
            // Hostile input cannot get here (only our own open/close pairing can), so count, don't throw.
            UnmatchedCloses++;
            return;
        }

        ref Entry entry = ref _connectionTable[slot];
        entry.Live--;
        OpenConnections--;
        if (entry.Live == 0 && !_connectionBucket.Enabled)
        {
            // Without a rate the entry holds nothing more: free the way now rather than at eviction.
            entry = default;
            _connectionEntries--;
        }
    }

    /// <summary>The prefix key <paramref name="source"/> is counted under (for logs and tests).</summary>
    public IpAddr PrefixOf(in IpAddr source)
    {
        Mask(source, out ulong hi, out ulong lo);
        return new IpAddr(hi, lo);
    }

    /// <summary>Concurrent connections currently counted for the prefix of <paramref name="source"/>.</summary>
    public int ConnectionsOf(in IpAddr source)
    {
        if (_connectionTable.Length == 0)
        {
            return 0;
        }

        Mask(source, out ulong hi, out ulong lo);
        int slot = Find(_connectionTable, hi, lo, Hash(hi, lo));
        return slot < 0 ? 0 : _connectionTable[slot].Live;
    }

    private void Mask(in IpAddr source, out ulong hi, out ulong lo) => _prefix.Apply(source, out hi, out lo);

    // SipHash-2-4 keyed per instance: with a known hash an attacker could pick sources that all land in
    // one 4-way bucket and keep evicting a victim's SYN bucket (hash flooding). The third word is a
    // domain tag so these hashes never coincide with cookie MACs even if a key were ever shared.
    private ulong Hash(ulong hi, ulong lo) => SipHash.Hash3(_hashKey, hi, lo, DomainTag);

    private const ulong DomainTag = 0x6C696D6974735F31; // "limits_1"

    // Milliseconds to the buckets' microsecond clock. Unix-epoch milliseconds fit with 290 years to spare.
    private static long ToMicros(long nowMs) => nowMs * 1000;

    private static SipKey RandomKey()
    {
        Span<byte> key = stackalloc byte[SipKey.Size];
        RandomNumberGenerator.Fill(key);
        return SipKey.FromBytes(key);
    }
}
