using System.Buffers.Binary;
using System.Security.Cryptography;
using CookieProxy.Cookies;
using CookieProxy.Diagnostics;
using CookieProxy.Host.Backend;
using CookieProxy.Host.Cli;
using CookieProxy.Host.Diagnostics.Logging;
using CookieProxy.Host.Flows;
using CookieProxy.Host.Services;
using CookieProxy.Io;
using CookieProxy.Limits;
using CookieProxy.Platform;
using CookieProxy.Responder;
using CookieProxy.Tcp;
using Microsoft.Extensions.Logging;

namespace CookieProxy.Host.Capture;

/// <summary>
/// The capture threads: opens one device per thread (PACKET_FANOUT-grouped when there are several) with its
/// responder, limiter and flow table (shared-nothing), starts the threads, drains and stops them. Owns the
/// protected endpoints and the per-thread counters (<see cref="Snapshot"/>).
/// </summary>
internal sealed class CaptureService : IHostService, IDrainingService
{
    /// <summary>Cap on the default thread count: every thread costs its own receive ring (--ring-mb) and gets an
    /// equal share of --max-flows and --max-buffer-mb, so the more threads, the less of them one heavy source
    /// (steered to one thread) can use. More can still be asked for explicitly.</summary>
    public const int MaxDefaultThreads = 8;

    private ProxyOptions _o;
    private int _settingsVersion;
    private FanoutMode _fanout = FanoutMode.FlowHash;
    /// <summary>faults: the capture threads' decommitted free ring arrays, shared (FlowTableOptions.SharedColdRings).</summary>
    private ColdRingDepot? _coldRings;
    private readonly List<System.Net.IPEndPoint> _retired = [];
    private readonly Func<SynCookieCodec> _codec;
    private readonly HostLifetime _lifetime;
    private readonly ILogger _log;
    private readonly List<CaptureWorker> _workers = [];

    public CaptureService(ProxyOptions options, Func<SynCookieCodec> codec, HostLifetime lifetime, ILogger log)
    {
        _o = options;
        _codec = codec;
        _lifetime = lifetime;
        _log = log;
        Endpoints = new ProtectedEndpoints();
        foreach (ListenerOptions l in options.Listeners)
        {
            Endpoints.Add(l.Listen);
        }
        ResponderConfig = new ResponderConfig { Mss = options.Mss, ReceiveBufferSize = options.FlowBufferBytes, RstInvalid = options.RstInvalid };
    }

    public string Name => "capture";

    /// <summary>The protected endpoints the threads started with (what the XDP program was loaded with).</summary>
    public ProtectedEndpoints Endpoints { get; }

    public ResponderConfig ResponderConfig { get; }

    /// <summary>xdp: the XDP SYN responder's live-flow map, handed to every worker (set before Open; null: none).</summary>
    public ILiveFlowRegistry? LiveFlows { get; set; }

    public IReadOnlyList<CaptureWorker> Workers => _workers;

    // ---- ops: what `cookieproxy top`, /metrics and --sample-pcap need from the threads

    /// <summary>--sample-pcap: each thread's responder gets a ring of this sampler (null: sampling off).</summary>
    public Diagnostics.PcapSampler? Sampler { get; init; }

    /// <summary>The listeners as configured now (the control socket names them).</summary>
    public IReadOnlyList<ListenerOptions> Listeners => _o.Listeners;

    /// <summary>Each thread's per-listener counts, source sketch and limiter, read by the control socket (any thread;
    /// taken afresh on every call, since a reload may replace a limiter).</summary>
    public IReadOnlyList<Control.ThreadView> ThreadViews()
    {
        CaptureWorker[] workers = [.. _workers];
        var views = new Control.ThreadView[workers.Length];
        for (int i = 0; i < views.Length; i++)
        {
            SynResponder r = workers[i].Responder;
            views[i] = new Control.ThreadView(r.ListenerCounters, r.Sketch, r.Limiter);
        }
        return views;
    }

    /// <summary>"AF_PACKET TPACKET_V3, 2 threads, fanout by ..." for the start-up line (after Open).</summary>
    public string Description { get; private set; } = "";

    /// <summary>Default for --threads 0: one per core where AF_PACKET fanout can share the frames, one with
    /// libpcap or AF_XDP (one socket on queue 0), at most <see cref="MaxDefaultThreads"/>.</summary>
    public static int DefaultThreads(CaptureKind capture, HostOs? os = null) =>
        capture is CaptureKind.Pcap or CaptureKind.AfXdp || !(os ?? HostOs.Current).IsLinux ? 1 : Math.Clamp(Environment.ProcessorCount, 1, MaxDefaultThreads);

    public void Open()
    {
        ProxyOptions o = _o;
        SynCookieCodec codec = _codec();
        ListenerRuntime[] listeners = ListenersFor(o);
        int threads = o.Threads > 0 ? o.Threads : DefaultThreads(o.Capture);
        if (o.Threads == 0 && threads == 1 && Environment.ProcessorCount > 1)
        {
            HostLog.OneThread(_log, o.Capture == CaptureKind.AfXdp
                ? "AF_XDP capture here uses one socket on queue 0"
                : "libpcap capture cannot share the frames between threads (no fanout)");
        }
        // faults: the threads' decommitted free rings in one depot (FlowTableOptions.SharedColdRings), as many as one
        // table of the whole --max-flows / --max-buffer-mb would keep.
        _coldRings = new ColdRingDepot(o.FlowBufferBytes,
            new FlowTableOptions { MaxFlows = o.MaxFlows, MaxBufferedBytesTotal = o.MaxBufferedBytes, Tcp = new TcpConfig { ReceiveBufferSize = o.FlowBufferBytes } }.MaxColdPooledRings);
        FlowTableOptions FlowOptionsFor(int threadCount) => FlowOptions(o, listeners, threadCount, _coldRings);
        FlowTableOptions flowOptions = FlowOptionsFor(threads);
        try
        {
            flowOptions.Validate();
        }
        catch (ArgumentException e)
        {
            throw new HostStartException($"buffer limits do not fit (--max-buffer-mb {o.MaxBufferedBytes >> 20} over {threads} thread(s), "
                + $"--flow-buffer-kb {o.FlowBufferBytes >> 10}): {e.Message}", ExitCodes.Usage);
        }

        SourceLimitConfig limitConfig = LimitConfigFor(o);
        try
        {
            limitConfig.Validate();
        }
        catch (ArgumentOutOfRangeException e)
        {
            throw new HostStartException($"per-source limits: {e.Message}", ExitCodes.Usage);
        }

        // Each thread has its own limiter (shared-nothing), so a source's limits are exact only if all its traffic
        // reaches one thread: steering by source prefix (the limiter's own prefix lengths) does that; the flow hash
        // spreads a source's flows over the threads and makes its limits per thread.
        bool limited = limitConfig.SynLimitEnabled || limitConfig.ConnectionLimitEnabled;
        FanoutMode fanoutMode = o.Fanout ?? (limited ? FanoutMode.SourcePrefix : FanoutMode.FlowHash);
        _fanout = fanoutMode;
        if (threads > 1 && limited && fanoutMode == FanoutMode.FlowHash)
        {
            HostLog.FanoutFlowLimits(_log, threads);
        }
        string filter = BpfFilter.ForProtectedEndpoints(Endpoints.Endpoints);
        int fanoutGroup = threads > 1 ? Environment.ProcessId & 0xFFFF : -1;
        string? fallbackReason = null;
        var deviceOptions = new PacketDeviceOptions
        {
            Fanout = Steering(fanoutMode, threads, o),
            SegmentationOffload = o.TxOffload,
            RingBlockCount = PacketDeviceOptions.RingBlocksFor(o.RingMegabytes),
            PcapBufferBytes = (int)Math.Min((long)o.RingMegabytes << 20, int.MaxValue), // the libpcap buffer: --ring-mb too
            Rings = o.RxRings,
            PcapSend = o.PcapSend,
        };
        ILogger? flowLog = o.Verbose ? _log : null;
        for (int t = 0; t < threads; t++)
        {
            IPacketDevice device;
            try
            {
                device = PacketDeviceFactory.Open(o.Interface, filter, o.Capture, fanoutGroup, deviceOptions, Endpoints.Endpoints);
            }
            catch (PacketDeviceException e) when (t == 0 && fanoutGroup >= 0 && o.Threads == 0 && o.Capture == CaptureKind.Auto)
            {
                // The default asked for AF_PACKET fanout and did not get it: one thread, which may fall back to
                // libpcap as --capture auto always has. An explicit --threads N stays an error (below).
                fallbackReason = e.Message;
                threads = 1;
                fanoutGroup = -1;
                flowOptions = FlowOptionsFor(threads);
                t--; // open thread 0 again, alone
                continue;
            }
            catch (PacketDeviceException e)
            {
                throw new HostStartException($"cannot capture on '{o.Interface}': {e.Message}");
            }
            catch (DllNotFoundException e)
            {
                throw new HostStartException($"libpcap is not installed ({e.Message}); install libpcap0.8 (Debian) or use --capture afpacket");
            }
            SourceLimiter? limiter = limited ? new SourceLimiter(limitConfig) : null;
            var counters = new ProxyCounters();
            // net: the hybrid syncache, one per thread (--syncache 0: none).
            SynCache? synCache = o.SynCacheEntries > 0 ? new SynCache(SynCacheConfig.For(o.SynCacheEntries), counters, MonotonicClock.NowMs) : null;
            // ops: top sources by the limiter's prefixes when it is on (so its state can be shown beside them).
            var sketch = limited ? new SourceSketch(limitConfig.Ipv4PrefixLength, limitConfig.Ipv6PrefixLength) : new SourceSketch();
            var responder = new SynResponder(ResponderConfig, codec, Endpoints, counters, limiter: limiter, synCache: synCache, sketch: sketch,
                sampler: Sampler?.CreateRing(counters));
            var worker = new CaptureWorker(t, device, responder, flowOptions, listeners, flowLog, limiter, LiveFlows, faultLog: _log);
            worker.Faulted += OnFaulted;
            _workers.Add(worker);
        }
        if (fallbackReason is not null)
        {
            HostLog.OneThread(_log, $"no AF_PACKET fanout ({fallbackReason})");
        }

        // Allow/deny lists and anything else the settings carry, before the first batch.
        WorkerSettings initial = SettingsFor(o, codec, listeners, threads);
        foreach (CaptureWorker w in _workers)
        {
            w.Publish(initial);
        }

        // libpcap has no fanout: one thread, one core's worth of capacity (README, "Capacity on the libpcap path").
        string sharing = threads > 1 ? $", fanout by {deviceOptions.Fanout}"
            : _workers[0].Device is PcapDevice ? " (libpcap has no fanout: one core)" : "";
        Description = $"{_workers[0].Device.Backend}, {threads} thread{(threads == 1 ? "" : "s")}{sharing}, "
            + $"tx offload {(_workers[0].Device.OffloadMaxFrameBytes > 0 ? "on" : "off")}";
        SynCacheLog.Configured(_log, o.SynCacheEntries); // net: the syncache's size and hand-over rate
    }

    public void Start()
    {
        foreach (CaptureWorker w in _workers)
        {
            w.Start();
        }
    }

    public void BeginDrain()
    {
        foreach (CaptureWorker w in _workers)
        {
            w.BeginDrain();
        }
    }

    /// <summary>The established flows of every thread (their FlowsActive gauges).</summary>
    public long Outstanding
    {
        get
        {
            long n = 0;
            foreach (CaptureWorker w in _workers)
            {
                n += w.Counters.Read(Counter.FlowsActive);
            }
            return n;
        }
    }

    /// <summary>Stops every thread: each resets its remaining flows (RST to client and backend) and exits its loop.</summary>
    public void Stop()
    {
        foreach (CaptureWorker w in _workers)
        {
            w.Stop();
        }
    }

    public void Close()
    {
        foreach (CaptureWorker w in _workers)
        {
            w.Dispose();
        }
        _workers.Clear();
    }

    /// <summary>One fresh <see cref="ProxyCounters"/> per capture thread, in thread order (safe from any thread).</summary>
    public ProxyCounters[] Snapshot()
    {
        CaptureWorker[] workers = [.. _workers];
        var perThread = new ProxyCounters[workers.Length];
        for (int i = 0; i < perThread.Length; i++)
        {
            perThread[i] = new ProxyCounters();
            workers[i].Counters.AddTo(perThread[i]);
            DeviceStats device = workers[i].Device.GetStats();
            perThread[i][Counter.CaptureDropped] += device.KernelDropped;
            perThread[i][Counter.CaptureDroppedFlow] += device.FlowRingDropped;
            // The owner thread writes the pool's counters; read here like the device's, a few operations stale.
            RingBufferPool pool = workers[i].BufferPool;
            perThread[i][Counter.RingBuffersCreated] = pool.Created;
            perThread[i][Counter.RingBuffersInUse] = pool.Outstanding;
            // faults: the shared depot's cold rings once, with thread 0's.
            int shared = i == 0 ? pool.SharedColdPooled : 0;
            perThread[i][Counter.RingBuffersPooled] = pool.Pooled + shared;
            perThread[i][Counter.RingBuffersDecommitted] = pool.ColdPooled + shared;
        }
        return perThread;
    }

    /// <summary>
    /// A reload: the threads take the new listeners, limits, lists, timeouts and codec at their next batch. A
    /// listener that is gone takes no new connection but stays protected while the process runs, so its
    /// established flows finish. Host thread. Returns null, or why nothing changed.
    /// </summary>
    public string? Reconfigure(ProxyOptions next, SynCookieCodec codec)
    {
        if (_workers.Count == 0)
        {
            return "the capture is not open";
        }
        var accepting = next.Listeners.Select(l => l.Listen).ToHashSet();
        var retired = _o.Listeners.Select(l => l.Listen).Concat(_retired).Where(ep => !accepting.Contains(ep)).Distinct().ToList();
        var all = next.Listeners.Select(l => l.Listen).Concat(retired).ToList();
        var before = _o.Listeners.Select(l => l.Listen).Concat(_retired).ToHashSet();
        if (!before.SetEquals(all))
        {
            // New endpoints: the capture filter must let their frames up (removed ones stay in it, for their flows).
            string filter = BpfFilter.ForProtectedEndpoints(all);
            foreach (CaptureWorker w in _workers)
            {
                bool replaced;
                try
                {
                    replaced = w.Device.TryReplaceFilter(filter, all);
                }
                catch (PacketDeviceException e)
                {
                    return $"listeners: cannot change the capture filter: {e.Message}";
                }
                if (!replaced)
                {
                    return $"listeners: the {w.Device.Backend} capture cannot change its filter while running; restart to add a listener";
                }
            }
        }
        ListenerRuntime[] listeners = ListenersFor(next);
        WorkerSettings settings = SettingsFor(next, codec, listeners, _workers.Count, retired);
        try
        {
            settings.FlowOptions.Validate();
        }
        catch (ArgumentException e)
        {
            return $"buffer limits do not fit: {e.Message}";
        }
        foreach (CaptureWorker w in _workers)
        {
            w.Publish(settings);
        }
        _o = next;
        _retired.Clear();
        _retired.AddRange(retired);
        return null;
    }

    /// <summary>True when a source's limits are exact: one thread, or the threads share the traffic by source prefix.</summary>
    public bool LimitsExact => _workers.Count <= 1 || _fanout == FanoutMode.SourcePrefix;

    /// <summary>Endpoints a reload removed: protected still (their flows finish), no new connection.</summary>
    public IReadOnlyList<System.Net.IPEndPoint> Retired => _retired;

    /// <summary>True once every thread runs with the settings of the last <see cref="Reconfigure"/>.</summary>
    public bool SettingsApplied => _workers.All(w => w.SettingsVersion == _settingsVersion || w.Fault is not null);

    private WorkerSettings SettingsFor(ProxyOptions o, SynCookieCodec codec, ListenerRuntime[] listeners, int threads, IReadOnlyList<System.Net.IPEndPoint>? retired = null)
    {
        var endpoints = new ProtectedEndpoints();
        foreach (ListenerOptions l in o.Listeners)
        {
            endpoints.Add(l.Listen);
        }
        var runtimes = new List<ListenerRuntime>(listeners);
        foreach (System.Net.IPEndPoint ep in retired ?? [])
        {
            endpoints.Add(ep, accepting: false);
            runtimes.Add(listeners[0]); // never used: a retired endpoint validates no new cookie
        }
        SourceLimitConfig limits = LimitConfigFor(o);
        return new WorkerSettings(endpoints, [.. runtimes], codec,
            limits.SynLimitEnabled || limits.ConnectionLimitEnabled ? limits : null,
            o.AllowSource, o.DenySource, FlowOptions(o, listeners, threads, _coldRings), ++_settingsVersion);
    }

    private static ListenerRuntime[] ListenersFor(ProxyOptions o) =>
        [.. o.Listeners.Select(l => new ListenerRuntime(l.Backend, new BackendOptions
        {
            ConnectTimeout = TimeSpan.FromMilliseconds(o.ConnectTimeoutMs),
            ProxyProtocol = l.ProxyProtocol,
        }))];

    private static FlowTableOptions FlowOptions(ProxyOptions o, ListenerRuntime[] listeners, int threads, ColdRingDepot? coldRings) => new()
    {
        SharedColdRings = coldRings,
        MaxFlows = Math.Max(1, o.MaxFlows / threads),
        MaxBufferedBytesTotal = o.MaxBufferedBytes / threads,
        // The per-flow size is --flow-buffer-kb itself (FlowTableOptions.WorstCaseBytesPerFlow derives it);
        // the host caps only the total, --max-buffer-mb.
        MaxBufferedBytesPerFlow = long.MaxValue,
        Tcp = new TcpConfig
        {
            ReceiveBufferSize = o.FlowBufferBytes,
            SendBufferSize = o.FlowBufferBytes,
            LocalMss = o.Mss,
            IdleTimeoutMs = o.IdleTimeoutMs,
            FirstDataTimeoutMs = o.FirstDataTimeoutMs,
            CongestionControl = o.Congestion,
        },
        Backend = listeners[0].BackendOptions,
        // hostile: one source prefix holds at most a quarter of each thread's table (FlowTableOptions.MaxFlowsPerSource).
        SourcePrefixV4 = o.SourcePrefixV4,
        SourcePrefixV6 = o.SourcePrefixV6,
    };

    internal static SourceLimitConfig LimitConfigFor(ProxyOptions o) => new()
    {
        Ipv4PrefixLength = o.SourcePrefixV4,
        Ipv6PrefixLength = o.SourcePrefixV6,
        MaxConnectionsPerSource = o.MaxConnectionsPerSource,
        NewConnectionsPerSecond = o.ConnectionRatePerSource,
        SynsPerSecond = o.SynRatePerSource,
    };

    private void OnFaulted(CaptureWorker worker)
    {
        // Fail fast on our own bug (or a dead device): no drain, exit non-zero so systemd restarts us.
        HostLog.CaptureFaulted(_log, worker.Index, worker.Fault!);
        _lifetime.RequestStop($"capture thread {worker.Index} failed", ExitCodes.RuntimeError, immediate: true);
    }

    private static FanoutSteering Steering(FanoutMode mode, int threads, ProxyOptions o)
    {
        if (mode == FanoutMode.FlowHash)
        {
            return FanoutSteering.FlowHash;
        }
        // A secret seed, like the kernel's own flow-hash key: without it a spoofer could aim at one thread.
        Span<byte> seed = stackalloc byte[4];
        RandomNumberGenerator.Fill(seed);
        return FanoutSteering.BySourcePrefix(threads, o.SourcePrefixV4, o.SourcePrefixV6, BinaryPrimitives.ReadUInt32LittleEndian(seed));
    }
}
