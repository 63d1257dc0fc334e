using System.Diagnostics.CodeAnalysis;
using System.Net;
using CookieProxy.Diagnostics;
using CookieProxy.Tcp;
using CookieProxy.Wire;

using CookieProxy.Host.Backend;

namespace CookieProxy.Host.Flows;

/// <summary>
/// The flows of one capture thread (which owns the table: no locks). Admission caps, lookup, a deadline
/// heap for endpoint timers, and the drain loop for backend events.
/// <para>Every path that changes a flow ends in <c>Settle</c>: pump, dispatch, re-arm its timer, remove it when finished.</para>
/// </summary>
public sealed class FlowTable : IDisposable
{
    private readonly Dictionary<FlowKey, Flow> _flows;
    private readonly FlowTimerHeap _timers = new();
    private readonly List<Flow> _due = new();
    private readonly List<Flow> _processed = new();
    private readonly ProxyCounters _counters;
    private long _bufferedBytes;
    private bool _disposed;

    /// <param name="wake">Wakes the owner thread from its wait for frames (the capture device's Wake); called from thread-pool threads.</param>
    public FlowTable(FlowTableOptions options, ProxyCounters counters, Action wake)
    {
        options.Validate();
        Options = options;
        _counters = counters;
        WorkQueue = new FlowWorkQueue(wake);
        _flows = new Dictionary<FlowKey, Flow>(Math.Min(options.MaxFlows, 4096));
        // One pool per table, i.e. per capture thread: flows are created and removed only on the owner
        // thread, so it needs no locks. It serves rings of the receive size; a different send size is allocated.
        BufferPool = new RingBufferPool(options.Tcp.ReceiveBufferSize, options.MaxPooledRings);
    }

    /// <summary>The caps and the TCP settings of new flows. A reload may replace them (owner thread, between
    /// batches; the ring buffer size is fixed); flows already in the table keep the settings they started with.</summary>
    public FlowTableOptions Options { get; set; }

    /// <summary>The flows now in the table (owner thread).</summary>
    public IEnumerable<Flow> Flows => _flows.Values;

    /// <summary>Backend events waiting for <see cref="ProcessWork"/>.</summary>
    public FlowWorkQueue WorkQueue { get; }

    public int Count => _flows.Count;

    /// <summary>The endpoints' ring buffer arrays: rented by <see cref="TryAdd"/>, returned when a flow ends.</summary>
    public RingBufferPool BufferPool { get; }

    /// <summary>Bytes held by all flows as of their last pump (the figure the total cap is checked against).</summary>
    public long BufferedBytes => _bufferedBytes;

    /// <summary>Earliest endpoint timer of any flow; the capture loop should not sleep past it (long.MaxValue = none).</summary>
    public long NextDeadlineMs => _timers.MinDeadlineMs;

    /// <summary>Called on the owner thread as each flow leaves the table (per-source accounting).</summary>
    public Action<Flow>? FlowRemoved { get; set; }

    /// <summary>The owner's event loop for backend readability, handed to every new flow (null: thread-pool waits).</summary>
    public IBackendReadiness? Readiness { get; set; }

    public bool TryGet(in FlowKey key, [MaybeNullWhen(false)] out Flow flow) => _flows.TryGetValue(key, out flow);

    /// <summary>
    /// A cookie ACK was validated: creates the endpoint in ESTABLISHED and starts the backend connect.
    /// Returns <see cref="DropReason.None"/> and the flow, or FlowTableFull / BufferLimit (already counted
    /// here as a drop): the caller then answers the client with RST. Afterwards pass the cookie ACK itself to
    /// <see cref="OnClientSegment"/> (it may carry data or FIN).
    /// </summary>
    public DropReason TryAdd(in FlowKey key, in TcpHandshake handshake, EndPoint backend, object? replyTemplate, long nowMs,
        [NotNullWhen(true)] out Flow? flow, BackendOptions? backendOptions = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        flow = null;
        DropReason refused = DropReason.None;
        if (_flows.Count >= Options.MaxFlows)
        {
            refused = DropReason.FlowTableFull;
        }
        else if (_bufferedBytes > Options.MaxBufferedBytesTotal - Options.WorstCaseBytesPerFlow)
        {
            refused = DropReason.BufferLimit;
        }
        if (refused != DropReason.None)
        {
            _counters.Drop(refused);
            return refused;
        }
        if (_flows.ContainsKey(key))
        {
            throw new InvalidOperationException($"Flow {key} exists already: look it up before validating a cookie.");
        }

        var endpoint = new TcpEndpoint(Options.Tcp, handshake, nowMs, BufferPool);
        flow = new Flow(WorkQueue, _counters, key, endpoint, backend, backendOptions ?? Options.Backend, replyTemplate, nowMs, Readiness);
        _flows.Add(key, flow);
        _counters[Counter.FlowsCreated]++;
        _counters[Counter.FlowsActive]++;
        flow.Backend.Start();
        _timers.Set(flow, endpoint.NextDeadlineMs);
        return DropReason.None;
    }

    /// <summary>A validated segment from the client of <paramref name="flow"/>: process, pump, dispatch, re-arm, maybe remove.</summary>
    public void OnClientSegment<TDispatcher>(Flow flow, in TcpRepr segment, ReadOnlySpan<byte> payload, long nowMs, ref TDispatcher dispatcher)
        where TDispatcher : struct, IFlowDispatcher
    {
        ProcessClientSegment(flow, segment, payload, nowMs);
        SettleProcessed(nowMs, ref dispatcher);
    }

    /// <summary>
    /// A validated segment from the client, processed by the endpoint now; the pump and dispatch wait for
    /// <see cref="SettleProcessed"/> at the end of the capture batch. A batch often holds several ACKs of one
    /// flow: answering them together sends one 64 KiB super-frame instead of a 2-segment frame per ACK
    /// (the same reason Linux defers its transmit to the end of a NAPI poll, TSQ/autocork).
    /// </summary>
    public void ProcessClientSegment(Flow flow, in TcpRepr segment, ReadOnlySpan<byte> payload, long nowMs)
    {
        if (flow.Removed)
        {
            return;
        }
        flow.Endpoint.Process(segment, payload, nowMs);
        MarkForSettle(flow);
    }

    /// <summary>Owner thread: pump and dispatch <paramref name="flow"/> at the next <see cref="SettleProcessed"/> (e.g. its backend turned readable).</summary>
    public void MarkForSettle(Flow flow)
    {
        if (!flow.SettlePending && !flow.Removed)
        {
            flow.SettlePending = true;
            _processed.Add(flow);
        }
    }

    /// <summary>Owner thread, after a capture batch: pumps, dispatches and re-arms every flow that got segments.</summary>
    public int SettleProcessed<TDispatcher>(long nowMs, ref TDispatcher dispatcher) where TDispatcher : struct, IFlowDispatcher
    {
        int count = _processed.Count;
        for (int i = 0; i < count; i++)
        {
            Flow flow = _processed[i];
            flow.SettlePending = false;
            if (!flow.Removed)
            {
                Settle(flow, nowMs, ref dispatcher);
            }
        }
        _processed.Clear();
        return count;
    }

    /// <summary>
    /// Owner thread, whenever woken (and once per capture batch is fine): pumps every flow a backend event
    /// queued. Returns the number of flows pumped. Bounded to the flows queued when it started plus
    /// the flows they re-queued, so a chatty backend cannot starve the capture loop: at most 2 × Count.
    /// </summary>
    public int ProcessWork<TDispatcher>(long nowMs, ref TDispatcher dispatcher) where TDispatcher : struct, IFlowDispatcher
    {
        WorkQueue.BeginDrain();
        int budget = 2 * _flows.Count + 16;
        int pumped = 0;
        while (pumped < budget && WorkQueue.TryDequeue(out Flow flow))
        {
            if (flow.Removed)
            {
                continue;    // a late event from a flow already disposed
            }
            Settle(flow, nowMs, ref dispatcher);
            pumped++;
        }
        if (!WorkQueue.IsEmpty)
        {
            WorkQueue.WakeAgain();    // budget spent: handle frames first, then come back without sleeping
        }
        return pumped;
    }

    /// <summary>Owner thread: runs the flows whose endpoint timer is due (retransmission, delayed ACK, TIME-WAIT, ...).</summary>
    public int Tick<TDispatcher>(long nowMs, ref TDispatcher dispatcher) where TDispatcher : struct, IFlowDispatcher
    {
        // Collect first: a flow whose deadline does not move past now is run again on the next tick, not in a loop.
        _due.Clear();
        while (_timers.TryPopDue(nowMs, out Flow flow))
        {
            _due.Add(flow);
        }
        foreach (Flow flow in _due)
        {
            if (!flow.Removed)
            {
                Settle(flow, nowMs, ref dispatcher);
            }
        }
        int count = _due.Count;
        _due.Clear();
        return count;
    }

    /// <summary>Owner thread: RST both sides of every flow (dispatching the client RSTs) and dispose them. For shutdown.</summary>
    public void AbortAll<TDispatcher>(long nowMs, ref TDispatcher dispatcher) where TDispatcher : struct, IFlowDispatcher
    {
        foreach (Flow flow in _flows.Values.ToArray())
        {
            flow.AbortClient();
            flow.AbortBackend();
            dispatcher.Dispatch(flow, nowMs);
            Remove(flow);
        }
    }

    /// <summary>Owner thread: removes the flow now (resetting the backend unless it closed gracefully) and disposes it.</summary>
    public void Remove(Flow flow)
    {
        if (flow.Removed)
        {
            return;
        }
        flow.Removed = true;
        _counters[Counter.Retransmits] += flow.Endpoint.Retransmissions;
        FlowRemoved?.Invoke(flow);
        _flows.Remove(flow.Key);
        _timers.Remove(flow);
        _bufferedBytes -= flow.AccountedBytes;
        flow.AccountedBytes = 0;
        flow.Backend.Dispose();
        // After FlowRemoved, which may still look at the endpoint: its rings go back to the pool for the next flow.
        flow.Endpoint.ReleaseBuffers();
        _counters[Counter.FlowsClosed]++;
        _counters[Counter.FlowsActive]--;
    }

    /// <summary>Resets every backend and drops all flows without telling the clients (see <see cref="AbortAll"/>).</summary>
    public void Dispose()
    {
        if (_disposed)
        {
            return;
        }
        _disposed = true;
        foreach (Flow flow in _flows.Values.ToArray())
        {
            flow.AbortBackend();
            Remove(flow);
        }
    }

    /// <summary>
    /// How large <paramref name="flow"/>'s send buffer may grow now: its size plus whatever the total cap has
    /// left after keeping room for one more worst-case flow, so autotuning never makes the table refuse a new
    /// connection it would have admitted with fixed buffers (admission checks the same margin).
    /// </summary>
    private int SendBufferLimit(Flow flow)
    {
        long room = Options.MaxBufferedBytesTotal - Options.WorstCaseBytesPerFlow - _bufferedBytes;
        return room <= 0 ? 0 : (int)Math.Min(flow.Endpoint.SendBufferCapacity + room, int.MaxValue);
    }

    private void Settle<TDispatcher>(Flow flow, long nowMs, ref TDispatcher dispatcher) where TDispatcher : struct, IFlowDispatcher
    {
        flow.Pump(nowMs, SendBufferLimit(flow));
        dispatcher.Dispatch(flow, nowMs);
        if (flow.IsFinished)
        {
            Remove(flow);
            return;
        }
        long bytes = flow.BufferedBytes(Options.Tcp);
        _bufferedBytes += bytes - flow.AccountedBytes;
        flow.AccountedBytes = bytes;
        _timers.Set(flow, flow.Endpoint.NextDeadlineMs);
    }
}
