namespace CookieProxy.Limits;

public sealed partial class SourceLimiter
{
    // Set-associative layout: table bucket b is entries [b * Ways, b * Ways + Ways). Four 32-byte
    // entries are two cache lines, so a lookup touches two lines whatever the load.
    //
    //   | way 0 | way 1 | way 2 | way 3 | way 0 | way 1 | ...
    //   |<------- bucket 0 ------------>|<------- bucket 1 ...
    //
    // A miss takes, in order: a free way; the way whose token bucket is fullest (smallest TAT), which
    // is reused silently when it has refilled completely and counted in Evictions otherwise. Fullest
    // rather than least-recently-seen because a prefix at its limit (the state worth keeping) has a
    // TAT in the future, while a spoofed one-SYN source is nearly full again after one interval.
    // Ways with live connections are never chosen.
    private const int Ways = 4;

    private struct Entry
    {
        public ulong Hi;
        public ulong Lo;

        /// <summary>GCRA theoretical arrival time in microseconds (see <see cref="Bucket"/>).</summary>
        public long Tat;

        /// <summary>Open connections (connection table only).</summary>
        public int Live;

        public bool Used;
    }

    /// <summary>
    /// A token bucket of depth <c>burst</c> refilled at <c>rate</c> per second, kept as one number per
    /// entry: the GCRA's theoretical arrival time (ITU-T I.371 / ATM Forum TM 4.0 "virtual scheduling").
    /// With emission interval T = 1/rate and tolerance tau = (burst - 1) * T, a packet at t conforms iff
    /// max(TAT, t) - t &lt;= tau, and then TAT = max(TAT, t) + T. TAT &lt;= t means the bucket is full.
    /// Integer microseconds keep the arithmetic exact, so the tests can assert to the microsecond.
    /// </summary>
    private readonly struct Bucket
    {
        public readonly long IntervalUs;
        public readonly long ToleranceUs;

        public Bucket(double perSecond, int burst)
        {
            if (perSecond > 0)
            {
                IntervalUs = SourceLimitConfig.IntervalMicros(perSecond);
                ToleranceUs = (burst - 1) * IntervalUs;
            }
        }

        public bool Enabled => IntervalUs != 0;

        public bool TryTake(ref long tat, long nowUs)
        {
            if (!Enabled)
            {
                return true;
            }

            long start = Math.Max(tat, nowUs);
            if (start - nowUs > ToleranceUs)
            {
                return false;
            }

            tat = start + IntervalUs;
            return true;
        }
    }

    /// <summary>The way holding (hi, lo), or -1.</summary>
    private int Find(Entry[] table, ulong hi, ulong lo, ulong hash)
    {
        int start = (int)(hash & (uint)_bucketMask) * Ways;
        for (int i = start; i < start + Ways; i++)
        {
            ref Entry e = ref table[i];
            if (e.Used && e.Hi == hi && e.Lo == lo)
            {
                return i;
            }
        }
        return -1;
    }

    /// <summary>The way holding (hi, lo), claiming one (with a full bucket) on a miss; -1 when every way
    /// holds live connections.</summary>
    private int FindOrClaim(Entry[] table, ulong hi, ulong lo, ulong hash, in Bucket bucket, long nowUs, ref int used)
    {
        int start = (int)(hash & (uint)_bucketMask) * Ways;
        int free = -1;
        int victim = -1;
        long victimTat = long.MaxValue;
        for (int i = start; i < start + Ways; i++)
        {
            ref Entry e = ref table[i];
            if (!e.Used)
            {
                free = free < 0 ? i : free;
                continue;
            }
            if (e.Hi == hi && e.Lo == lo)
            {
                return i;
            }
            if (e.Live == 0 && e.Tat < victimTat)
            {
                victim = i;
                victimTat = e.Tat;
            }
        }

        int slot;
        if (free >= 0)
        {
            slot = free;
            used++;
        }
        else if (victim >= 0)
        {
            slot = victim;
            if (bucket.Enabled && victimTat > nowUs)
            {
                Evictions++;
            }
        }
        else
        {
            return -1;
        }

        table[slot] = new Entry { Hi = hi, Lo = lo, Tat = nowUs, Used = true };
        return slot;
    }
}
