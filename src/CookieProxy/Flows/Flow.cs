using System.Net;
using CookieProxy.Diagnostics;
using CookieProxy.Host.Backend;
using CookieProxy.ProxyProtocol;
using CookieProxy.Tcp;
using CookieProxy.Wire;

namespace CookieProxy.Host.Flows;

/// <summary>
/// One proxied connection: the client-facing <see cref="TcpEndpoint"/> spliced to a <see cref="BackendConnection"/>.
/// Owned by one capture thread: only it calls <see cref="Pump"/> and touches <see cref="Endpoint"/>. The backend's
/// thread-pool loops only enqueue the flow on the owner's <see cref="FlowWorkQueue"/>.
/// <code>
///   client ──segments──▶ Endpoint ──PeekReceived/ConsumeReceived──▶ Backend.WriteOutput ──send loop──▶ backend
///   client ◀──Dispatch── Endpoint ◀──GetSendSpace/CommitSend─────── Backend.Receive (non-blocking) ◀── backend
/// </code>
/// Backpressure: client bytes stay in the endpoint (shrinking the window it advertises) while the backend has
/// OutputPauseThreshold bytes unsent; backend bytes stay in the backend socket (its receive window closes)
/// while the endpoint's send buffer is full.
/// </summary>
public sealed class Flow
{
    private readonly FlowWorkQueue _queue;
    private readonly ProxyCounters _counters;

    private readonly long _backendFirstDataTimeoutMs;
    private readonly long _backendLingerMs;

    private bool _clientAborted;
    private bool _backendAborted;
    private bool _backendInputDone;
    private bool _clientSendClosed;
    private bool _backendAnswered;
    /// <summary>When the first client bytes reached the backend (long.MaxValue = not yet): the backend's first-data clock.</summary>
    private long _requestSentMs = long.MaxValue;
    /// <summary>When the endpoint was seen CLOSED while the backend was still open (long.MaxValue = not so).</summary>
    private long _clientClosedMs = long.MaxValue;

    // Owned by FlowWorkQueue / FlowTimerHeap / FlowTable.
    internal int Queued;
    internal int HeapIndex = -1;
    internal long HeapDeadlineMs;
    internal long AccountedBytes;
    internal bool Removed;
    internal bool SettlePending;
    internal int ReadinessFd = -1;
    internal ulong ReadinessToken;
    internal long ReportedRetransmits;
    // Owned by FlowTable: the idle list (least recently active first) and the source-share accounting.
    internal Flow? IdlePrev;
    internal Flow? IdleNext;
    internal bool InIdleList;
    internal long IdleListMs;
    internal bool FaultReported;
    /// <summary>The table's memory budget held this flow back in its last pump (FlowTable revisits it when memory frees).</summary>
    internal bool Starved;
    internal bool InStarvedList;
    // Owned by CaptureWorker: the per-source limiter counted this flow (so its end is uncounted there too).
    internal bool CountedBySource;

    /// <param name="backendFirstDataTimeoutMs">Reset both sides when the backend sends nothing this long after it got
    /// the client's first bytes (0 = never): a backend that accepts and never answers.</param>
    /// <param name="backendLingerMs">Reset the backend when the client side has closed and the backend still has not
    /// taken the client's last bytes (and closed) this long after (0 = never).</param>
    internal Flow(FlowWorkQueue queue, ProxyCounters counters, in FlowKey key, TcpEndpoint endpoint, EndPoint backend,
        BackendOptions backendOptions, object? replyTemplate, long nowMs, IBackendReadiness? readiness = null,
        long backendFirstDataTimeoutMs = 0, long backendLingerMs = 0)
    {
        _queue = queue;
        _counters = counters;
        _backendFirstDataTimeoutMs = backendFirstDataTimeoutMs;
        _backendLingerMs = backendLingerMs;
        Key = key;
        Endpoint = endpoint;
        ReplyTemplate = replyTemplate;
        CreatedMs = nowMs;
        LastActivityMs = nowMs;

        Span<byte> header = stackalloc byte[ProxyHeaderWriter.MaxLength(ProxyProtocolVersion.V2) + ProxyHeaderWriter.V1MaxLength];
        int headerLength = ProxyHeaderWriter.Write(backendOptions.ProxyProtocol, header, key);
        Backend = new BackendConnection(backend, backendOptions, header[..headerLength], NotifyOwner, readiness, this);
    }

    public FlowKey Key { get; }

    /// <summary>The client-facing TCP endpoint. Owner thread only.</summary>
    public TcpEndpoint Endpoint { get; }

    public BackendConnection Backend { get; }

    /// <summary>The host's per-flow L2/L3 reply template (opaque here); the dispatcher builds its sink from it.</summary>
    public object? ReplyTemplate { get; set; }

    public long CreatedMs { get; }

    /// <summary>Last time bytes moved between the client and the backend, either way (creation at first): the
    /// flow table evicts the least recently active flow first when it is full.</summary>
    public long LastActivityMs { get; private set; }

    /// <summary>Earliest time the flow has timer work: the endpoint's timers and the flow's own backend deadlines
    /// (long.MaxValue = none).</summary>
    public long NextDeadlineMs
    {
        get
        {
            long deadline = Endpoint.NextDeadlineMs;
            if (BackendDeadlineMs is long backendDeadline)
            {
                deadline = Math.Min(deadline, backendDeadline);
            }
            return deadline;
        }
    }

    /// <summary>When the backend's first-data or linger time runs out, if one is running.</summary>
    private long? BackendDeadlineMs
    {
        get
        {
            if (Backend.State == BackendState.Closed || _backendAborted)
            {
                return null;
            }
            if (_clientClosedMs != long.MaxValue && _backendLingerMs > 0)
            {
                return _clientClosedMs + _backendLingerMs;
            }
            if (!_backendAnswered && _requestSentMs != long.MaxValue && _backendFirstDataTimeoutMs > 0 && !Endpoint.IsClosed)
            {
                return _requestSentMs + _backendFirstDataTimeoutMs;
            }
            return null;
        }
    }

    /// <summary>Both sides are done: the endpoint is CLOSED and the backend socket is closed. Remove and dispose.</summary>
    public bool IsFinished => Endpoint.IsClosed && Backend.State == BackendState.Closed;

    /// <summary>Bytes this flow holds right now: endpoint receive + send buffers and the output pipe.</summary>
    /// <remarks>
    /// A send buffer that autotuning grew beyond <see cref="TcpConfig.SendBufferSize"/> counts with its whole
    /// extra capacity (that memory is held whether or not it is full), plus the bytes queued in it.
    /// </remarks>
    public long BufferedBytes(TcpConfig config)
    {
        long sendBuffered = Endpoint.IsClosed
            ? 0
            : Endpoint.SendBufferUsed + Math.Max(0, Endpoint.SendBufferCapacity - config.SendBufferSize);
        return Endpoint.ReceiveAvailable + sendBuffered + Backend.OutputPending;
    }

    /// <summary>
    /// Memory this flow may occupy as things stand: the endpoint's touched ring pages once its advertised window
    /// is filled (<see cref="TcpEndpoint.MemoryFootprint"/>), plus the output pipe's blocks. The flow table holds
    /// the sum of these under --max-buffer-mb.
    /// </summary>
    public long MemoryFootprint => Endpoint.MemoryFootprint + PipeFootprint;

    private long PipeFootprint => Backend.OutputPending is long pending and > 0 ? pending + BlockMemoryPool.BlockSize : 0;

    /// <summary>
    /// Owner thread: moves bytes both ways as far as the buffers allow and mirrors closes. Never blocks or awaits.
    /// Call <c>Endpoint.Dispatch</c> afterwards to emit what it queued.
    /// </summary>
    /// <param name="sendBufferLimit">The largest send buffer the table's memory budget allows this flow now
    /// (see <see cref="TcpEndpoint.ExpandSendBuffer"/>); 0 or less keeps its size.</param>
    /// <param name="allowance">Bytes of new memory the table's budget grants this pump: client bytes queued in the
    /// output pipe (beyond what the kernel takes at once) and backend bytes written into the send buffer each use
    /// it up. Returns what is left (the table opens the receive window by at most that much).</param>
    public long Pump(long nowMs, int sendBufferLimit = 0, long allowance = long.MaxValue)
    {
        if (BackendDeadlineMs is long deadline && nowMs >= deadline)
        {
            // Silent backend (nothing within the first-data time of the request), or one that never took the last
            // bytes of a client that has gone: reset both sides (RST, never FIN: the response is not complete).
            _counters[Counter.BackendTimeouts]++;
            AbortClient();
            AbortBackend();
            return allowance;
        }

        // The backend failed (refused, connect timeout, RST, socket error): reset the client (RST mirrors RST).
        if (Backend.Failed && Backend.CloseReason != BackendCloseReason.Aborted)
        {
            if (!_clientAborted && !Endpoint.IsClosed)
            {
                if (Backend.CloseReason is BackendCloseReason.ConnectRefused or BackendCloseReason.ConnectTimeout or BackendCloseReason.ConnectFailed)
                {
                    _counters[Counter.BackendConnectFailed]++;
                }
                else
                {
                    _counters[Counter.BackendResets]++;    // mid-stream: the client's RST says the response is not complete
                }
                AbortClient();
            }
            return allowance;
        }

        // The client went away without a graceful close (RST, retransmit limit, idle timeout): reset the backend.
        if (Endpoint.IsClosed && Endpoint.CloseReason != TcpCloseReason.Graceful)
        {
            AbortBackend();
            return allowance;
        }
        if (Endpoint.IsClosed && _clientClosedMs == long.MaxValue && Backend.State != BackendState.Closed)
        {
            _clientClosedMs = nowMs;    // closed gracefully: the backend still has to take the last bytes (linger)
        }

        if (Backend.State == BackendState.Connecting)
        {
            // Client bytes wait in the endpoint, which keeps advertising the window it has left; the
            // PROXY header goes first once connected.
            return allowance;
        }

        long toBackend = MoveClientToBackend(ref allowance);
        long toClient = MoveBackendToClient(sendBufferLimit, ref allowance);
        if (toBackend > 0 || toClient > 0)
        {
            LastActivityMs = nowMs;
            if (toBackend > 0 && _requestSentMs == long.MaxValue)
            {
                _requestSentMs = nowMs;
            }
            if (toClient > 0)
            {
                _backendAnswered = true;
            }
        }

        // Client FIN and every byte before it handed over: FIN to the backend once the output drains.
        if (Endpoint.ReceiveFinished)
        {
            Backend.ShutdownSend();
        }

        // Backend EOF and every byte before it handed over: FIN to the client after its queued data.
        if (_backendInputDone && !_clientSendClosed && !Endpoint.IsClosed)
        {
            _clientSendClosed = true;
            Endpoint.CloseSend();
        }

        // When both directions have ended with FIN the backend closes itself (Graceful) and notifies us; the
        // table then sees IsFinished once the endpoint is CLOSED too (after LAST-ACK or TIME-WAIT).
        return allowance;
    }

    /// <summary>Owner thread: RST to the client on its next Dispatch (backend failure, or our own decision, e.g. shutdown).</summary>
    public void AbortClient()
    {
        if (_clientAborted || Endpoint.IsClosed)
        {
            return;
        }
        _clientAborted = true;
        Endpoint.Abort();    // RstSent is counted by the host's sink when the RST is actually emitted
    }

    /// <summary>Owner thread: RST to the backend.</summary>
    public void AbortBackend()
    {
        if (!_backendAborted)
        {
            _backendAborted = true;
            Backend.Abort();
        }
    }

    /// <summary>Client bytes into the backend's output; returns how many moved.</summary>
    private long MoveClientToBackend(ref long allowance)
    {
        long moved = 0;
        while (Endpoint.ReceiveAvailable > 0)
        {
            Endpoint.PeekReceived(out ReadOnlySpan<byte> head, out ReadOnlySpan<byte> tail);
            int offered = head.Length + tail.Length;
            long pendingBefore = Backend.OutputPending;
            int taken = Backend.WriteOutput(head, tail, (int)Math.Min(allowance, int.MaxValue));
            allowance = Math.Max(0, allowance - Math.Max(0, Backend.OutputPending - pendingBefore));
            if (taken < offered && allowance == 0)
            {
                Starved = true;    // held back by the budget, not (only) by the backend: revisit when memory frees
            }
            if (taken == 0)
            {
                break;    // paused at OutputPauseThreshold: the send loop notifies when it drains
            }
            Endpoint.ConsumeReceived(taken);
            _counters[Counter.BytesToBackend] += taken;
            moved += taken;
            if (taken < offered)
            {
                break;
            }
        }
        return moved;
    }

    /// <summary>Backend bytes into the endpoint's send buffer; returns how many moved (EOF counts as an answer).</summary>
    private long MoveBackendToClient(int sendBufferLimit, ref long allowance)
    {
        long moved = 0;
        // At most twice: once into the space the buffer has, once more if that filled it and autotuning grew it.
        for (int pass = 0; pass < 2 && !_backendInputDone; pass++)
        {
            Endpoint.GetSendSpace(out Span<byte> head, out Span<byte> tail);
            int room = Endpoint.SendSpaceWithin(allowance);
            bool clipped = head.Length + tail.Length > room;
            if (clipped)
            {
                // The memory budget is spent: the backend's bytes wait in its socket (its window closes).
                tail = tail[..Math.Max(0, Math.Min(tail.Length, room - head.Length))];
                head = head[..Math.Min(head.Length, room)];
                Starved = true;
            }
            int space = head.Length + tail.Length;
            long footprintBefore = Endpoint.MemoryFootprint;
            int received = 0;
            if (space > 0)
            {
                // Straight into the send buffer.
                received = Backend.Receive(head, tail, out bool eof);
                if (received > 0)
                {
                    Endpoint.CommitSend(received);
                    _counters[Counter.BytesToClient] += received;
                    moved += received;
                    allowance = Math.Max(0, allowance - (Endpoint.MemoryFootprint - footprintBefore));
                }
                if (eof)
                {
                    _backendInputDone = true;
                    _backendAnswered = true;
                    return moved;
                }
            }
            // Full (a closed endpoint offers no space either and never grows): the backend may have more than
            // the buffer holds. Grow it if the window is bigger than the buffer, else the backend waits in its
            // socket (its window closes) until the client's ACKs free space.
            if (clipped || received < space || sendBufferLimit <= 0 || Endpoint.ExpandSendBuffer(sendBufferLimit) == 0)
            {
                return moved;
            }
        }
        return moved;
    }

    private void NotifyOwner() => _queue.Enqueue(this);
}
