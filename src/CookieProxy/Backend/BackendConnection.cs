using System.Buffers;
using System.Diagnostics;
using System.IO.Pipelines;
using System.Net;
using System.Net.Sockets;

namespace CookieProxy.Host.Backend;

public enum BackendState
{
    Connecting,
    Connected,
    /// <summary>The socket is closed; <see cref="BackendConnection.CloseReason"/> says why.</summary>
    Closed,
}

/// <summary>How the backend socket ended. Recorded once, by whoever closes first (Kestrel's one-shot shutdown).</summary>
public enum BackendCloseReason
{
    None,
    /// <summary>Both directions ended with FIN: our Shutdown(Send) after the output drained, and the backend's EOF.</summary>
    Graceful,
    ConnectRefused,
    ConnectTimeout,
    /// <summary>Any other connect error (unreachable, PROXY header not sendable, ...).</summary>
    ConnectFailed,
    /// <summary>The backend reset the connection, or a send/receive failed after connect.</summary>
    Reset,
    /// <summary>We reset it (RST: SO_LINGER 0 then close): the client went away or the flow was disposed early.</summary>
    Aborted,
}

/// <summary>
/// The kernel socket to the backend, modelled on Kestrel's SocketConnection: a connect task and a send loop
/// draining the output pipe (proxy→backend), started only once the socket did not take client bytes at once
/// (until then the owner sends them itself, and sends the FIN itself too). Backend→proxy bytes are received by the owner itself
/// (<see cref="Receive"/>: non-blocking, straight into the client endpoint's send buffer, no pipe, no copy
/// in between). When the socket runs dry, readability is awaited on the owner's own event loop
/// (<see cref="IBackendReadiness"/>, Linux epoll) or else on the thread pool with a zero-byte receive
/// (Kestrel's WaitForDataBeforeAllocatingBuffer). A busy flow therefore moves its bytes with no thread hop
/// at all, like an event loop (haproxy, nginx) would.
/// <para>
/// Threading: the connect task, the send loop and the thread-pool readability wait run on the pool and never
/// touch the client's TcpEndpoint. Every event (connected, connect failed, readable, error, output drained,
/// closed) is reported through <c>notify</c>, which enqueues the flow on its owner's work queue and wakes
/// the owner. All other public members are called by the owner (capture) thread only and never block or await.
/// </para>
/// </summary>
public sealed partial class BackendConnection : IDisposable
{
    private const int OutputSegmentSize = BlockMemoryPool.BlockSize;

    private readonly Socket _socket;
    private readonly EndPoint _remote;
    private readonly BackendOptions _options;
    private readonly byte[]? _proxyHeader;
    private readonly Action _notify;
    private readonly IBackendReadiness? _readiness;
    private readonly object? _readinessOwner;
    private readonly Pipe _output;

    private volatile int _state;              // BackendState (Connecting/Connected); Closed is derived from _closeReason
    private int _closeReason;                 // BackendCloseReason, set once
    private volatile int _socketError;        // SocketError that closed it
    private volatile bool _inputEof;          // the owner's Receive saw the backend's FIN
    private volatile bool _outputShutDown;    // send loop sent everything, then FIN
    private long _outputPending;              // written to the output pipe by the owner, not yet sent
    private int _readable;                    // 1 = the owner should try Receive; 0 = a readability wait is armed (or due)
    private int _ownerWaitingForOutput;       // 1 = the owner stopped at the pause threshold and wants a notify
    private int _halvesOpen;                  // receive (owner, until EOF) and send loop: both ended with FIN = graceful

    // Owner-thread state.
    private bool _watched;                    // on the owner's epoll set for good, edge-triggered (WatchReadable)
    private bool _hangUpReported;             // a report of the watch said EOF or an error waits: read to the end
    private bool _started;
    private bool _outputCompleted;
    private bool _sendLoopStarted;
    private bool _disposed;

    /// <param name="remote">The backend to connect to.</param>
    /// <param name="proxyHeader">Bytes to send right after connect and before any client byte (a PROXY header); empty = none.</param>
    /// <param name="notify">Called from thread-pool threads on every event; must be cheap and thread-safe.</param>
    /// <param name="readiness">The owner's event loop for readability (Linux epoll); null = wait on the thread pool.</param>
    /// <param name="readinessOwner">Handed back to <paramref name="readiness"/> with each arm (the flow).</param>
    public BackendConnection(EndPoint remote, BackendOptions options, ReadOnlySpan<byte> proxyHeader, Action notify,
        IBackendReadiness? readiness = null, object? readinessOwner = null)
    {
        _readiness = readiness;
        _readinessOwner = readinessOwner;
        _remote = remote;
        _options = options;
        _proxyHeader = proxyHeader.IsEmpty ? null : proxyHeader.ToArray();
        _notify = notify;

        // Output: the owner's FlushAsync must never pend (no await on the capture thread), so the pipe's own
        // pause threshold is off (0) and _outputPending enforces OutputPauseThreshold instead. The send loop
        // awaits ReadAsync and is resumed on the thread pool.
        _output = new Pipe(new PipeOptions(
            pool: BlockMemoryPool.Shared,
            readerScheduler: IOQueue.Shared,
            writerScheduler: PipeScheduler.Inline,
            pauseWriterThreshold: 0,
            resumeWriterThreshold: 0,
            minimumSegmentSize: OutputSegmentSize,
            useSynchronizationContext: false));

        _socket = new Socket(remote.AddressFamily, SocketType.Stream, ProtocolType.Tcp);
    }

    public EndPoint RemoteEndPoint => _remote;

    public BackendState State => Volatile.Read(ref _closeReason) != 0 ? BackendState.Closed : (BackendState)_state;

    public BackendCloseReason CloseReason => (BackendCloseReason)Volatile.Read(ref _closeReason);

    /// <summary>The socket error that ended the connection (Success for graceful/aborted, TimedOut for a connect timeout).</summary>
    public SocketError SocketError => (SocketError)_socketError;

    /// <summary>Set when a loop died of an exception that is not a socket error (a bug); the connection was reset.
    /// The flow table reports it (stack logged, loop_faults counted).</summary>
    public Exception? UnexpectedException { get; private set; }

    /// <summary>True for the close reasons that must reset the client (everything but Graceful).</summary>
    public bool Failed => CloseReason is not (BackendCloseReason.None or BackendCloseReason.Graceful);

    /// <summary>The backend sent FIN and the owner has received every byte before it.</summary>
    public bool InputEnded => _inputEof;

    /// <summary>Our FIN went out after every client byte (half-close mirrored).</summary>
    public bool OutputShutDown => _outputShutDown;

    /// <summary>Client bytes written to the output pipe and not yet sent to the backend socket.</summary>
    public long OutputPending => Volatile.Read(ref _outputPending);

    /// <summary>Starts the connect on the thread pool. Owner thread; once.</summary>
    public void Start()
    {
        if (_started)
        {
            throw new InvalidOperationException("Already started.");
        }
        _started = true;
        if (TryConnectOnOwner())
        {
            return;    // connect(2) started on this thread; the owner's event loop completes it
        }
        ThreadPool.UnsafeQueueUserWorkItem(static c => _ = c.ConnectAsync(), this, preferLocal: false);
    }

    /// <summary>The connect task is never awaited: anything it throws that is not a socket outcome is a bug, and is
    /// reported (<see cref="UnexpectedException"/>), never left to the unobserved-task handler.</summary>
    private async Task ConnectAsync()
    {
        try
        {
            await ConnectCoreAsync().ConfigureAwait(false);
        }
        catch (ObjectDisposedException) when (State == BackendState.Closed)
        {
            // Aborted while the connect completed: the reason is already recorded and the owner notified.
        }
        catch (Exception e)
        {
            Fail(e);
        }
    }

    // ----- owner thread: client → backend -----

    /// <summary>
    /// Copies as much of <paramref name="head"/> then <paramref name="tail"/> as the output threshold allows into
    /// the output pipe and wakes the send loop. Returns the count taken (0 while connecting, paused or shut down).
    /// When the threshold makes it take less than offered, the owner is notified once the send loop drains to the
    /// resume threshold.
    /// </summary>
    /// <param name="maxQueued">At most this many bytes go into the pipe (the flow table's memory budget; what the
    /// kernel takes at once is not queued and not limited). Held back by this alone, nobody is notified: the table
    /// revisits budget-starved flows itself.</param>
    public int WriteOutput(ReadOnlySpan<byte> head, ReadOnlySpan<byte> tail, int maxQueued = int.MaxValue)
    {
        int offered = head.Length + tail.Length;
        if (offered == 0 || _outputCompleted || State != BackendState.Connected)
        {
            return 0;
        }

        // Nothing waits in the pipe (so nothing can be overtaken): send straight from the endpoint's buffer,
        // non-blocking, on this thread. A request then reaches the backend with no thread hop; only what the
        // socket does not take now goes through the pipe and the send loop.
        int direct = 0;
        if (Volatile.Read(ref _outputPending) == 0)
        {
            direct = SendDirect(head);
            if (direct == head.Length)
            {
                direct += SendDirect(tail);
            }
            if (direct == offered)
            {
                return direct;
            }
            if (direct <= head.Length)
            {
                head = head[direct..];
            }
            else
            {
                tail = tail[(direct - head.Length)..];
                head = default;
            }
            offered -= direct;
        }

        long room = _options.OutputPauseThreshold - Volatile.Read(ref _outputPending);
        bool budgetBound = maxQueued < room;
        int take = (int)Math.Clamp(Math.Min(room, Math.Max(maxQueued, 0)), 0, offered);
        if (take > 0)
        {
            PipeWriter writer = _output.Writer;
            int headTake = Math.Min(take, head.Length);
            CopyToWriter(writer, head[..headTake]);
            CopyToWriter(writer, tail[..(take - headTake)]);

            // Count before the flush so the send loop never subtracts bytes not yet added.
            Interlocked.Add(ref _outputPending, take);
            ValueTask<FlushResult> flush = writer.FlushAsync();
            Debug.Assert(flush.IsCompleted, "The output pipe has no pause threshold: flushing never pends.");
            _ = flush.Result;
            EnsureSendLoop();
        }

        // Held back by the budget with little queued, a drain notify would come at once and find the budget still
        // spent (a busy loop): the table revisits such flows when memory frees instead.
        if (take < offered && (!budgetBound || Volatile.Read(ref _outputPending) > _options.OutputResumeThreshold))
        {
            ArmOutputWait();
        }
        return direct + take;
    }

    /// <summary>One non-blocking send on the owner thread; 0 on EWOULDBLOCK or any error (the send loop will meet
    /// and report a real error when it sends the rest).</summary>
    private int SendDirect(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            return 0;
        }
        try
        {
            int sent = _socket.Send(data, SocketFlags.None, out SocketError error);
            return error == SocketError.Success ? sent : 0;
        }
        catch (ObjectDisposedException)
        {
            return 0;
        }
    }

    /// <summary>
    /// The client finished sending (FIN): once everything written so far is sent, the send loop shuts down the
    /// send side of the socket (FIN to the backend). Owner thread; idempotent.
    /// </summary>
    public void ShutdownSend()
    {
        if (_outputCompleted)
        {
            return;
        }
        _outputCompleted = true;
        _output.Writer.Complete();
        if (_sendLoopStarted || State != BackendState.Connected)
        {
            return;    // the send loop sends what the pipe holds, then the FIN; or there is no connection to shut
        }
        // Nothing ever waited in the pipe, so there is no send loop: the FIN goes out from here, with no thread-pool
        // hop (the usual request/response: every client byte went straight into the socket).
        _output.Reader.Complete();
        try
        {
            _socket.Shutdown(SocketShutdown.Send);
            _outputShutDown = true;
        }
        catch (SocketException e)
        {
            Close(BackendCloseReason.Reset, e.SocketErrorCode, abortive: true);
        }
        catch (ObjectDisposedException)
        {
        }
        HalfExited();
    }

    /// <summary>Owner thread: the pipe got bytes (what the socket did not take at once): the send loop drains it.
    /// It starts at the first such bytes, so a connection whose socket always takes everything never has one.</summary>
    private void EnsureSendLoop()
    {
        if (!_sendLoopStarted)
        {
            _sendLoopStarted = true;
            ThreadPool.UnsafeQueueUserWorkItem(static c => _ = c.SendLoopAsync(), this, preferLocal: false);
        }
    }

    // ----- owner thread: backend → client -----

    /// <summary>
    /// Non-blocking receive of backend bytes into <paramref name="head"/>, then <paramref name="tail"/> (a ring
    /// buffer's free space). Returns the count received; 0 when nothing is ready (a readability wait is then
    /// armed and the owner is notified when data or EOF arrives), at EOF (<paramref name="eof"/>), or once the
    /// connection failed or closed (check <see cref="Failed"/>). Never blocks. Owner thread only.
    /// </summary>
    public int Receive(Span<byte> head, Span<byte> tail, out bool eof)
    {
        eof = _inputEof;
        if (eof || _disposed || State != BackendState.Connected || Volatile.Read(ref _readable) == 0)
        {
            return 0;
        }
        int total = 0;
        Span<byte> buffer = head;
        bool inTail = false;
        while (true)
        {
            if (buffer.IsEmpty)
            {
                if (inTail || tail.IsEmpty)
                {
                    return total;
                }
                buffer = tail;
                inTail = true;
            }
            int n;
            SocketError error;
            try
            {
                n = _socket.Receive(buffer, SocketFlags.None, out error);
            }
            catch (ObjectDisposedException)
            {
                return total;    // closed under us (Abort from another thread): the reason is already recorded
            }
            if (error == SocketError.WouldBlock)
            {
                ArmReadableWait();
                return total;
            }
            if (error != SocketError.Success)
            {
                Close(BackendCloseReason.Reset, error, abortive: true);
                return total;
            }
            if (n == 0)
            {
                // Backend FIN: every byte before it is received. The receive half is done.
                _inputEof = true;
                eof = true;
                HalfExited();
                return total;
            }
            total += n;
            buffer = buffer[n..];
            if (_watched && !buffer.IsEmpty && !_hangUpReported)
            {
                // A short read emptied the socket (tcp_recvmsg stops only when its queues are empty), and no EOF
                // was reported behind the data: the edge-triggered watch reports the next arrival by itself.
                Volatile.Write(ref _readable, 0);
                return total;
            }
            // Keep reading until the space is full (the owner calls again when the client frees some: its ACK
            // settles the flow) or the socket says EWOULDBLOCK (the wait above is armed): no path leaves the
            // flow with bytes queued in the socket and nobody to fetch them.
        }
    }

    /// <summary>Abortive close: RST to the backend (SO_LINGER 0 then close). Any thread; one-shot.</summary>
    public void Abort() => Close(BackendCloseReason.Aborted, SocketError.Success, abortive: true);

    /// <summary>
    /// Owner thread, when the flow is removed: closes gracefully if both directions already ended with FIN,
    /// otherwise resets; then completes the owner's end of the output pipe.
    /// </summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        _connectTimer?.Dispose();
        bool graceful = _inputEof && _outputShutDown;
        Close(graceful ? BackendCloseReason.Graceful : BackendCloseReason.Aborted, SocketError.Success, abortive: !graceful);
        _output.Writer.Complete();
    }

    // ----- thread pool -----

    private async Task ConnectCoreAsync()
    {
        using var timeout = new CancellationTokenSource(_options.ConnectTimeout);
        try
        {
            // TCP_NODELAY: the client's segments already carry the sender's batching; Kestrel sets it too.
            _socket.NoDelay = true;
            if (_options.Connector is { } connector)
            {
                await connector(_socket, _remote, timeout.Token).ConfigureAwait(false);
            }
            else
            {
                await _socket.ConnectAsync(_remote, timeout.Token).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException) when (timeout.IsCancellationRequested)
        {
            Close(BackendCloseReason.ConnectTimeout, SocketError.TimedOut, abortive: true);
            return;
        }
        catch (SocketException e)
        {
            BackendCloseReason reason = e.SocketErrorCode == SocketError.ConnectionRefused
                ? BackendCloseReason.ConnectRefused
                : BackendCloseReason.ConnectFailed;
            Close(reason, e.SocketErrorCode, abortive: true);
            return;
        }
        catch (Exception e) when (e is ObjectDisposedException or OperationCanceledException)
        {
            Close(BackendCloseReason.Aborted, SocketError.OperationAborted, abortive: true);    // aborted while connecting
            return;
        }

        // Server-speaks-first protocols need the header before anything else, so it goes out before the
        // loops start; the owner only writes client bytes once State is Connected.
        if (_proxyHeader is not null)
        {
            try
            {
                await SendAllAsync(_proxyHeader).ConfigureAwait(false);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
                Close(BackendCloseReason.ConnectFailed, (e as SocketException)?.SocketErrorCode ?? SocketError.OperationAborted, abortive: true);
                return;
            }
        }

        EnterConnected();
        _notify();
    }

    /// <summary>Connected (and the PROXY header sent or queued first): the owner may move bytes both ways.</summary>
    private void EnterConnected()
    {
        // Two halves end the connection gracefully: the owner's Receive seeing EOF, and the send loop's FIN.
        Volatile.Write(ref _halvesOpen, 2);
        // Non-blocking for the owner's synchronous Receive (it must never block the capture thread).
        _socket.Blocking = false;
        Volatile.Write(ref _readable, 1);
        _state = (int)BackendState.Connected;
        // The send loop starts with the first bytes the socket does not take at once (EnsureSendLoop, owner thread).
    }

    /// <summary>
    /// The socket ran dry: wait on the thread pool for data or EOF with a zero-byte receive (it completes on
    /// readability and consumes nothing), then let the owner receive. Armed only by the owner, at most once.
    /// </summary>
    private void ArmReadableWait()
    {
        Volatile.Write(ref _readable, 0);
        if (_watched)
        {
            return;    // the edge-triggered watch reports the next arrival by itself
        }
        if (_readiness is not null && _readiness.ArmReadable(_socket, _readinessOwner ?? this))
        {
            return;    // the owner's event loop reports it (MarkReadable): no thread-pool hop
        }
        _ = WaitReadableAsync();
    }

    /// <summary>Owner thread: its event loop saw the socket readable (data, EOF or error): Receive will try again.</summary>
    public void MarkReadable() => Volatile.Write(ref _readable, 1);

    /// <summary>
    /// Owner thread: its event loop reported the socket it was asked to watch: the end of the owner's connect
    /// (<see cref="IBackendReadiness.ArmWritable"/>) while that is in flight, else readability.
    /// </summary>
    /// <param name="hangUp">The report said EOF or an error waits behind any data (EPOLLRDHUP, EPOLLHUP, EPOLLERR).</param>
    public void OnReady(bool hangUp = false)
    {
        if (OperatingSystem.IsLinux() && Interlocked.Exchange(ref _ownerConnect, 0) == 1)
        {
            FinishOwnerConnect();
            return;
        }
        _hangUpReported |= hangUp;
        MarkReadable();
    }

    /// <summary>The socket is on the owner's epoll set for good (edge-triggered): its entry there lives until the flow ends.</summary>
    public bool Watched => _watched;

    private async Task WaitReadableAsync()
    {
        try
        {
            await _socket.ReceiveAsync(Memory<byte>.Empty, SocketFlags.None).ConfigureAwait(false);
        }
        catch (SocketException e)
        {
            Close(BackendCloseReason.Reset, e.SocketErrorCode, abortive: true);
            return;
        }
        catch (ObjectDisposedException)
        {
            return;    // closed under us: the reason is already recorded and the owner notified
        }
        catch (Exception e)
        {
            Fail(e);
            return;
        }
        Volatile.Write(ref _readable, 1);
        _notify();
    }

    /// <summary>Thread pool, from the first bytes queued in the pipe (<see cref="EnsureSendLoop"/>) until the FIN.</summary>
    private async Task SendLoopAsync()
    {
        PipeReader reader = _output.Reader;
        try
        {
            while (true)
            {
                ReadResult result = await reader.ReadAsync().ConfigureAwait(false);
                ReadOnlySequence<byte> buffer = result.Buffer;
                long length = buffer.Length;
                foreach (ReadOnlyMemory<byte> segment in buffer)
                {
                    await SendAllAsync(segment).ConfigureAwait(false);
                }
                reader.AdvanceTo(buffer.End);

                if (length > 0)
                {
                    long pending = Interlocked.Add(ref _outputPending, -length);
                    if (pending <= _options.OutputResumeThreshold && Interlocked.Exchange(ref _ownerWaitingForOutput, 0) == 1)
                    {
                        _notify();    // output drained: the owner may move more client bytes
                    }
                }

                if (result.IsCompleted || result.IsCanceled)
                {
                    break;
                }
            }

            // The owner completed the pipe after the client's FIN and everything before it is sent:
            // half-close towards the backend (RFC 9293 3.6), mirroring the client.
            _socket.Shutdown(SocketShutdown.Send);
            _outputShutDown = true;
        }
        catch (SocketException e)
        {
            Close(BackendCloseReason.Reset, e.SocketErrorCode, abortive: true);
        }
        catch (ObjectDisposedException)
        {
        }
        catch (Exception e)
        {
            Fail(e);
        }
        finally
        {
            reader.Complete();
            HalfExited();
        }
    }

    private async ValueTask SendAllAsync(ReadOnlyMemory<byte> data)
    {
        while (!data.IsEmpty)
        {
            int sent = await _socket.SendAsync(data, SocketFlags.None).ConfigureAwait(false);
            data = data[sent..];
        }
    }

    /// <summary>One half ended (the send loop, or the owner's receive at EOF): both ended with FIN = graceful close.</summary>
    private void HalfExited()
    {
        if (Interlocked.Decrement(ref _halvesOpen) == 0 && _inputEof && _outputShutDown)
        {
            Close(BackendCloseReason.Graceful, SocketError.Success, abortive: false);
        }
        _notify();
    }

    private void ArmOutputWait()
    {
        Volatile.Write(ref _ownerWaitingForOutput, 1);
        // The send loop may have drained between our check and the flag: re-check so no wake-up is lost.
        if (Volatile.Read(ref _outputPending) <= _options.OutputResumeThreshold
            && Interlocked.Exchange(ref _ownerWaitingForOutput, 0) == 1)
        {
            _notify();
        }
    }

    /// <summary>
    /// Our own bug in a loop (not a socket error): reset rather than leave the flow hanging, and keep the exception
    /// for the owner, which logs it with its stack and counts it (loop_faults) the next time it settles the flow.
    /// </summary>
    private void Fail(Exception e)
    {
        UnexpectedException ??= e;
        Close(BackendCloseReason.Reset, SocketError.SocketError, abortive: true);
        _notify();    // also when the connection had closed already: the owner must still see the bug
    }

    /// <summary>One-shot: records the reason, resets if abortive, closes the socket, notifies the owner.</summary>
    private void Close(BackendCloseReason reason, SocketError error, bool abortive)
    {
        if (Interlocked.CompareExchange(ref _closeReason, (int)reason, (int)BackendCloseReason.None) != (int)BackendCloseReason.None)
        {
            return;
        }
        _socketError = (int)error;
        if (abortive)
        {
            try
            {
                // SO_LINGER {on, 0}: close() sends RST and drops unsent data (Kestrel's abortive shutdown).
                _socket.LingerState = new LingerOption(true, 0);
            }
            catch (Exception e) when (e is SocketException or ObjectDisposedException)
            {
            }
        }
        _socket.Dispose();
        _notify();
    }

    private static void CopyToWriter(PipeWriter writer, ReadOnlySpan<byte> data)
    {
        while (!data.IsEmpty)
        {
            Span<byte> span = writer.GetSpan(Math.Min(data.Length, OutputSegmentSize));
            int n = Math.Min(span.Length, data.Length);
            data[..n].CopyTo(span);
            writer.Advance(n);
            data = data[n..];
        }
    }
}
