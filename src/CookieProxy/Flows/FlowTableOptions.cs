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

    public BackendOptions Backend { get; init; } = new();

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
    }
}
