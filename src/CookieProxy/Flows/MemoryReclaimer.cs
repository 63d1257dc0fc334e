using System.Runtime;

namespace CookieProxy.Host.Flows;

/// <summary>
/// Gives memory back after a wave of connections. A flow's rings go back to the table's pool (decommitted beyond
/// its hot few), but the rest of a flow (endpoint, backend socket, pipe, their small arrays) is garbage that a
/// quiet process never collects, and the GC keeps the segments it has emptied. Once a table has shrunk to a quarter
/// of a peak of at least <see cref="MinPeakFlows"/> flows, one aggressive full collection (which compacts and
/// decommits what it can) runs on the thread pool, at most every <see cref="MinIntervalMs"/>. Process-wide: every
/// table asks, one collection serves all.
/// </summary>
public static class MemoryReclaimer
{
    /// <summary>Smaller peaks are not worth a full blocking collection.</summary>
    public const int MinPeakFlows = 256;

    public const long MinIntervalMs = 30_000;

    private static long s_lastMs = long.MinValue / 2;
    private static int s_running;

    /// <summary>Full collections this reclaimer ran.</summary>
    public static long Collections => Interlocked.Read(ref s_collections);

    private static long s_collections;

    /// <summary>Called by a table as a flow leaves it. Cheap unless a reclaim is due.</summary>
    internal static void OnFlowsFell(int flowsNow, ref int peakFlows, long nowMs)
    {
        if (peakFlows < MinPeakFlows || flowsNow > peakFlows / 4)
        {
            return;
        }
        if (nowMs - Volatile.Read(ref s_lastMs) < MinIntervalMs || Interlocked.Exchange(ref s_running, 1) != 0)
        {
            return;
        }
        peakFlows = flowsNow;
        Volatile.Write(ref s_lastMs, nowMs);
        ThreadPool.UnsafeQueueUserWorkItem(static _ =>
        {
            try
            {
                GCSettings.LargeObjectHeapCompactionMode = GCLargeObjectHeapCompactionMode.CompactOnce;
                GC.Collect(GC.MaxGeneration, GCCollectionMode.Aggressive, blocking: true, compacting: true);
                Interlocked.Increment(ref s_collections);
            }
            finally
            {
                Volatile.Write(ref s_running, 0);
            }
        }, null);
    }
}
