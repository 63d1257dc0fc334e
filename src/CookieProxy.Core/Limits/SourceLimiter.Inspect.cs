using CookieProxy.Wire;

namespace CookieProxy.Limits;

/// <summary>One prefix's limiter state, as <c>cookieproxy top</c> shows it.</summary>
/// <param name="Prefix">The prefix key (masked source).</param>
/// <param name="SynTokensUsed">SYN+ACK tokens the prefix has taken beyond what has refilled (0 = bucket full).</param>
/// <param name="SynLimited">The SYN bucket is empty: the next SYN would be refused.</param>
/// <param name="Connections">Open connections counted for the prefix.</param>
/// <param name="ConnectionCapReached">The prefix holds MaxConnectionsPerSource connections.</param>
/// <param name="ConnectionRateLimited">The new-connection bucket is empty.</param>
public readonly record struct SourceLimitState(IpAddr Prefix, double SynTokensUsed, bool SynLimited, int Connections,
    bool ConnectionCapReached, bool ConnectionRateLimited)
{
    public bool Limited => SynLimited || ConnectionCapReached || ConnectionRateLimited;
}

public sealed partial class SourceLimiter
{
    // Read from another thread (the control socket's) while the owner writes: each 64-bit field reads whole, but
    // an entry can be seen half-updated, so a state may be a moment stale or, rarely, pair one prefix with its
    // neighbour's numbers. It is for display only; the owner's decisions never read what these methods return.

    /// <summary>The state of <paramref name="source"/>'s prefix (any thread; see the remark above).</summary>
    public SourceLimitState Inspect(in IpAddr source, long nowMs)
    {
        Mask(source, out ulong hi, out ulong lo);
        long nowUs = ToMicros(nowMs);
        ulong hash = Hash(hi, lo);
        double synUsed = 0;
        bool synLimited = false;
        if (_synTable.Length > 0)
        {
            int s = Find(_synTable, hi, lo, hash);
            if (s >= 0)
            {
                (synUsed, synLimited) = SynState(_synTable[s].Tat, nowUs);
            }
        }
        int live = 0;
        bool rateLimited = false;
        if (_connectionTable.Length > 0)
        {
            int c = Find(_connectionTable, hi, lo, hash);
            if (c >= 0)
            {
                Entry e = _connectionTable[c];
                live = e.Live;
                rateLimited = _connectionBucket.Enabled && e.Tat - nowUs > _connectionBucket.ToleranceUs;
            }
        }
        return new SourceLimitState(new IpAddr(hi, lo), synUsed, synLimited, live, live >= _maxConnections, rateLimited);
    }

    /// <summary>
    /// The busiest prefixes (any thread; see the remark above): up to <paramref name="destination"/>'s length from
    /// the SYN table by tokens used, then as many from the connection table by open connections, each with its
    /// state in both tables. Returns the count written; a prefix in both lists is written once.
    /// </summary>
    public int CopyBusiest(Span<SourceLimitState> destination, long nowMs)
    {
        if (destination.IsEmpty)
        {
            return 0;
        }
        long nowUs = ToMicros(nowMs);
        int half = _connectionTable.Length == 0 ? destination.Length : _synTable.Length == 0 ? 0 : (destination.Length + 1) / 2;
        Span<(ulong Hi, ulong Lo, double Score)> top = destination.Length <= 64
            ? stackalloc (ulong, ulong, double)[destination.Length]
            : new (ulong, ulong, double)[destination.Length];
        int n = 0;
        if (_synTable.Length > 0 && half > 0)
        {
            n = TopOf(_synTable, top[..half], e => SynState(e.Tat, nowUs).Used);
        }
        if (_connectionTable.Length > 0)
        {
            n += TopOf(_connectionTable, top[n..], e => e.Live);
        }

        int written = 0;
        for (int i = 0; i < n; i++)
        {
            var prefix = new IpAddr(top[i].Hi, top[i].Lo);
            bool duplicate = false;
            for (int j = 0; j < written; j++)
            {
                duplicate |= destination[j].Prefix == prefix;
            }
            if (!duplicate)
            {
                destination[written++] = Inspect(prefix, nowMs);
            }
        }
        return written;
    }

    /// <summary>Tokens used beyond the refill and whether the bucket is empty, from a SYN entry's TAT.</summary>
    private (double Used, bool Limited) SynState(long tat, long nowUs)
    {
        if (!_synBucket.Enabled || tat <= nowUs)
        {
            return (0, false);
        }
        long ahead = tat - nowUs;
        return ((double)ahead / _synBucket.IntervalUs, ahead > _synBucket.ToleranceUs);
    }

    /// <summary>The entries with the highest positive score, best first, into <paramref name="top"/>.</summary>
    private static int TopOf(Entry[] table, Span<(ulong Hi, ulong Lo, double Score)> top, Func<Entry, double> score)
    {
        if (top.IsEmpty)
        {
            return 0;
        }
        int n = 0;
        for (int i = 0; i < table.Length; i++)
        {
            Entry e = table[i];
            if (!e.Used)
            {
                continue;
            }
            double s = score(e);
            if (s <= 0 || (n == top.Length && s <= top[n - 1].Score))
            {
                continue;
            }
            int at = n < top.Length ? n++ : n - 1;
            while (at > 0 && top[at - 1].Score < s)
            {
                top[at] = top[at - 1];
                at--;
            }
            top[at] = (e.Hi, e.Lo, s);
        }
        return n;
    }
}
