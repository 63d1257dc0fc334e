using System.Runtime.CompilerServices;

namespace CookieProxy.Diagnostics;

/// <summary>
/// Counters owned by one capture thread and written only by it (plain increments, no atomics:
/// Linux keeps SYNPROXY's counters per CPU for the same reason). Readers on other threads call
/// <see cref="AddTo"/> and accept values that are a few increments stale. The counters themselves are
/// defined once, in <see cref="Counter"/> and <see cref="CounterTable"/>.
/// </summary>
public sealed class ProxyCounters
{
    private readonly long[] _values = new long[(int)Counter.Count];
    private readonly long[] _drops = new long[(int)DropReason.Count];

    /// <summary>The counter's slot: <c>counters[Counter.SynReceived]++</c> on the owner thread.</summary>
    public ref long this[Counter c]
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => ref _values[(int)c];
    }

    /// <summary>A read from another thread (a few increments stale).</summary>
    public long Read(Counter c) => Volatile.Read(ref _values[(int)c]);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Drop(DropReason reason) => _drops[(int)reason]++;

    public long Drops(DropReason reason) => Volatile.Read(ref _drops[(int)reason]);

    public long TotalDrops
    {
        get
        {
            long sum = 0;
            for (int i = 1; i < _drops.Length; i++)
            {
                sum += Volatile.Read(ref _drops[i]);
            }
            return sum;
        }
    }

    /// <summary>Adds this thread's counters into <paramref name="total"/> (summing per-thread counters on read).</summary>
    public void AddTo(ProxyCounters total)
    {
        for (int i = 0; i < _values.Length; i++)
        {
            total._values[i] += Volatile.Read(ref _values[i]);
        }
        for (int i = 0; i < _drops.Length; i++)
        {
            total._drops[i] += Volatile.Read(ref _drops[i]);
        }
    }
}
