// The heaviest SYN sources of one capture thread, for `cookieproxy top`, at a cost too small to measure.
//
// Space-saving (Metwally, Agrawal, El Abbadi, "Efficient Computation of Frequent and Top-k Elements in Data
// Streams", ICDT 2005) over source prefixes, fed 1 in SampleEvery SYNs: a fixed table of Capacity counters; a
// sampled prefix that is in the table counts +1, one that is not takes over the smallest counter (count + 1,
// remembering the inherited count as its error). Every prefix whose share of the samples exceeds 1/Capacity is
// guaranteed a place, and count - error never overstates it. A spoofed flood from random sources fills the table
// with entries whose count is mostly error, which is the truth: nobody stands out.
//
// Counts are per one-second window. The owner thread counts into the current table; when a batch starts a new
// window the tables swap (the completed one is what readers see), guarded by a sequence number (a seqlock: odd
// while the swap runs) so a reader on another thread never sees a half-cleared table and the owner never waits.

using System.Runtime.CompilerServices;
using CookieProxy.Limits;
using CookieProxy.Wire;

namespace CookieProxy.Diagnostics;

/// <summary>A source prefix and its sampled SYN count in one window; <see cref="Error"/> bounds the overcount.</summary>
public readonly record struct SourceCount(IpAddr Prefix, long Count, long Error)
{
    /// <summary>What the prefix certainly sent (in samples).</summary>
    public long Guaranteed => Count - Error;
}

/// <summary>A completed window of a <see cref="SourceSketch"/>, copied out.</summary>
public readonly record struct SourceWindow(int Entries, long StartUnixMs, long EndUnixMs, long Samples, int SampleEvery)
{
    public double Seconds => Math.Max(0.001, (EndUnixMs - StartUnixMs) / 1000.0);
}

/// <summary>Per capture thread: space-saving top sources over sampled SYNs, in one-second windows.</summary>
public sealed class SourceSketch
{
    public const int DefaultCapacity = 32;
    public const int DefaultSampleEvery = 32;
    public const long WindowMs = 1000;

    private readonly int _sampleEvery;
    private readonly SourcePrefixMask _prefix;
    private Entry[] _current;
    private Entry[] _completed;
    private int _currentUsed;
    private long _currentSamples;
    private long _windowStartMs;
    private uint _countdown;

    // Written under the seqlock only.
    private int _completedUsed;
    private long _completedStartMs;
    private long _completedEndMs;
    private long _completedSamples;
    private int _sequence;

    /// <param name="ipv4PrefixLength">Sources are counted by this prefix (0..32), as the limiter groups them.</param>
    /// <param name="ipv6PrefixLength">Likewise for IPv6 (0..128).</param>
    public SourceSketch(int ipv4PrefixLength = 24, int ipv6PrefixLength = 48, int capacity = DefaultCapacity,
        int sampleEvery = DefaultSampleEvery)
    {
        _prefix = new SourcePrefixMask(ipv4PrefixLength, ipv6PrefixLength);
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(sampleEvery, 1);
        Ipv4PrefixLength = ipv4PrefixLength;
        Ipv6PrefixLength = ipv6PrefixLength;
        _sampleEvery = sampleEvery;
        _countdown = (uint)sampleEvery;
        _current = new Entry[capacity];
        _completed = new Entry[capacity];
    }

    public int Ipv4PrefixLength { get; }

    public int Ipv6PrefixLength { get; }

    public int Capacity => _current.Length;

    public int SampleEvery => _sampleEvery;

    /// <summary>Owner thread, once per batch: closes the window when a second has passed.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Advance(long unixMs)
    {
        if (unixMs - _windowStartMs >= WindowMs)
        {
            Rotate(unixMs);
        }
    }

    /// <summary>Owner thread, per SYN: a decrement and a compare unless the SYN is sampled.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void OnSyn(in IpAddr source)
    {
        if (--_countdown == 0)
        {
            Record(source);
        }
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Record(in IpAddr source)
    {
        _countdown = (uint)_sampleEvery;
        _currentSamples++;
        _prefix.Apply(source, out ulong hi, out ulong lo);

        Entry[] table = _current;
        int used = _currentUsed;
        int min = 0;
        for (int i = 0; i < used; i++)
        {
            ref Entry e = ref table[i];
            if (e.Hi == hi && e.Lo == lo)
            {
                e.Count++;
                return;
            }
            if (e.Count < table[min].Count)
            {
                min = i;
            }
        }
        if (used < table.Length)
        {
            table[used] = new Entry { Hi = hi, Lo = lo, Count = 1 };
            _currentUsed = used + 1;
            return;
        }
        long inherited = table[min].Count;
        table[min] = new Entry { Hi = hi, Lo = lo, Count = inherited + 1, Error = inherited };
    }

    private void Rotate(long unixMs)
    {
        Interlocked.Increment(ref _sequence);    // odd: readers retry (a full fence: the swap stays inside)
        (_completed, _current) = (_current, _completed);
        _completedUsed = _currentUsed;
        _completedSamples = _currentSamples;
        // A window that saw no batch for a long time is reported as the time it really covered.
        _completedStartMs = _windowStartMs == 0 ? unixMs : _windowStartMs;
        _completedEndMs = unixMs;
        Array.Clear(_current, 0, _current.Length);
        _currentUsed = 0;
        _currentSamples = 0;
        _windowStartMs = unixMs;
        Interlocked.Increment(ref _sequence);    // even again
    }

    /// <summary>
    /// Any thread: copies the last completed window (up to <paramref name="destination"/>'s length entries, in
    /// table order) and describes it. Never blocks the owner; retries while a swap is under way.
    /// </summary>
    public SourceWindow CopyCompleted(Span<SourceCount> destination)
    {
        var spin = new SpinWait();
        while (true)
        {
            int before = Volatile.Read(ref _sequence);
            if ((before & 1) == 0)
            {
                Entry[] table = Volatile.Read(ref _completed);
                int used = Math.Min(Volatile.Read(ref _completedUsed), Math.Min(destination.Length, table.Length));
                for (int i = 0; i < used; i++)
                {
                    Entry e = table[i];
                    destination[i] = new SourceCount(new IpAddr(e.Hi, e.Lo), e.Count, e.Error);
                }
                var window = new SourceWindow(used, Volatile.Read(ref _completedStartMs), Volatile.Read(ref _completedEndMs),
                    Volatile.Read(ref _completedSamples), _sampleEvery);
                Interlocked.MemoryBarrier();    // the copy's loads stay before the second sequence read
                if (Volatile.Read(ref _sequence) == before)
                {
                    return window;
                }
            }
            spin.SpinOnce();
        }
    }

    private struct Entry
    {
        public ulong Hi;
        public ulong Lo;
        public long Count;
        public long Error;
    }
}
