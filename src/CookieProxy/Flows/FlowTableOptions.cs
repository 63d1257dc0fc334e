using CookieProxy.Host.Backend;
using CookieProxy.Tcp;

namespace CookieProxy.Host.Flows;

/// <summary>Limits of one capture thread's flow table.</summary>
public sealed class FlowTableOptions
{
    /// <summary>Beyond this many flows a new validated connection is refused (RST, DropReason.FlowTableFull).</summary>
    public int MaxFlows { get; init; } = 65_536;

    /// <summary>
    /// Upper bound for one flow's buffers: endpoint receive + send buffers plus both pipe thresholds. Checked
    /// against <see cref="Tcp"/> and <see cref="Backend"/> when the table is built (a configuration error throws).
    /// </summary>
    public long MaxBufferedBytesPerFlow { get; init; } = 1024 * 1024;

    /// <summary>
    /// Bytes all flows of this table may hold. A new connection is admitted only while the bytes in use leave
    /// room for one more worst-case flow; otherwise RST and DropReason.BufferLimit.
    /// </summary>
    public long MaxBufferedBytesTotal { get; init; } = 1024L * 1024 * 1024;

    public TcpConfig Tcp { get; init; } = new();

    /// <summary>
    /// Free ring buffer arrays (the endpoints' receive and send buffers) the table keeps for its next flows, in
    /// bytes; arrays returned beyond it go back to the GC. Pooled arrays hold no data, so they are not part of
    /// the buffered bytes the caps above count; the table's rings take (2 × flows + pooled) × ring size.
    /// </summary>
    public long RingPoolBytes { get; init; } = 32L * 1024 * 1024;

    /// <summary>
    /// Arrays the ring pool keeps: <see cref="RingPoolBytes"/>, and never more idle memory than
    /// <see cref="MaxBufferedBytesTotal"/> (a small --max-buffer-mb also keeps the pool small).
    /// </summary>
    public int MaxPooledRings =>
        (int)Math.Min(Math.Min(RingPoolBytes, MaxBufferedBytesTotal) / Math.Max(Tcp.ReceiveBufferSize, 1), int.MaxValue);

    /// <summary>
    /// Give the pages of free ring arrays beyond <see cref="MaxPooledRings"/> back to the kernel and keep the arrays
    /// (Linux; elsewhere they go to the GC as before): the resident memory of a burst is returned when it ends, and
    /// the next burst reuses the arrays. See <see cref="RingBufferPool"/>.
    /// </summary>
    public bool DecommitFreeRings { get; init; } = true;

    /// <summary>
    /// Decommitted free arrays kept beyond the hot ones: enough for every flow's two rings, but never more address
    /// space than four times <see cref="MaxBufferedBytesTotal"/> (they cost no memory, only mappings).
    /// </summary>
    public int MaxColdPooledRings =>
        (int)Math.Min(2L * MaxFlows, Math.Min(4 * MaxBufferedBytesTotal / Math.Max(Tcp.ReceiveBufferSize, 1), int.MaxValue));

    /// <summary>
    /// Where the decommitted free arrays go instead of this table's own cold list: one depot shared by every capture
    /// thread's table, so a wave the threads split differently reuses the last wave's arrays (null: per table).
    /// Its arrays must be <see cref="TcpConfig.ReceiveBufferSize"/> long; used only with <see cref="DecommitFreeRings"/>.
    /// </summary>
    public ColdRingDepot? SharedColdRings { get; init; }

    /// <summary>
    /// The part of <see cref="MaxBufferedBytesTotal"/> kept for the first window of new connections: established
    /// flows grow their windows and buffers only while the table holds less than the rest, so under pressure a
    /// newcomer still gets in without waiting for an eviction.
    /// </summary>
    public long NewFlowReserveBytes => MaxBufferedBytesTotal / 8;

    /// <summary>What a new flow holds before it sends anything: the window our SYN+ACK advertised (unscaled, at most 64 KiB).</summary>
    public long InitialFlowBytes => Math.Min(Tcp.ReceiveBufferSize, ushort.MaxValue);

    public BackendOptions Backend { get; init; } = new();

    /// <summary>
    /// Flows one source prefix (<see cref="SourcePrefixV4"/>, <see cref="SourcePrefixV6"/>) may hold in this table;
    /// 0 = the default, a quarter of <see cref="MaxFlows"/>. Beyond it a new connection from that source is refused
    /// (RST, DropReason.SourceFlowLimit), so one address opening thousands of idle connections never fills the
    /// table for everyone else. Exact per source only when all its traffic reaches one table (--fanout source).
    /// </summary>
    public int MaxFlowsPerSource { get; init; }

    /// <summary>The per-source cap in force: <see cref="MaxFlowsPerSource"/>, or a quarter of <see cref="MaxFlows"/>.</summary>
    public int EffectiveMaxFlowsPerSource => MaxFlowsPerSource > 0 ? MaxFlowsPerSource : Math.Max(1, MaxFlows / 4);

    /// <summary>IPv4 sources sharing this many leading bits count as one source for <see cref="MaxFlowsPerSource"/>.</summary>
    public int SourcePrefixV4 { get; init; } = 32;

    /// <summary>IPv6 sources sharing this many leading bits count as one source (a /64 is one subscriber's LAN).</summary>
    public int SourcePrefixV6 { get; init; } = 64;

    /// <summary>
    /// When the table is full, or the buffer cap leaves no room, a new connection evicts (RST both sides) the
    /// least recently active flow if it has moved no byte for this long, oldest first; 0 = never evict (refuse
    /// the new connection instead). Linux reaps orphans and haproxy its timed-out sessions the same way: under
    /// pressure the idle give way to the new. A slowloris client dribbling a byte every few seconds is idle
    /// most of that time; a transfer that moves bytes is not.
    /// </summary>
    public long EvictIdleMs { get; init; } = 2_000;

    /// <summary>
    /// The client side has closed gracefully but the backend has not yet taken the client's last bytes and
    /// closed: after this long the backend is reset (a backend that stopped reading would otherwise hold the
    /// flow forever); 0 = wait forever.
    /// </summary>
    public long BackendLingerMs { get; init; } = 10_000;

    /// <summary>Worst case of one flow with these settings.</summary>
    public long WorstCaseBytesPerFlow => (long)Tcp.ReceiveBufferSize + Tcp.SendBufferSize + Backend.MaxBufferedBytes;

    public void Validate()
    {
        Backend.Validate();
        if (MaxFlows <= 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxFlows), MaxFlows, "Must be positive.");
        }
        if (RingPoolBytes < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(RingPoolBytes), RingPoolBytes, "Must not be negative.");
        }
        if (WorstCaseBytesPerFlow > MaxBufferedBytesPerFlow)
        {
            throw new ArgumentException(
                $"Buffers of one flow can reach {WorstCaseBytesPerFlow} bytes, above MaxBufferedBytesPerFlow {MaxBufferedBytesPerFlow}.");
        }
        if (MaxBufferedBytesTotal < WorstCaseBytesPerFlow)
        {
            throw new ArgumentException("MaxBufferedBytesTotal must hold at least one flow.");
        }
        if (MaxFlowsPerSource < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(MaxFlowsPerSource), MaxFlowsPerSource, "Must not be negative (0 = a quarter of MaxFlows).");
        }
        if (SourcePrefixV4 is < 0 or > 32 || SourcePrefixV6 is < 0 or > 128)
        {
            throw new ArgumentOutOfRangeException(nameof(SourcePrefixV4), "Prefix lengths are 0..32 (IPv4) and 0..128 (IPv6).");
        }
        if (EvictIdleMs < 0 || BackendLingerMs < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(EvictIdleMs), "Times must not be negative (0 = off).");
        }
    }
}
