using System.Net;
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

/// <summary>The per-listener counters' names and help, defined once (JSON keys, <c>top</c>, Prometheus).</summary>
public static class ListenerCounterTable
{
    /// <summary>The stable snake_case name (JSON key and Prometheus name part).</summary>
    public static string NameOf(ListenerCounter c) => Entry(c).Name;

    public static string HelpOf(ListenerCounter c) => Entry(c).Help;

    private static (string Name, string Help) Entry(ListenerCounter c) => c switch
    {
        ListenerCounter.SynReceived => ("syn_received",
            "SYNs to the listener with no flow that reached user space (the XDP program counts its own per CPU, in the totals only)."),
        ListenerCounter.SynRateLimited => ("syn_rate_limited", "SYNs to the listener refused by the per-source SYN budget."),
        ListenerCounter.CookieValid => ("cookie_valid", "ACKs to the listener whose cookie validated."),
        ListenerCounter.CookieInvalid => ("cookie_invalid", "ACKs to the listener with no flow and no valid cookie."),
        ListenerCounter.FlowsCreated => ("flows_created", "Flows of the listener created."),
        ListenerCounter.FlowsClosed => ("flows_closed", "Flows of the listener removed."),
        _ => throw new ArgumentOutOfRangeException(nameof(c), c, null),
    };
}

/// <summary>
/// Per-listener counts of one capture thread (<c>cookieproxy top</c>): one small array of
/// slots times <see cref="ListenerCounter"/>. A slot belongs to one endpoint for the life of the process
/// (<see cref="SlotFor"/>), so a reload that reorders, adds or retires listeners does not mix their counts.
/// Written only by the owner thread with plain increments, read by others a few increments stale, like
/// <see cref="ProxyCounters"/>. A slot beyond the array is not counted rather than thrown on.
/// </summary>
public sealed class ListenerCounters
{
    private const int Stride = (int)ListenerCounter.Count;

    private long[] _values = new long[4 * Stride];
    private IPEndPoint[] _endpoints = [];

    /// <summary>The endpoint of each slot (any thread; grows only).</summary>
    public IReadOnlyList<IPEndPoint> Endpoints => Volatile.Read(ref _endpoints);

    /// <summary>Owner thread: the slot of <paramref name="endpoint"/>, given one on first sight.</summary>
    public int SlotFor(IPEndPoint endpoint)
    {
        IPEndPoint[] known = _endpoints;
        for (int i = 0; i < known.Length; i++)
        {
            if (known[i].Equals(endpoint))
            {
                return i;
            }
        }
        int slot = known.Length;
        long[] values = _values;
        if ((slot + 1) * Stride > values.Length)
        {
            var grown = new long[Math.Max(values.Length * 2, (slot + 1) * Stride)];
            values.CopyTo(grown, 0);
            Volatile.Write(ref _values, grown);    // before the endpoint: a reader that sees the slot sees its room
        }
        Volatile.Write(ref _endpoints, [.. known, endpoint]);
        return slot;
    }

    /// <summary>Owner thread: counts one event for <paramref name="slot"/>; ignored out of range.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Increment(int slot, ListenerCounter c)
    {
        long[] values = _values;
        int i = slot * Stride + (int)c;
        if ((uint)i < (uint)values.Length)
        {
            values[i]++;
        }
    }

    /// <summary>Any thread: the count of a slot (0 for an unknown one).</summary>
    public long Read(int slot, ListenerCounter c)
    {
        long[] values = Volatile.Read(ref _values);
        int i = slot * Stride + (int)c;
        return slot >= 0 && (uint)i < (uint)values.Length ? Volatile.Read(ref values[i]) : 0;
    }

    /// <summary>Any thread: the count of <paramref name="endpoint"/> (0 if this thread never saw it).</summary>
    public long Read(IPEndPoint endpoint, ListenerCounter c)
    {
        IPEndPoint[] known = Volatile.Read(ref _endpoints);
        return Read(Array.IndexOf(known, endpoint), c);
    }

    /// <summary>Adds this thread's counts into <paramref name="total"/> by endpoint (the caller owns
    /// <paramref name="total"/>).</summary>
    public void AddTo(ListenerCounters total)
    {
        IPEndPoint[] known = Volatile.Read(ref _endpoints);
        for (int slot = 0; slot < known.Length; slot++)
        {
            int into = total.SlotFor(known[slot]);
            for (int c = 0; c < Stride; c++)
            {
                total._values[into * Stride + c] += Read(slot, (ListenerCounter)c);
            }
        }
    }
}
