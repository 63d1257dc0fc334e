using System.Runtime.CompilerServices;

namespace CookieProxy.Diagnostics;

/// <summary>What <see cref="ListenerCounters"/> counts for each protected endpoint. Keep <see cref="Count"/> last.</summary>
public enum ListenerCounter : byte
{
    /// <summary>SYNs to the endpoint with no flow (each answered or refused).</summary>
    SynReceived,

    /// <summary>SYNs refused by the per-source SYN budget.</summary>
    SynRateLimited,

    /// <summary>ACKs whose cookie validated.</summary>
    CookieValid,

    /// <summary>ACKs with no flow and no valid cookie.</summary>
    CookieInvalid,

    /// <summary>Flows created (a valid cookie that the caps let through).</summary>
    FlowsCreated,

    /// <summary>Flows removed again; created - closed = active.</summary>
    FlowsClosed,

    Count,
}

/// <summary>
/// Per-listener counts of one capture thread (<c>cookieproxy top</c>): one small array, indexed by listener
/// (the <see cref="Responder.ProtectedEndpoints"/> index) times <see cref="ListenerCounter"/>. Written only by the
/// owner thread with plain increments, read by others a few increments stale, like <see cref="ProxyCounters"/>.
/// An index beyond the array (a listener added since it was sized) is not counted rather than thrown on;
/// the owner grows the array with <see cref="EnsureListeners"/>.
/// </summary>
public sealed class ListenerCounters
{
    private const int Stride = (int)ListenerCounter.Count;

    private long[] _values;

    public ListenerCounters(int listeners = 1)
    {
        _values = new long[Math.Max(1, listeners) * Stride];
    }

    /// <summary>Listeners the array has room for.</summary>
    public int Listeners => Volatile.Read(ref _values).Length / Stride;

    /// <summary>Owner thread: counts one event for <paramref name="listener"/>; ignored out of range.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Increment(int listener, ListenerCounter c)
    {
        long[] values = _values;
        int i = listener * Stride + (int)c;
        if ((uint)i < (uint)values.Length)
        {
            values[i]++;
        }
    }

    /// <summary>Any thread: the count (0 for a listener beyond the array).</summary>
    public long Read(int listener, ListenerCounter c)
    {
        long[] values = Volatile.Read(ref _values);
        int i = listener * Stride + (int)c;
        return (uint)i < (uint)values.Length ? Volatile.Read(ref values[i]) : 0;
    }

    /// <summary>Owner thread: makes room for <paramref name="listeners"/> (keeps the counts so far).</summary>
    public void EnsureListeners(int listeners)
    {
        long[] values = _values;
        if (listeners * Stride <= values.Length)
        {
            return;
        }
        var grown = new long[listeners * Stride];
        values.CopyTo(grown, 0);
        Volatile.Write(ref _values, grown);
    }

    /// <summary>Adds this thread's counts into <paramref name="total"/>, which grows to fit.</summary>
    public void AddTo(ListenerCounters total)
    {
        long[] values = Volatile.Read(ref _values);
        total.EnsureListeners(values.Length / Stride);
        long[] sum = total._values;
        for (int i = 0; i < values.Length; i++)
        {
            sum[i] += Volatile.Read(ref values[i]);
        }
    }
}
