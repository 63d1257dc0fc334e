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

    /// <summary>Backend→client: the receive loop stops (its FlushAsync pends) once this many bytes wait in the input pipe.</summary>
    public int InputPauseThreshold { get; init; } = 64 * 1024;

    /// <summary>The receive loop resumes once the owner has taken the input pipe down to this level.</summary>
    public int InputResumeThreshold { get; init; } = 32 * 1024;

    /// <summary>Smallest buffer the receive loop asks the pipe for; it gets a whole pool block (16 KiB), at most one block of slack past the pause threshold.</summary>
    public int MinimumReceiveSegmentSize { get; init; } = 4096;

    /// <summary>Replaces the connect call (tests). Null = <see cref="Socket.ConnectAsync(EndPoint, CancellationToken)"/>.</summary>
    public BackendConnector? Connector { get; init; }

    /// <summary>Worst-case bytes one connection holds in its two pipes (plus one receive segment of slack).</summary>
    public long MaxBufferedBytes => (long)OutputPauseThreshold + InputPauseThreshold + BlockMemoryPool.BlockSize;

    public void Validate()
    {
        if (ConnectTimeout <= TimeSpan.Zero)
        {
            throw new ArgumentOutOfRangeException(nameof(ConnectTimeout), ConnectTimeout, "Must be positive.");
        }
        CheckThresholds(OutputPauseThreshold, OutputResumeThreshold, nameof(OutputPauseThreshold));
        CheckThresholds(InputPauseThreshold, InputResumeThreshold, nameof(InputPauseThreshold));
        if (MinimumReceiveSegmentSize <= 0 || MinimumReceiveSegmentSize > BlockMemoryPool.BlockSize)
        {
            throw new ArgumentOutOfRangeException(nameof(MinimumReceiveSegmentSize), MinimumReceiveSegmentSize,
                $"Must be 1..{BlockMemoryPool.BlockSize} (one pool block).");
        }
    }

    private static void CheckThresholds(int pause, int resume, string name)
    {
        if (pause <= 0 || resume < 0 || resume > pause)
        {
            throw new ArgumentOutOfRangeException(name, pause, "Need pause > 0 and 0 <= resume <= pause.");
        }
    }
}
