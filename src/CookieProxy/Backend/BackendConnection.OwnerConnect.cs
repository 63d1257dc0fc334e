using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;
using CookieProxy.Platform;

namespace CookieProxy.Host.Backend;

/// <summary>
/// The backend connect on the owner (capture) thread: connect(2) on the non-blocking socket right where the cookie
/// ACK validated, then the owner's own epoll set reports the end of the handshake
/// (<see cref="IBackendReadiness.ArmWritable"/>) and the owner finishes it in the same loop iteration. Against
/// a connect task on the thread pool this saves a thread hop and a wake-up of the owner per new connection, and
/// the socket is never registered with .NET's socket engine, whose epoll thread would otherwise wake on every
/// data and send-space edge of the socket for the rest of the connection (the owner reads it itself).
/// On loopback the handshake is done before connect(2) returns EINPROGRESS (the kernel processes the SYN and the
/// SYN+ACK in the softirq of the connect itself), so the request goes out in the same iteration.
/// Not used with a custom <see cref="BackendOptions.Connector"/>, off Linux, or without the owner's event loop:
/// the connect task on the thread pool does it then.
/// <para>
/// Once connected the socket stays on the owner's epoll set, edge-triggered (<see cref="IBackendReadiness.WatchReadable"/>),
/// as nginx registers its connections once: a response costs the owner one recv(2) (a short read means the socket is
/// empty; the report's hang-up bit says whether EOF waits behind the data), with no re-arm.
/// </para>
/// </summary>
public sealed partial class BackendConnection
{
    private int _ownerConnect;       // 1 while the owner's connect is in flight (owner and timer race for it)
    private Timer? _connectTimer;

    /// <summary>Owner thread, from <see cref="Start"/>: true when the connect was started (or ended) here.</summary>
    private bool TryConnectOnOwner()
    {
        if (!OperatingSystem.IsLinux() || _options.Connector is not null || _readiness is null || _remote is not IPEndPoint remote)
        {
            return false;
        }
        // TCP_NODELAY: the client's segments already carry the sender's batching; Kestrel sets it too.
        _socket.NoDelay = true;
        _socket.Blocking = false;
        int errno = NonBlockingConnect.Start(_socket.SafeHandle, remote);
        if (errno == 0)
        {
            CompleteOwnerConnect();
            return true;
        }
        if (errno == NonBlockingConnect.InProgress && NonBlockingConnect.HasEnded(_socket.SafeHandle))
        {
            errno = NonBlockingConnect.TakeError(_socket.SafeHandle);    // loopback: done within connect(2) itself
            if (errno == 0)
            {
                CompleteOwnerConnect();
                return true;
            }
        }
        if (errno != NonBlockingConnect.InProgress)
        {
            FailOwnerConnect(errno);
            return true;
        }
        Volatile.Write(ref _ownerConnect, 1);
        if (!_readiness.ArmWritable(_socket, _readinessOwner ?? this))
        {
            Volatile.Write(ref _ownerConnect, 0);
            Close(BackendCloseReason.Aborted, SocketError.OperationAborted, abortive: true);
            return true;
        }
        _connectTimer = new Timer(static state => ((BackendConnection)state!).OnConnectTimeout(), this, _options.ConnectTimeout,
            Timeout.InfiniteTimeSpan);
        return true;
    }

    /// <summary>Owner thread: the connecting socket turned writable or failed; SO_ERROR says which.</summary>
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    private void FinishOwnerConnect()
    {
        _connectTimer?.Dispose();
        if (State == BackendState.Closed)
        {
            return;    // aborted meanwhile: the reason is recorded and the owner notified
        }
        int errno = NonBlockingConnect.TakeError(_socket.SafeHandle);
        if (errno != 0)
        {
            FailOwnerConnect(errno);
            return;
        }
        CompleteOwnerConnect();
    }

    /// <summary>Thread pool: the connect did not finish within <see cref="BackendOptions.ConnectTimeout"/>.</summary>
    private void OnConnectTimeout()
    {
        if (Interlocked.Exchange(ref _ownerConnect, 0) == 1)
        {
            Close(BackendCloseReason.ConnectTimeout, SocketError.TimedOut, abortive: true);
        }
    }

    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    private void FailOwnerConnect(int errno)
    {
        _connectTimer?.Dispose();
        SocketError error = NonBlockingConnect.ToSocketError(errno);
        BackendCloseReason reason = error switch
        {
            SocketError.ConnectionRefused => BackendCloseReason.ConnectRefused,
            SocketError.TimedOut => BackendCloseReason.ConnectTimeout,
            SocketError.OperationAborted => BackendCloseReason.Aborted,
            _ => BackendCloseReason.ConnectFailed,
        };
        Close(reason, error, abortive: true);
    }

    /// <summary>
    /// Owner thread: connected. The PROXY header goes first: straight into the socket, or what it does not take
    /// into the output pipe ahead of every client byte. No notify: the caller settles the flow (the cookie ACK's
    /// settle, or the readiness event's).
    /// </summary>
    private void CompleteOwnerConnect()
    {
        if (_proxyHeader is not null)
        {
            int sent = SendDirect(_proxyHeader);
            if (sent < _proxyHeader.Length)
            {
                ReadOnlySpan<byte> rest = _proxyHeader.AsSpan(sent);
                PipeWriter writer = _output.Writer;
                CopyToWriter(writer, rest);
                Interlocked.Add(ref _outputPending, rest.Length);
                _ = writer.FlushAsync().Result;    // no pause threshold: completes at once
                EnsureSendLoop();
            }
        }
        EnterConnected();
        // From now on the owner's epoll set reports every arrival on this socket by itself (edge-triggered):
        // no epoll_ctl per response, and a short read needs no second recv(2) to meet EAGAIN.
        _watched = _readiness!.WatchReadable(_socket, _readinessOwner ?? this);
        if (_watched)
        {
            // Nothing can have come yet but a banner, and the watch reports what is there when it is added: no
            // recv(2) that would only meet EAGAIN before the request has even gone out.
            Volatile.Write(ref _readable, 0);
        }
    }
}
