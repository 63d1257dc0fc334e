using System.Net;
using System.Net.Sockets;
using CookieProxy.ProxyProtocol;

namespace CookieProxy.Host.Backend;

/// <summary>
/// Establishes a connected socket: <see cref="Socket.ConnectAsync(EndPoint, CancellationToken)"/> by default;
/// tests substitute one that never completes (a connect timeout without sending to a foreign address).
/// </summary>
public delegate ValueTask BackendConnector(Socket socket, EndPoint remote, CancellationToken cancellationToken);

/// <summary>Knobs of the backend side of a flow. The thresholds bound the memory one flow can hold.</summary>
public sealed class BackendOptions
{
    /// <summary>How long a non-blocking connect may take before the client is reset.</summary>
    public TimeSpan ConnectTimeout { get; init; } = TimeSpan.FromSeconds(3);

    /// <summary>Header written to the backend right after connect, before any client byte.</summary>
    public ProxyProtocolVersion ProxyProtocol { get; init; } = ProxyProtocolVersion.None;

    /// <summary>
    /// Client→backend: the owner stops copying client bytes into the output pipe while this many bytes are
    /// written but not yet sent. What stays in the endpoint shrinks the window advertised to the client.
    /// </summary>
    public int OutputPauseThreshold { get; init; } = 64 * 1024;

    /// <summary>The send loop wakes a paused owner once unsent bytes fall to this level.</summary>
    public int OutputResumeThreshold { get; init; } = 32 * 1024;

    /// <summary>Replaces the connect call (tests). Null = <see cref="Socket.ConnectAsync(EndPoint, CancellationToken)"/>.</summary>
    public BackendConnector? Connector { get; init; }

    /// <summary>Worst-case bytes one connection holds in its output pipe (plus one pool block of slack). Backend
    /// bytes go straight into the client endpoint's send buffer, which is counted there.</summary>
    public long MaxBufferedBytes => (long)OutputPauseThreshold + BlockMemoryPool.BlockSize;

    public void Validate()
    {
        if (ConnectTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(ConnectTimeout), ConnectTimeout, "Must be positive.");
        }
        CheckThresholds(OutputPauseThreshold, OutputResumeThreshold, nameof(OutputPauseThreshold));
    }

    private static void CheckThresholds(int pause, int resume, string name)
    {
        if (pause <= 0 || resume < 0 || resume > pause)
        {
            throw new ArgumentOutOfRangeException(name, pause, "Need pause > 0 and 0 <= resume <= pause.");
        }
    }
}
