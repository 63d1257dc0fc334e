using CookieProxy.Wire;

namespace CookieProxy.Limits;

public sealed partial class SourceLimiter
{
    /// <summary>
    /// A limiter with new limits that keeps this one's connection counts, so the flows open now stay counted
    /// against the new cap (a reload lowers max-conn-per-source and it holds from then on). The SYN buckets start
    /// full (what is lost is at most one burst per prefix). The prefix lengths and the table size must stay.
    /// Owner thread: call it where this limiter is used, between batches.
    /// </summary>
    /// <exception cref="ArgumentException">The prefix lengths or the table size differ.</exception>
    public SourceLimiter WithConfig(SourceLimitConfig config)
    {
        ArgumentNullException.ThrowIfNull(config);
        if (config.Ipv4PrefixLength != _config.Ipv4PrefixLength || config.Ipv6PrefixLength != _config.Ipv6PrefixLength
            || config.TableSize != _config.TableSize)
        {
            throw new ArgumentException("A reconfigured limiter keeps its prefix lengths and table size.", nameof(config));
        }
        var next = new SourceLimiter(config, _hashKey)
        {
            SynsLimited = SynsLimited,
            ConnectionsRefusedConcurrent = ConnectionsRefusedConcurrent,
            ConnectionsRefusedRate = ConnectionsRefusedRate,
            Evictions = Evictions,
            TableFull = TableFull,
            UnmatchedCloses = UnmatchedCloses,
        };
        if (next._connectionTable.Length > 0 && _connectionTable.Length > 0)
        {
            Array.Copy(_connectionTable, next._connectionTable, _connectionTable.Length);
            next._connectionEntries = _connectionEntries;
            next.OpenConnections = OpenConnections;
        }
        return next;
    }

    /// <summary>Whether this limiter counts open connections (so they must be carried over or recounted).</summary>
    public bool CountsConnections => _connectionTable.Length > 0;

    /// <summary>
    /// Counts a connection that is already open, without checking any limit: the flows that existed before a
    /// reload turned the connection limits on. Pair it with <see cref="CloseConnection"/> like an accepted
    /// <see cref="TryOpenConnection"/>. False (and nothing counted) when every way of the prefix's bucket is live.
    /// </summary>
    public bool AddExisting(in IpAddr source, long nowMs)
    {
        if (_connectionTable.Length == 0)
        {
            return false;
        }
        Mask(source, out ulong hi, out ulong lo);
        int slot = FindOrClaim(_connectionTable, hi, lo, Hash(hi, lo), in _connectionBucket, ToMicros(nowMs), ref _connectionEntries);
        if (slot < 0)
        {
            TableFull++;
            return false;
        }
        _connectionTable[slot].Live++;
        OpenConnections++;
        return true;
    }
}
