using System.Net;
using System.Net.Sockets;
using CookieProxy.Cookies;
using CookieProxy.Diagnostics;
using CookieProxy.Host.Backend;
using CookieProxy.Host.Flows;
using CookieProxy.Io;
using CookieProxy.Limits;
using CookieProxy.Platform;
using CookieProxy.Responder;
using CookieProxy.Tcp;
using CookieProxy.Wire;
using CookieProxy.Host.Diagnostics.Logging;
using Microsoft.Extensions.Logging;

namespace CookieProxy.Host.Capture;

/// <summary>Per-listener facts a worker needs when a cookie ACK validates.</summary>
internal sealed record ListenerRuntime(EndPoint Backend, BackendOptions BackendOptions);

/// <summary>
/// What a reload may change for a capture thread, as one immutable snapshot: published by the reload service,
/// taken by the thread between two batches (<see cref="CaptureWorker.Publish"/>), so the hot path takes no lock.
/// </summary>
internal sealed record WorkerSettings(
    ProtectedEndpoints Endpoints,
    ListenerRuntime[] Listeners,
    SynCookieCodec Codec,
    SourceLimitConfig? Limits,
    SourcePrefixSet Allow,
    SourcePrefixSet Deny,
    FlowTableOptions FlowOptions,
    int Version);

/// <summary>
/// One capture thread: owns its device (a PACKET_FANOUT member when there are several), its SYN responder
/// and counters, and its flows (shared-nothing). Backend socket events reach it through the flow table's
/// work queue plus <see cref="IPacketDevice.Wake"/>; nothing on the hot path takes a lock.
/// Loop: receive a batch → responder (flow segments and cookie ACKs, then SYNs) → settle the flows that got
/// segments (pump + dispatch once per flow) → backend work → timers → flush.
/// </summary>
internal sealed class CaptureWorker : IDisposable, IBackendReadiness
{
    private const int MaxWaitMs = 100;

    private readonly IPacketDevice _device;
    private readonly FrameBatch _batch;
    private readonly SynResponder _responder;
    private readonly FlowTable _flows;
    private ListenerRuntime[] _listeners;
    private readonly ProxyCounters _counters;
    private readonly byte[] _txScratch = new byte[65536 + 256];
    private readonly Thread _thread;
    private readonly ILogger? _flowLog;
    private SourceLimiter? _limiter;
    private readonly ILiveFlowRegistry? _liveFlows;
    private SourcePrefixSet _allow = SourcePrefixSet.Empty;
    private volatile WorkerSettings? _pending;
    private volatile int _settingsVersion;
    private readonly SocketReadiness? _readiness;
    private readonly Dictionary<int, Flow> _armed = new();
    private readonly ulong[] _readyTokens = new ulong[64];
    private readonly uint[] _readyMasks = new uint[64];
    /// <summary>The high half of each epoll token: a socket's descriptor number is reused once it closes (maybe by
    /// another thread), so a report is taken only if its token is the one the flow registered last.</summary>
    private uint _readinessGeneration;
    private volatile bool _stop;
    private volatile bool _drain;
    private long _nowMs;
    private long _unixMs;

    public CaptureWorker(int index, IPacketDevice device, SynResponder responder, FlowTableOptions flowOptions,
        ListenerRuntime[] listeners, ILogger? flowLog, SourceLimiter? limiter = null, ILiveFlowRegistry? liveFlows = null,
        ILogger? faultLog = null)
    {
        _limiter = limiter;
        _liveFlows = liveFlows; // xdp: the XDP SYN responder's live-flow map (XdpSynService)
        Index = index;
        _device = device;
        _responder = responder;
        _counters = responder.Counters;
        _listeners = listeners;
        _flowLog = flowLog;
        _batch = new FrameBatch(64);
        _flows = new FlowTable(flowOptions, _counters, device.Wake)
        {
            // A bug caught in one flow (the flow is reset, the others go on): logged with its stack, counted as loop_faults.
            FaultLog = faultLog is null ? null : (what, e) => HostLog.FlowFault(faultLog, index, what, e),
        };
        _readiness = TryOpenReadiness(device, HostOs.Current);
        if (_readiness is not null)
        {
            _flows.Readiness = this;
        }
        _flows.FlowRemoved = flow =>
        {
            _liveFlows?.Remove(flow.Key); // xdp: a SYN on this 4-tuple is the XDP program's again
            // `cookieproxy top`: flows per listener (created - closed).
            responder.CountListener(responder.Endpoints.Find(flow.Key.DstAddr, flow.Key.DstPort), ListenerCounter.FlowsClosed);
            if (flow.CountedBySource)
            {
                _limiter?.CloseConnection(flow.Key.SrcAddr);
            }
            if (flow.ReadinessFd >= 0 && _armed.TryGetValue(flow.ReadinessFd, out Flow? armed) && armed == flow)
            {
                _armed.Remove(flow.ReadinessFd);
            }
        };
        _thread = new Thread(Run) { IsBackground = true, Name = $"cookieproxy-capture-{index}" };
    }

    public int Index { get; }

    /// <summary>Backend readability on this thread's own epoll set (Linux, and a device that can wait on it).</summary>
    internal static SocketReadiness? TryOpenReadiness(IPacketDevice device, HostOs os)
    {
        if (!os.IsLinux)
        {
            return null;
        }
        var readiness = new SocketReadiness();
        if (device.TrySetAuxiliaryWaitFd(readiness.Fd))
        {
            return readiness;
        }
        readiness.Dispose();
        return null;
    }

    bool IBackendReadiness.ArmReadable(Socket socket, object owner) => Arm(socket, owner, ArmKind.Readable);

    bool IBackendReadiness.ArmWritable(Socket socket, object owner) => Arm(socket, owner, ArmKind.Writable);

    bool IBackendReadiness.WatchReadable(Socket socket, object owner) => Arm(socket, owner, ArmKind.Watch);

    private enum ArmKind
    {
        Readable,
        Writable,
        Watch,
    }

    /// <summary>A one-shot or (Watch) a lasting edge-triggered entry on this thread's epoll set; the events come back
    /// through <see cref="CollectReadable"/>.</summary>
    private bool Arm(Socket socket, object owner, ArmKind kind)
    {
        var flow = (Flow)owner;
        int fd;
        ulong token;
        try
        {
            fd = (int)socket.SafeHandle.DangerousGetHandle();
            if (!OperatingSystem.IsLinux() || _readiness is null || fd < 0)
            {
                return false;
            }
            token = ((ulong)++_readinessGeneration << 32) | (uint)fd;
            bool armed = kind switch
            {
                ArmKind.Writable => _readiness.ArmWritable(socket.SafeHandle, token),
                ArmKind.Watch => _readiness.WatchReadable(socket.SafeHandle, token),
                _ => _readiness.ArmReadable(socket.SafeHandle, token),
            };
            if (!armed)
            {
                return false;
            }
        }
        catch (ObjectDisposedException)
        {
            return false;    // closed under us: the thread-pool path sees it too and the close notifies the owner
        }
        flow.ReadinessFd = fd;
        flow.ReadinessToken = token;
        _armed[fd] = flow;
        return true;
    }

    /// <summary>Backend sockets that turned readable: their flows are pumped with this loop's settle pass.</summary>
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    private void CollectReadable()
    {
        int n;
        while ((n = _readiness!.Collect(_readyTokens, _readyMasks)) > 0)
        {
            for (int i = 0; i < n; i++)
            {
                ulong token = _readyTokens[i];
                int fd = (int)(uint)token;
                if (!_armed.TryGetValue(fd, out Flow? flow) || flow.ReadinessToken != token)
                {
                    continue;    // a report for a descriptor since closed (and maybe reused by another flow)
                }
                if (!flow.Backend.Watched)
                {
                    _armed.Remove(fd);    // one-shot: re-armed by the backend when it needs another report
                }
                if (!flow.Removed)
                {
                    flow.Backend.OnReady(SocketReadiness.IsHangUp(_readyMasks[i]));
                    _flows.MarkForSettle(flow);
                }
            }
            if (n < _readyTokens.Length)
            {
                break;
            }
        }
    }

    public ProxyCounters Counters => _counters;

    /// <summary>The thread's responder (its per-listener counts, sketch and limiter, for the control socket).</summary>
    public SynResponder Responder => _responder;

    public IPacketDevice Device => _device;

    /// <summary>The flow table's ring buffer pool (its counters, for the stats).</summary>
    public RingBufferPool BufferPool => _flows.BufferPool;

    /// <summary>Set when the loop died of a bug or a device failure; the host then exits non-zero (fail fast).</summary>
    public Exception? Fault { get; private set; }

    public event Action<CaptureWorker>? Faulted;

    public void Start() => _thread.Start();

    /// <summary>The <see cref="WorkerSettings.Version"/> this thread runs with (0: the start-up settings).</summary>
    public int SettingsVersion => _settingsVersion;

    /// <summary>A reload: the thread takes <paramref name="settings"/> before its next batch.</summary>
    public void Publish(WorkerSettings settings)
    {
        _pending = settings;
        _device.Wake();
    }

    /// <summary>Owner thread, between batches: the new settings, all at once.</summary>
    private void Apply(WorkerSettings s)
    {
        SourceLimiter? limiter = _limiter;
        if (s.Limits is null || !(s.Limits.SynLimitEnabled || s.Limits.ConnectionLimitEnabled))
        {
            limiter = null;
        }
        else if (limiter is null || !limiter.CountsConnections)
        {
            limiter = limiter is null ? new SourceLimiter(s.Limits) : limiter.WithConfig(s.Limits);
        }
        else
        {
            limiter = limiter.WithConfig(s.Limits);
        }
        // The flows open now are counted under the new limits (so a lowered cap holds from here on): carried over
        // when both limiters count connections (WithConfig copies the counts), counted afresh when the connection
        // limits were off until now, and not at all when they are off from now on.
        bool recount = limiter is { CountsConnections: true } && _limiter is not { CountsConnections: true };
        bool keep = limiter is { CountsConnections: true } && !recount;
        if (!keep)
        {
            foreach (Flow flow in _flows.Flows)
            {
                flow.CountedBySource = recount && !s.Allow.Contains(flow.Key.SrcAddr) && limiter!.AddExisting(flow.Key.SrcAddr, _unixMs);
            }
        }
        _limiter = limiter;
        _allow = s.Allow;
        _listeners = s.Listeners;
        _flows.Options = s.FlowOptions;
        _responder.Reconfigure(s.Endpoints, s.Codec, limiter, s.Allow, s.Deny);
        _settingsVersion = s.Version;
    }

    /// <summary>Shutting down: from the next batch on, SYNs go unanswered and cookie ACKs get RST; established flows go on.</summary>
    public void BeginDrain()
    {
        _drain = true;
        _device.Wake();
    }

    public void Stop()
    {
        _stop = true;
        _device.Wake();
        _thread.Join();
    }

    private void Run()
    {
        var handler = new FlowHandler(this);
        _flows.WorkQueue.SetOwnerThread();
        try
        {
            while (!_stop)
            {
                long now = MonotonicClock.NowMs;
                long next = Math.Min(_flows.NextDeadlineMs, _responder.NextDeadlineMs); // syncache: SYN+ACK retransmissions
                int wait = next == long.MaxValue ? MaxWaitMs : (int)Math.Clamp(next - now, 0, MaxWaitMs);
                if (!_flows.WorkQueue.IsEmpty)
                {
                    wait = 0;
                }
                _device.Receive(_batch, wait);
                if (_pending is WorkerSettings settings)
                {
                    _pending = null;
                    Apply(settings);
                }
                _responder.Draining = _drain;

                _nowMs = MonotonicClock.NowMs;
                if (_batch.Count > 0)
                {
                    _unixMs = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
                    _responder.ProcessBatch(_batch, ref handler, _device, _unixMs, _nowMs);
                }
                if (OperatingSystem.IsLinux() && _readiness is not null && _armed.Count > 0)
                {
                    CollectReadable();
                }
                _flows.SettleProcessed(_nowMs, ref handler);
                _flows.ProcessWork(_nowMs, ref handler);
                _flows.Tick(_nowMs, ref handler);
                _responder.Tick(_nowMs, _device); // syncache: SYN+ACK retransmissions due now
                _device.Flush();
            }
            _flows.AbortAll(MonotonicClock.NowMs, ref handler);
            _device.Flush();
        }
        catch (Exception e)
        {
            Fault = e;
            Faulted?.Invoke(this);
        }
    }

    public void Dispose()
    {
        _flows.Dispose();
        _device.Dispose();
        if (OperatingSystem.IsLinux())
        {
            _readiness?.Dispose();
        }
    }

    /// <summary>The responder's and the flow table's view of this worker (a struct: calls are specialised).</summary>
    private readonly struct FlowHandler : IFlowHandler, IFlowDispatcher
    {
        private readonly CaptureWorker _w;

        public FlowHandler(CaptureWorker worker) => _w = worker;

        public bool TryDeliver(ref ParsedPacket packet, Span<byte> frame, int listener)
        {
            if (_w._flows.Count == 0 || !_w._flows.TryGet(packet.Flow, out Flow? flow))
            {
                return false;
            }
            _w._flows.ProcessClientSegment(flow, packet.Tcp, frame.Slice(packet.PayloadOffset, packet.PayloadLength), _w._nowMs);
            return true;
        }

        public void OnCookieValid(ref ParsedPacket packet, Span<byte> frame, int listener, in CookieDecoded cookie)
        {
            var handshake = new TcpHandshake
            {
                Irs = new SeqNumber(cookie.ClientIsn),
                Iss = new SeqNumber(cookie.LocalIsn),
                SendMss = cookie.Mss,
                SendWindowScale = cookie.WindowScale,
                // RFC 7323 2.2: scaling is on only if both SYNs carried the option; we offered ours iff the client did.
                RecvWindowScale = cookie.WindowScale >= 0 ? _w._responder.WindowScale : (sbyte)-1,
                SackPermitted = cookie.SackPermitted,
                TimestampsEnabled = cookie.Timestamps,
                TsRecent = packet.Tcp.Options.TsVal,
                LocalTsInitial = cookie.LocalTsVal,
                InitialWindow = packet.Tcp.Window,
            };
            var path = new ClientPath { Template = L2L3Template.FromReceived(packet, frame) };
            ListenerRuntime l = _w._listeners[listener];
            if (_w._responder.Draining)
            {
                // Shutting down: no new flow. RST, so the client retries (elsewhere) at once.
                _w._counters.Drop(DropReason.Draining);
                _w._responder.SendReset(packet, frame, _w._device);
                return;
            }
            // pf's max-src-conn / max-src-conn-rate: the handshake proved the source, so limit it here.
            SourceLimiter? limiter = _w._limiter;
            bool limited = limiter?.Config.ConnectionLimitEnabled == true && (_w._allow.IsEmpty || !_w._allow.Contains(packet.Flow.SrcAddr));
            if (limited && !limiter!.TryOpenConnection(packet.Flow.SrcAddr, _w._unixMs))
            {
                _w._responder.Drop(DropReason.RateLimited, frame);    // counted and sampled before the RST rewrites it
                _w._responder.SendReset(packet, frame, _w._device);
                return;
            }
            DropReason refused = _w._flows.TryAdd(packet.Flow, handshake, l.Backend, path, _w._nowMs, out Flow? flow, l.BackendOptions);
            if (refused != DropReason.None)
            {
                _w._responder.Sampler?.OnDrop(frame, refused);    // the table counted it
                if (limited)
                {
                    limiter!.CloseConnection(packet.Flow.SrcAddr);
                }
                // Bounded memory: beyond the caps a validated connection is refused with RST, never queued.
                _w._responder.SendReset(packet, frame, _w._device);
                return;
            }
            _w._liveFlows?.Add(packet.Flow); // xdp: from now on a SYN on this 4-tuple goes to the flow (RFC 5961 4)
            _w._responder.CountListener(listener, ListenerCounter.FlowsCreated);
            flow!.CountedBySource = limited;
            flow.Endpoint.LocalPort = packet.Tcp.DstPort;
            flow.Endpoint.RemotePort = packet.Tcp.SrcPort;
            if (_w._device.OffloadMaxFrameBytes > 0)
            {
                // The device cuts super-frames: let the endpoint emit up to 64 KiB per data segment.
                flow.Endpoint.SegmentOffloadBytes = TcpSuperFrame.MaxPayloadBytes;
            }
            if (_w._flowLog is not null)
            {
                // Through the logger's queue: this thread never writes to the console itself.
                HostLog.FlowValidated(_w._flowLog, _w.Index, packet.Flow.ToString(), cookie.Mss, cookie.WindowScale, cookie.SackPermitted, cookie.Timestamps);
            }
            // The cookie ACK may already carry data (or FIN): process it as the flow's first segment.
            _w._flows.ProcessClientSegment(flow, packet.Tcp, frame.Slice(packet.PayloadOffset, packet.PayloadLength), _w._nowMs);
        }

        public void Dispatch(Flow flow, long nowMs)
        {
            var sink = new SegmentSink(_w, (ClientPath)flow.ReplyTemplate!, flow.Endpoint);
            flow.Endpoint.Dispatch(ref sink, nowMs);
            sink.Complete();
        }
    }

    /// <summary>
    /// Builds each segment the endpoint emits into a frame and queues it on the device. With TX offload the
    /// frames are built in place in the device's queue and consecutive data segments of one Dispatch become
    /// one super-frame (<see cref="TcpSuperFrame"/>): one sendmmsg message and one skb per up to 64 KiB.
    /// </summary>
    private ref struct SegmentSink : ITcpSegmentSink
    {
        private readonly CaptureWorker _w;
        private readonly ClientPath _path;
        private readonly TcpEndpoint _endpoint;
        private readonly int _offloadBytes;
        private TcpSuperFrame _frame;

        public SegmentSink(CaptureWorker worker, ClientPath path, TcpEndpoint endpoint)
        {
            _w = worker;
            _path = path;
            _endpoint = endpoint;
            _offloadBytes = worker._device.OffloadMaxFrameBytes;
        }

        public void Emit(in TcpRepr segment, ReadOnlySpan<byte> payloadHead, ReadOnlySpan<byte> payloadTail)
        {
            bool queued;
            if (_offloadBytes > 0)
            {
                if (_frame.IsStarted && _frame.TryAppend(segment, payloadHead, payloadTail))
                {
                    Count(segment);
                    return;
                }
                Complete();
                Span<byte> buffer = _w._device.ReserveOffloaded(_offloadBytes);
                int cut = _endpoint.SegmentOffloadBytes > 0 ? _endpoint.EmitSegmentSize : 0;
                queued = _frame.Start(buffer, _path.Template, segment, payloadHead, payloadTail, cut);
                if (!queued)
                {
                    _w._device.CommitOffloaded(0, default);    // abandon the reservation
                }
                else if (!_frame.IsOpen)
                {
                    Complete();
                }
            }
            else
            {
                int n = TcpFrameBuilder.Write(_w._txScratch, _path.Template, segment, payloadHead, payloadTail);
                queued = n > 0 && _w._device.Send(_w._txScratch.AsSpan(0, n));
            }

            if (queued)
            {
                Count(segment);
            }
            else
            {
                _w._counters.Drop(DropReason.TxFailed);
            }
        }

        /// <summary>Queues the super-frame being built, if any. Called before any other frame and after Dispatch.</summary>
        public void Complete()
        {
            if (_frame.IsStarted)
            {
                int length = _frame.Finish(out TxOffload offload);
                _w._device.CommitOffloaded(length, offload);
            }
        }

        private readonly void Count(in TcpRepr segment)
        {
            _w._counters[Counter.SegmentsToClient]++;
            if ((segment.Flags & TcpFlags.Rst) != 0)
            {
                _w._counters[Counter.RstSent]++;
            }
        }
    }
}
