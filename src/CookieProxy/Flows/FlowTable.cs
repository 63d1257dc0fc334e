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
/// <para>
/// Hostile clients: a source prefix holds at most its share of the table (<see cref="FlowTableOptions.MaxFlowsPerSource"/>),
/// and when the table or the buffer cap is full a new connection evicts the least recently active flow, oldest
/// first, once it has been idle <see cref="FlowTableOptions.EvictIdleMs"/>. The idle list is ordered by
/// <see cref="Flow.LastActivityMs"/> (a flow that moves bytes goes to its tail, in O(1)), so thousands of idle or
/// dribbling connections delay nobody: they are the first to go.
/// </para>
/// <para>
/// Memory: the table holds the sum of its flows' <see cref="Flow.MemoryFootprint"/> (touched ring pages once the
/// advertised windows fill, plus output pipes) under <see cref="FlowTableOptions.MaxBufferedBytesTotal"/>. Each
/// settle grants a flow only what the budget has left (the window it may open, pipe and send-buffer bytes), keeping
/// <see cref="FlowTableOptions.NewFlowReserveBytes"/> for the first windows of newcomers; held-back flows are
/// revisited when memory frees. Under pressure, emptied rings of idle flows give their pages back first, then idle
/// flows are evicted. Like Linux's tcp_mem: the cap bounds what the process really holds, not a nominal buffer size.
/// </para>
/// </summary>
public sealed class FlowTable : IDisposable
{
    private readonly Dictionary<FlowKey, Flow> _flows;
    private readonly FlowTimerHeap _timers = new();
    private readonly List<Flow> _due = new();
    private readonly List<Flow> _processed = new();
    /// <summary>Flows evicted since the last settle pass: out of the table, their client RST still to dispatch.</summary>
    private readonly List<Flow> _evicted = new();
    /// <summary>Flows the memory budget held back (Flow.Starved): settled again once the table is below its growth cap.</summary>
    private readonly List<Flow> _starved = new();
    private readonly Dictionary<IpAddr, int> _perSource = new();
    private readonly ProxyCounters _counters;
    private readonly ulong _v4LoMask;
    private readonly ulong _v6HiMask;
    private readonly ulong _v6LoMask;
    private Flow? _idleHead;
    private Flow? _idleTail;
    private long _bufferedBytes;
    private int _peakFlows;
    private long _lastNowMs;
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
        Func<byte[], int, bool>? decommit = options.DecommitFreeRings && CookieProxy.Platform.PinnedPages.IsSupported
            ? CookieProxy.Platform.PinnedPages.TryDecommit
            : null;
        BufferPool = new RingBufferPool(options.Tcp.ReceiveBufferSize, options.MaxPooledRings, options.MaxColdPooledRings, decommit,
            decommit is null ? null : options.SharedColdRings);
        _v4LoMask = 0xFFFF_FFFF_0000_0000UL | (options.SourcePrefixV4 == 0 ? 0UL : uint.MaxValue << (32 - options.SourcePrefixV4));
        _v6HiMask = options.SourcePrefixV6 == 0 ? 0UL : options.SourcePrefixV6 >= 64 ? ulong.MaxValue : ulong.MaxValue << (64 - options.SourcePrefixV6);
        _v6LoMask = options.SourcePrefixV6 <= 64 ? 0UL : options.SourcePrefixV6 == 128 ? ulong.MaxValue : ulong.MaxValue << (128 - options.SourcePrefixV6);
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

    /// <summary>Memory all flows may hold as of their last settle, the sum of <see cref="Flow.MemoryFootprint"/> (the
    /// figure the total cap is checked against).</summary>
    public long BufferedBytes => _bufferedBytes;

    /// <summary>Flows waiting for memory to free (the budget held them back).</summary>
    public int StarvedCount => _starved.Count;

    /// <summary>Earliest timer of any flow; the capture loop should not sleep past it (long.MaxValue = none).</summary>
    public long NextDeadlineMs => _timers.MinDeadlineMs;

    /// <summary>Called on the owner thread as each flow leaves the table (per-source accounting).</summary>
    public Action<Flow>? FlowRemoved { get; set; }

    /// <summary>Where a bug caught in a flow's pump or backend loop is reported: what failed, and the exception with
    /// its stack (null: stderr).</summary>
    public Action<string, Exception>? FaultLog { get; set; }

    /// <summary>The owner's event loop for backend readability, handed to every new flow (null: thread-pool waits).</summary>
    public IBackendReadiness? Readiness { get; set; }

    public bool TryGet(in FlowKey key, [MaybeNullWhen(false)] out Flow flow) => _flows.TryGetValue(key, out flow);

    /// <summary>Flows the source prefix of <paramref name="source"/> holds in this table now.</summary>
    public int FlowsOf(in IpAddr source) => _perSource.TryGetValue(SourcePrefix(source), out int n) ? n : 0;

    /// <summary>
    /// A cookie ACK was validated: creates the endpoint in ESTABLISHED and starts the backend connect.
    /// Returns <see cref="DropReason.None"/> and the flow, or SourceFlowLimit / FlowTableFull / BufferLimit (already
    /// counted here as a drop): the caller then answers the client with RST. When the table or the buffer cap is
    /// full, idle flows are evicted first (their RSTs go out with the next settle pass). Afterwards pass the
    /// cookie ACK itself to <see cref="ProcessClientSegment"/> (it may carry data or FIN).
    /// </summary>
    public DropReason TryAdd(in FlowKey key, in TcpHandshake handshake, EndPoint backend, object? replyTemplate, long nowMs,
        [NotNullWhen(true)] out Flow? flow, BackendOptions? backendOptions = null)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        flow = null;
        DropReason refused = Admit(key.SrcAddr, nowMs);
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
        flow = new Flow(WorkQueue, _counters, key, endpoint, backend, backendOptions ?? Options.Backend, replyTemplate, nowMs, Readiness,
            Options.Tcp.FirstDataTimeoutMs, Options.BackendLingerMs);
        _flows.Add(key, flow);
        _peakFlows = Math.Max(_peakFlows, _flows.Count);
        _lastNowMs = nowMs;
        IpAddr prefix = SourcePrefix(key.SrcAddr);
        _perSource[prefix] = _perSource.TryGetValue(prefix, out int held) ? held + 1 : 1;
        IdleAppend(flow);
        Account(flow);    // its SYN+ACK window is promised already: counted before the next admission of this batch
        _counters[Counter.FlowsCreated]++;
        _counters[Counter.FlowsActive]++;
        flow.Backend.Start();
        _timers.Set(flow, flow.NextDeadlineMs);
        return DropReason.None;
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
        DispatchEvicted(nowMs, ref dispatcher);
        ReviveStarved();
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

    /// <summary>Owner thread: runs the flows whose timer is due (retransmission, delayed ACK, TIME-WAIT, backend deadlines, ...).</summary>
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
        DispatchEvicted(nowMs, ref dispatcher);
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
        ReportRetransmits(flow);
        flow.Endpoint.AddStatisticsTo(_counters); // tcp: RTOs, loss probes, RACK... (Counter.Tcp*), when the flow ends
        FlowRemoved?.Invoke(flow);
        _flows.Remove(flow.Key);
        IpAddr prefix = SourcePrefix(flow.Key.SrcAddr);
        if (_perSource.TryGetValue(prefix, out int held) && held > 1)
        {
            _perSource[prefix] = held - 1;
        }
        else
        {
            _perSource.Remove(prefix);
        }
        IdleUnlink(flow);
        _timers.Remove(flow);
        _bufferedBytes -= flow.AccountedBytes;
        flow.AccountedBytes = 0;
        _counters[Counter.FlowBufferBytes] = _bufferedBytes;
        flow.Backend.Dispose();
        // After FlowRemoved, which may still look at the endpoint: its rings go back to the pool for the next flow.
        flow.Endpoint.ReleaseBuffers();
        _counters[Counter.FlowsClosed]++;
        _counters[Counter.FlowsActive]--;
        // A flow still in _starved is skipped there (Removed) and dropped at the next revival.
        MemoryReclaimer.OnFlowsFell(_flows.Count, ref _peakFlows, _lastNowMs);
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
        _evicted.Clear();
        _starved.Clear();
    }

    /// <summary>Established flows grow only while the table holds less than this; the rest is the newcomers' reserve.</summary>
    private long GrowthCap => Options.MaxBufferedBytesTotal - Options.NewFlowReserveBytes;

    /// <summary>
    /// How large <paramref name="flow"/>'s send buffer may grow now: its size plus whatever the growth cap has
    /// left, so autotuning never eats the reserve that admits new connections.
    /// </summary>
    private int SendBufferLimit(Flow flow)
    {
        long room = GrowthCap - _bufferedBytes;
        return room <= 0 ? 0 : (int)Math.Min(flow.Endpoint.SendBufferCapacity + room, int.MaxValue);
    }

    /// <summary>Settles (up to a batch of) the flows the budget held back, once the table is clearly below its growth cap.</summary>
    private void ReviveStarved()
    {
        if (_starved.Count == 0 || _bufferedBytes > GrowthCap - Options.NewFlowReserveBytes / 2)
        {
            return;
        }
        int n = Math.Min(_starved.Count, 256);
        for (int i = 0; i < n; i++)
        {
            Flow flow = _starved[i];
            flow.InStarvedList = false;
            MarkForSettle(flow);
        }
        _starved.RemoveRange(0, n);
    }

    /// <summary>Under pressure: the least recently active flows give back the pages of their emptied rings (at most
    /// 16 looked at per call). True when that freed anything.</summary>
    private bool TryTrimIdle()
    {
        long freed = 0;
        int looked = 0;
        for (Flow? flow = _idleHead; flow is not null && looked < 16; flow = flow.IdleNext, looked++)
        {
            if (flow.Endpoint.TrimBuffers() > 0)
            {
                long before = flow.AccountedBytes;
                Account(flow);
                freed += before - flow.AccountedBytes;
            }
        }
        return freed > 0;
    }

    /// <summary>The flow's footprint into the table's sum.</summary>
    private void Account(Flow flow)
    {
        long bytes = flow.MemoryFootprint;
        _bufferedBytes += bytes - flow.AccountedBytes;
        flow.AccountedBytes = bytes;
        _counters[Counter.FlowBufferBytes] = _bufferedBytes;
    }

    /// <summary>The caps, in order: the source's share, a free slot, room in the buffer cap (evicting idle flows for the last two).</summary>
    private DropReason Admit(in IpAddr source, long nowMs)
    {
        if (FlowsOf(source) >= Options.EffectiveMaxFlowsPerSource)
        {
            return DropReason.SourceFlowLimit;
        }
        while (_flows.Count >= Options.MaxFlows)
        {
            if (!TryEvictIdle(nowMs))
            {
                return DropReason.FlowTableFull;
            }
        }
        while (_bufferedBytes > Options.MaxBufferedBytesTotal - Options.InitialFlowBytes)
        {
            if (!TryTrimIdle() && !TryEvictIdle(nowMs))
            {
                return DropReason.BufferLimit;
            }
        }
        return DropReason.None;
    }

    /// <summary>Resets the least recently active flow if it has been idle long enough. The slot and its bytes are
    /// free at once; the RST to its client is dispatched with the next settle pass.</summary>
    private bool TryEvictIdle(long nowMs)
    {
        Flow? oldest = _idleHead;
        if (oldest is null || Options.EvictIdleMs <= 0 || nowMs - oldest.LastActivityMs < Options.EvictIdleMs)
        {
            return false;
        }
        _counters[Counter.FlowsEvicted]++;
        oldest.AbortClient();
        oldest.AbortBackend();
        Remove(oldest);    // an RST already pending survives ReleaseBuffers and goes out on the next Dispatch
        _evicted.Add(oldest);
        return true;
    }

    private IpAddr SourcePrefix(in IpAddr source) => source.IsV4
        ? new IpAddr(source.Hi, source.Lo & _v4LoMask)
        : new IpAddr(source.Hi & _v6HiMask, source.Lo & _v6LoMask);

    private void Settle<TDispatcher>(Flow flow, long nowMs, ref TDispatcher dispatcher) where TDispatcher : struct, IFlowDispatcher
    {
        try
        {
            SettleCore(flow, nowMs, ref dispatcher);
        }
        catch (Exception e) when (!flow.Removed)
        {
            // Our own bug in this flow's pump or dispatch: reset the flow and keep serving the others. A second
            // failure while resetting it escapes to the capture loop, which ends the process (fail fast).
            ReportFault($"flow {flow.Key}", e);
            flow.AbortClient();
            flow.AbortBackend();
            dispatcher.Dispatch(flow, nowMs);
            Remove(flow);
        }
    }

    private void SettleCore<TDispatcher>(Flow flow, long nowMs, ref TDispatcher dispatcher) where TDispatcher : struct, IFlowDispatcher
    {
        _lastNowMs = nowMs;
        // The budget: what this flow may add now, given what all the others hold.
        long allowance = GrowthCap - (_bufferedBytes - flow.AccountedBytes) - flow.MemoryFootprint;
        if (allowance <= 0 && flow.Endpoint.TrimBuffers() > 0)
        {
            allowance = GrowthCap - (_bufferedBytes - flow.AccountedBytes) - flow.MemoryFootprint;    // under pressure: emptied rings first
        }
        allowance = Math.Max(0, allowance);
        flow.Starved = false;
        TcpEndpoint endpoint = flow.Endpoint;
        endpoint.ReceiveWindowLimit = endpoint.ReceiveWindowWithin(allowance);
        long left = flow.Pump(nowMs, SendBufferLimit(flow), allowance);
        endpoint.ReceiveWindowLimit = endpoint.ReceiveWindowWithin(left);
        if (left < Options.InitialFlowBytes)
        {
            flow.Starved = true;    // little or no room to open its window: revisit when memory frees
        }
        dispatcher.Dispatch(flow, nowMs);
        if (flow.Endpoint.IsClosed && !flow.IsFinished)
        {
            // The dispatch ran the endpoint's timers (idle, first data, retransmit limit, TIME-WAIT): a client side
            // that closed just now reaches the backend at once, not at the backend's next event, which a silent
            // backend never sends (its slot and socket would stay taken: the --idle-timeout leak).
            flow.Pump(nowMs, 0);
        }
        if (flow.Backend.UnexpectedException is { } bug && !flow.FaultReported)
        {
            flow.FaultReported = true;
            ReportFault($"flow {flow.Key}: backend loop", bug);
        }
        ReportRetransmits(flow);
        if (flow.IsFinished)
        {
            Remove(flow);
            return;
        }
        Account(flow);
        if (flow.Starved && !flow.InStarvedList)
        {
            flow.InStarvedList = true;
            _starved.Add(flow);
        }
        if (flow.LastActivityMs != flow.IdleListMs)
        {
            IdleUnlink(flow);
            IdleAppend(flow);
        }
        _timers.Set(flow, flow.NextDeadlineMs);
    }

    /// <summary>The RSTs of flows evicted since the last pass (they left the table in <see cref="TryEvictIdle"/>).</summary>
    private void DispatchEvicted<TDispatcher>(long nowMs, ref TDispatcher dispatcher) where TDispatcher : struct, IFlowDispatcher
    {
        for (int i = 0; i < _evicted.Count; i++)
        {
            dispatcher.Dispatch(_evicted[i], nowMs);
        }
        _evicted.Clear();
    }

    /// <summary>Retransmissions count as they happen, not only when a flow closes.</summary>
    private void ReportRetransmits(Flow flow)
    {
        long total = flow.Endpoint.Retransmissions;
        _counters[Counter.Retransmits] += total - flow.ReportedRetransmits;
        flow.ReportedRetransmits = total;
    }

    private void ReportFault(string what, Exception e)
    {
        _counters[Counter.LoopFaults]++;
        if (FaultLog is { } log)
        {
            log(what, e);
        }
        else
        {
            Console.Error.WriteLine($"cookieproxy: bug: {what}: {e}");
        }
    }

    // The idle list, least recently active first: LastActivityMs only grows, and a flow whose activity moved goes to the tail.
    private void IdleAppend(Flow flow)
    {
        flow.IdleListMs = flow.LastActivityMs;
        flow.IdlePrev = _idleTail;
        flow.IdleNext = null;
        if (_idleTail is null)
        {
            _idleHead = flow;
        }
        else
        {
            _idleTail.IdleNext = flow;
        }
        _idleTail = flow;
        flow.InIdleList = true;
    }

    private void IdleUnlink(Flow flow)
    {
        if (!flow.InIdleList)
        {
            return;
        }
        if (flow.IdlePrev is null)
        {
            _idleHead = flow.IdleNext;
        }
        else
        {
            flow.IdlePrev.IdleNext = flow.IdleNext;
        }
        if (flow.IdleNext is null)
        {
            _idleTail = flow.IdlePrev;
        }
        else
        {
            flow.IdleNext.IdlePrev = flow.IdlePrev;
        }
        flow.IdlePrev = null;
        flow.IdleNext = null;
        flow.InIdleList = false;
    }
}
