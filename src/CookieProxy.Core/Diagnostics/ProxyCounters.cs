using System.Runtime.CompilerServices;

namespace CookieProxy.Diagnostics;

/// <summary>
/// Counters owned by one capture thread and written only by it (plain increments, no atomics:
/// Linux keeps SYNPROXY's counters per CPU for the same reason). Readers on other threads call
/// <see cref="AddTo"/> and accept values that are a few increments stale.
/// </summary>
public sealed class ProxyCounters
{
    public long FramesReceived;
    public long SynReceived;
    public long SynAckSent;
    public long CookieValid;
    public long CookieInvalid;
    public long CookieRetransmit;
    public long RstSent;
    public long FlowsCreated;
    public long FlowsClosed;
    public long FlowsActive;
    public long BackendConnectFailed;
    public long BytesToBackend;
    public long BytesToClient;
    public long SegmentsToClient;
    public long Retransmits;
    /// <summary>Frames the kernel dropped before we could read them (ring full). Set from device stats on read.</summary>
    public long CaptureDropped;
    /// <summary>Ring buffer arrays the flow table's pool allocated. Set from the pool on read, like the two below.</summary>
    public long RingBuffersCreated;
    /// <summary>Ring buffer arrays held by flows now.</summary>
    public long RingBuffersInUse;
    /// <summary>Free ring buffer arrays kept for the next flows.</summary>
    public long RingBuffersPooled;

    /// <summary>SYN+ACKs the XDP responder sent (those SYNs never reach user space).</summary>
    public long XdpSynAckSent;
    /// <summary>SYNs to a protected endpoint the XDP responder left to user space (unusual shape, bad checksum).</summary>
    public long XdpSynPassed;
    public long XdpInternalErrors;

    /// <summary>Every SYN to a protected endpoint, answered in the kernel or here.</summary>
    public long TotalSynReceived => SynReceived + XdpSynAckSent;

    public long TotalSynAckSent => SynAckSent + XdpSynAckSent;

    private readonly long[] _drops = new long[(int)DropReason.Count];

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
        total.FramesReceived += Volatile.Read(ref FramesReceived);
        total.SynReceived += Volatile.Read(ref SynReceived);
        total.SynAckSent += Volatile.Read(ref SynAckSent);
        total.CookieValid += Volatile.Read(ref CookieValid);
        total.CookieInvalid += Volatile.Read(ref CookieInvalid);
        total.CookieRetransmit += Volatile.Read(ref CookieRetransmit);
        total.RstSent += Volatile.Read(ref RstSent);
        total.FlowsCreated += Volatile.Read(ref FlowsCreated);
        total.FlowsClosed += Volatile.Read(ref FlowsClosed);
        total.FlowsActive += Volatile.Read(ref FlowsActive);
        total.BackendConnectFailed += Volatile.Read(ref BackendConnectFailed);
        total.BytesToBackend += Volatile.Read(ref BytesToBackend);
        total.BytesToClient += Volatile.Read(ref BytesToClient);
        total.SegmentsToClient += Volatile.Read(ref SegmentsToClient);
        total.Retransmits += Volatile.Read(ref Retransmits);
        total.CaptureDropped += Volatile.Read(ref CaptureDropped);
        total.RingBuffersCreated += Volatile.Read(ref RingBuffersCreated);
        total.RingBuffersInUse += Volatile.Read(ref RingBuffersInUse);
        total.RingBuffersPooled += Volatile.Read(ref RingBuffersPooled);
        total.XdpSynAckSent += Volatile.Read(ref XdpSynAckSent);
        total.XdpSynPassed += Volatile.Read(ref XdpSynPassed);
        total.XdpInternalErrors += Volatile.Read(ref XdpInternalErrors);
        for (int i = 0; i < _drops.Length; i++)
        {
            total._drops[i] += Volatile.Read(ref _drops[i]);
        }
    }
}
