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

    private bool _clientAborted;
    private bool _backendAborted;
    private bool _backendInputDone;
    private bool _clientSendClosed;

    // Owned by FlowWorkQueue / FlowTimerHeap / FlowTable.
    internal int Queued;
    internal int HeapIndex = -1;
    internal long HeapDeadlineMs;
    internal long AccountedBytes;
    internal bool Removed;
    internal bool SettlePending;
    internal int ReadinessFd = -1;
    // Owned by CaptureWorker: the per-source limiter counted this flow (so its end is uncounted there too).
    internal bool CountedBySource;

    internal Flow(FlowWorkQueue queue, ProxyCounters counters, in FlowKey key, TcpEndpoint endpoint, EndPoint backend,
        BackendOptions backendOptions, object? replyTemplate, long nowMs, IBackendReadiness? readiness = null)
    {
        _queue = queue;
        _counters = counters;
        Key = key;
        Endpoint = endpoint;
        ReplyTemplate = replyTemplate;
        CreatedMs = nowMs;

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

    /// <summary>Earliest time the endpoint has timer work (long.MaxValue = none).</summary>
    public long NextDeadlineMs => Endpoint.NextDeadlineMs;

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
    /// Owner thread: moves bytes both ways as far as the buffers allow and mirrors closes. Never blocks or awaits.
    /// Call <c>Endpoint.Dispatch</c> afterwards to emit what it queued.
    /// </summary>
    /// <param name="sendBufferLimit">The largest send buffer the table's memory budget allows this flow now
    /// (see <see cref="TcpEndpoint.ExpandSendBuffer"/>); 0 or less keeps its size.</param>
    public void Pump(long nowMs, int sendBufferLimit = 0)
    {
        _ = nowMs;

        // The backend failed (refused, connect timeout, RST, socket error): reset the client (RST mirrors RST).
        if (Backend.Failed && Backend.CloseReason != BackendCloseReason.Aborted)
        {
            if (!_clientAborted && !Endpoint.IsClosed)
            {
                if (Backend.CloseReason is BackendCloseReason.ConnectRefused or BackendCloseReason.ConnectTimeout or BackendCloseReason.ConnectFailed)
                {
                    _counters[Counter.BackendConnectFailed]++;
                }
                AbortClient();
            }
            return;
        }

        // The client went away without a graceful close (RST, retransmit limit, idle timeout): reset the backend.
        if (Endpoint.IsClosed && Endpoint.CloseReason != TcpCloseReason.Graceful)
        {
            AbortBackend();
            return;
        }

        if (Backend.State == BackendState.Connecting)
        {
            // Client bytes wait in the endpoint, which keeps advertising the window it has left; the
            // PROXY header goes first once connected.
            return;
        }

        MoveClientToBackend();
        MoveBackendToClient(sendBufferLimit);

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

    private void MoveClientToBackend()
    {
        while (Endpoint.ReceiveAvailable > 0)
        {
            Endpoint.PeekReceived(out ReadOnlySpan<byte> head, out ReadOnlySpan<byte> tail);
            int offered = head.Length + tail.Length;
            int taken = Backend.WriteOutput(head, tail);
            if (taken == 0)
            {
                return;    // paused at OutputPauseThreshold: the send loop notifies when it drains
            }
            Endpoint.ConsumeReceived(taken);
            _counters[Counter.BytesToBackend] += taken;
            if (taken < offered)
            {
                return;
            }
        }
    }

    private void MoveBackendToClient(int sendBufferLimit)
    {
        // At most twice: once into the space the buffer has, once more if that filled it and autotuning grew it.
        for (int pass = 0; pass < 2 && !_backendInputDone; pass++)
        {
            Endpoint.GetSendSpace(out Span<byte> head, out Span<byte> tail);
            int space = head.Length + tail.Length;
            int received = 0;
            if (space > 0)
            {
                // Straight into the send buffer.
                received = Backend.Receive(head, tail, out bool eof);
                if (received > 0)
                {
                    Endpoint.CommitSend(received);
                    _counters[Counter.BytesToClient] += received;
                }
                if (eof)
                {
                    _backendInputDone = true;
                    return;
                }
            }
            // Full (a closed endpoint offers no space either and never grows): the backend may have more than
            // the buffer holds. Grow it if the window is bigger than the buffer, else the backend waits in its
            // socket (its window closes) until the client's ACKs free space.
            if (received < space || sendBufferLimit <= 0 || Endpoint.ExpandSendBuffer(sendBufferLimit) == 0)
            {
                return;
            }
        }
    }

    private void NotifyOwner() => _queue.Enqueue(this);
}
