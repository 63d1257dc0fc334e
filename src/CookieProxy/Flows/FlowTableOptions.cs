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
