using System.Buffers.Binary;
using System.Net;
using System.Runtime.InteropServices;
using System.Security.Cryptography;
using CookieProxy.Cookies;
using CookieProxy.Crypto;
using CookieProxy.Diagnostics;
using CookieProxy.Host.Backend;
using CookieProxy.Host.Capture;
using CookieProxy.Host.Cli;
using CookieProxy.Host.Diagnostics;
using CookieProxy.Host.Flows;
using CookieProxy.Host.Os;
using CookieProxy.Io;
using CookieProxy.Limits;
using CookieProxy.Platform;
using CookieProxy.Responder;
using CookieProxy.Tcp;

namespace CookieProxy.Host;

/// <summary>Wires the pieces of `cookieproxy run` together and owns their lifetime.</summary>
public static class ProxyHost
{
    public const int ExitOk = 0;
    public const int ExitRuntimeError = 1;
    public const int ExitUsage = 2;

    public static int Run(ProxyOptions o, TextWriter log)
    {
        // 1. The cookie key: a shared key file, or fresh CSPRNG bytes (cookies then die with the process).
        SipKey key;
        if (o.KeyFile is not null)
        {
            string text;
            try
            {
                text = File.ReadAllText(o.KeyFile);
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                log.WriteLine($"cookieproxy: --key-file {o.KeyFile}: {e.Message}");
                return ExitUsage;
            }
            if (!CookieKey.TryParse(text, out key, out string error))
            {
                log.WriteLine($"cookieproxy: --key-file {o.KeyFile}: {error} (create one with `cookieproxy genkey FILE`)");
                return ExitUsage;
            }
        }
        else
        {
            key = CookieKey.Generate();
        }
        var codec = new SynCookieCodec(key, o.SlotSeconds);

        var endpoints = new ProtectedEndpoints();
        var listeners = new ListenerRuntime[o.Listeners.Count];
        for (int i = 0; i < o.Listeners.Count; i++)
        {
            ListenerOptions l = o.Listeners[i];
            endpoints.Add(l.Listen);
            listeners[i] = new ListenerRuntime(l.Backend, new BackendOptions
            {
                ConnectTimeout = TimeSpan.FromMilliseconds(o.ConnectTimeoutMs),
                ProxyProtocol = l.ProxyProtocol,
            });
        }

        var tcp = new TcpConfig
        {
            ReceiveBufferSize = o.FlowBufferBytes,
            SendBufferSize = o.FlowBufferBytes,
            LocalMss = o.Mss,
            IdleTimeoutMs = o.IdleTimeoutMs,
            FirstDataTimeoutMs = o.FirstDataTimeoutMs,
        };
        var responderConfig = new ResponderConfig { Mss = o.Mss, ReceiveBufferSize = o.FlowBufferBytes, RstInvalid = o.RstInvalid };
        int threads = o.Threads > 0 ? o.Threads : DefaultThreads(o.Capture);
        if (o.Threads == 0 && threads == 1 && Environment.ProcessorCount > 1)
        {
            log.WriteLine(o.Capture == CaptureKind.AfXdp
                ? "cookieproxy: AF_XDP capture here uses one socket on queue 0: one capture thread"
                : "cookieproxy: libpcap capture cannot share the frames between threads (no fanout): one capture thread");
        }
        FlowTableOptions FlowOptionsFor(int threadCount) => new()
        {
            MaxFlows = Math.Max(1, o.MaxFlows / threadCount),
            MaxBufferedBytesTotal = o.MaxBufferedBytes / threadCount,
            // The per-flow size is --flow-buffer-kb itself (FlowTableOptions.WorstCaseBytesPerFlow derives it);
            // the host caps only the total, --max-buffer-mb.
            MaxBufferedBytesPerFlow = long.MaxValue,
            Tcp = tcp,
            Backend = listeners[0].BackendOptions,
        };
        FlowTableOptions flowOptions = FlowOptionsFor(threads);
        try
        {
            flowOptions.Validate();
        }
        catch (ArgumentException e)
        {
            log.WriteLine($"cookieproxy: buffer limits do not fit (--max-buffer-mb {o.MaxBufferedBytes >> 20} over {threads} thread(s), "
                + $"--flow-buffer-kb {o.FlowBufferBytes >> 10}): {e.Message}");
            return ExitUsage;
        }

        var limitConfig = new SourceLimitConfig
        {
            Ipv4PrefixLength = o.SourcePrefixV4,
            Ipv6PrefixLength = o.SourcePrefixV6,
            MaxConnectionsPerSource = o.MaxConnectionsPerSource,
            NewConnectionsPerSecond = o.ConnectionRatePerSource,
            SynsPerSecond = o.SynRatePerSource,
        };
        try
        {
            limitConfig.Validate();
        }
        catch (ArgumentOutOfRangeException e)
        {
            log.WriteLine($"cookieproxy: per-source limits: {e.Message}");
            return ExitUsage;
        }

        // 2. Capture devices: one per thread, PACKET_FANOUT-grouped when there are several. Each thread has its
        // own limiter (shared-nothing), so a source's limits are exact only if all its traffic reaches one thread:
        // steering by source prefix (the limiter's own prefix lengths) does that; the flow hash spreads a
        // source's flows over the threads and makes its limits per thread.
        bool limited = limitConfig.SynLimitEnabled || limitConfig.ConnectionLimitEnabled;
        FanoutMode fanoutMode = o.Fanout ?? (limited ? FanoutMode.SourcePrefix : FanoutMode.FlowHash);
        if (threads > 1 && limited && fanoutMode == FanoutMode.FlowHash)
        {
            log.WriteLine($"cookieproxy: --fanout flow: the per-source limits apply per capture thread (up to {threads}x per source)");
        }
        string filter = BpfFilter.ForProtectedEndpoints(endpoints.Endpoints);
        var workers = new List<CaptureWorker>();
        PortHider? hider = null;
        StatsReporter? stats = null;
        XdpSynResponder? xdpSyn = null;
        Timer? slotTimer = null;
        using var stopped = new ManualResetEventSlim();
        int exit = ExitOk;
        try
        {
            int fanoutGroup = threads > 1 ? Environment.ProcessId & 0xFFFF : -1;
            string? fallbackReason = null;
            var deviceOptions = new PacketDeviceOptions
            {
                Fanout = Steering(fanoutMode, threads, o),
                SegmentationOffload = o.TxOffload,
                RingBlockCount = PacketDeviceOptions.RingBlocksFor(o.RingMegabytes),
            };
            for (int t = 0; t < threads; t++)
            {
                IPacketDevice device;
                try
                {
                    device = PacketDeviceFactory.Open(o.Interface, filter, o.Capture, fanoutGroup, deviceOptions, endpoints.Endpoints);
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
                    log.WriteLine($"cookieproxy: cannot capture on '{o.Interface}': {e.Message}");
                    return ExitRuntimeError;
                }
                catch (DllNotFoundException e)
                {
                    log.WriteLine($"cookieproxy: libpcap is not installed ({e.Message}); install libpcap0.8 (Debian) or use --capture afpacket");
                    return ExitRuntimeError;
                }
                SourceLimiter? limiter = limited ? new SourceLimiter(limitConfig) : null;
                var responder = new SynResponder(responderConfig, codec, endpoints, new ProxyCounters(), limiter: limiter);
                var worker = new CaptureWorker(t, device, responder, flowOptions, listeners, o.Verbose, limiter);
                worker.Faulted += _ => stopped.Set();
                workers.Add(worker);
            }

            if (fallbackReason is not null)
            {
                log.WriteLine($"cookieproxy: no AF_PACKET fanout ({fallbackReason}): one capture thread");
            }

            // 3. Hide the protected ports from the host's own stack. (With --capture afxdp the XDP program already
            // keeps the protected endpoints' TCP frames from the stack; the rule stays as a second line, e.g. for
            // frames that arrive while the program is being attached or detached.)
            if (o.HidePort)
            {
                try
                {
                    hider = PortHider.Install(o.Interface, o.Listeners);
                }
                catch (InvalidOperationException e)
                {
                    log.WriteLine($"cookieproxy: {e.Message}");
                    return ExitRuntimeError;
                }
            }

            string sharing = threads == 1 ? "" : $", fanout by {deviceOptions.Fanout}";
            log.WriteLine($"cookieproxy: capturing on {o.Interface} ({workers[0].Device.Backend}, {threads} thread{(threads == 1 ? "" : "s")}{sharing}, "
                + $"tx offload {(workers[0].Device.OffloadMaxFrameBytes > 0 ? "on" : "off")})"
                + $"{(hider is null ? "" : $", port hidden via {hider.Method}")}, cookie slot {o.SlotSeconds}s, key {(o.KeyFile is null ? "random" : "from " + o.KeyFile)}");
            foreach (ListenerOptions l in o.Listeners)
            {
                log.WriteLine($"cookieproxy: protecting {l.Listen} -> {l.Backend}{(l.ProxyProtocol == ProxyProtocol.ProxyProtocolVersion.None ? "" : $" (PROXY {l.ProxyProtocol})")}");
            }

            ProxyCounters[] Snapshot()
            {
                var perThread = new ProxyCounters[workers.Count];
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
                    perThread[i][Counter.RingBuffersPooled] = pool.Pooled;
                }
                if (xdpSyn is not null && OperatingSystem.IsLinux())
                {
                    // One program for the interface, not per thread: its counters ride on thread 0's.
                    XdpSynCounters x = xdpSyn.ReadCounters();
                    perThread[0][Counter.XdpSynAckSent] = x.SynAckSent;
                    perThread[0][Counter.XdpSynPassed] = x.SynPassed;
                    perThread[0][Counter.XdpInternalErrors] = x.InternalErrors;
                    // syn_received and synack_sent count every SYN, wherever it was answered.
                    perThread[0][Counter.SynReceived] += x.SynAckSent;
                    perThread[0][Counter.SynAckSent] += x.SynAckSent;
                }
                return perThread;
            }
            // 4. Optionally the SYN path in the kernel. The capture rings are open already, so the ACKs to its
            // SYN+ACKs wait there until the threads start.
            if (o.XdpSyn is XdpAttachMode xdpMode)
            {
                if (!OperatingSystem.IsLinux())
                {
                    log.WriteLine("cookieproxy: --xdp-syn needs Linux (XDP)");
                    return ExitUsage;
                }
                try
                {
                    xdpSyn = XdpSynResponder.Load(o.Interface, XdpSynSettings.For(responderConfig, endpoints.Endpoints),
                        key.K0, key.K1, codec.SlotAt(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
                    xdpSyn.Attach(xdpMode);
                }
                catch (PacketDeviceException e)
                {
                    log.WriteLine($"cookieproxy: --xdp-syn: {e.Message}");
                    return ExitRuntimeError;
                }
                XdpSynResponder responder = xdpSyn;
                // The program's slot follows the clock within a second; a cookie then lives at least
                // SlotSeconds - 1 (the validator accepts the slot before the current one).
                slotTimer = new Timer(_ =>
                {
                    try
                    {
                        if (OperatingSystem.IsLinux())
                        {
                            responder.SetSlot(codec.SlotAt(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
                        }
                    }
                    catch (PacketDeviceException e)
                    {
                        log.WriteLine($"cookieproxy: --xdp-syn: {e.Message}");
                    }
                }, null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
                log.WriteLine($"cookieproxy: SYNs answered in XDP ({xdpMode.ToString().ToLowerInvariant()} mode, {xdpSyn.InstructionCount} instructions) on {o.Interface}");
            }

            stats = new StatsReporter(Snapshot, log, o.StatsIntervalSeconds, o.StatsFile);
            foreach (CaptureWorker w in workers)
            {
                w.Start();
            }


            using PosixSignalRegistration sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, c => { c.Cancel = true; stopped.Set(); });
            using PosixSignalRegistration sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, c => { c.Cancel = true; stopped.Set(); });
            // SIGHUP's default action ends the process without unwinding, which left the drop rule (and an XDP
            // program) behind and the port blackholed: an ssh hang-up or `systemctl reload` must never do that.
            using PosixSignalRegistration sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c =>
            {
                c.Cancel = true;
                log.WriteLine("cookieproxy: SIGHUP: nothing to reload without a config file; still running");
            });
            if (o.DurationSeconds > 0)
            {
                stopped.Wait(TimeSpan.FromSeconds(o.DurationSeconds));
            }
            else
            {
                stopped.Wait();
            }

            foreach (CaptureWorker w in workers)
            {
                w.Stop();
                if (w.Fault is not null)
                {
                    log.WriteLine($"cookieproxy: capture thread {w.Index} failed: {w.Fault}");
                    exit = ExitRuntimeError;
                }
            }
        }
        finally
        {
            if (slotTimer is not null)
            {
                using var timerDone = new ManualResetEvent(false);
                if (slotTimer.Dispose(timerDone))
                {
                    timerDone.WaitOne(TimeSpan.FromSeconds(2)); // a running slot update finishes before the maps close
                }
            }
            // The final counters line reads the XDP program's counters: before the program goes.
            stats?.Dispose();
            // Detached before the capture stops: from here SYNs reach the host stack's drop rule (or it).
            ((IDisposable?)xdpSyn)?.Dispose();
            foreach (CaptureWorker w in workers)
            {
                w.Dispose();
            }
            hider?.Dispose();
        }
        return exit;
    }

    /// <summary>Default for --threads 0: one per core where AF_PACKET fanout can share the frames, one with libpcap
    /// or AF_XDP (one socket on queue 0).</summary>
    /// <remarks>
    /// Capped: every thread costs its own receive ring (--ring-mb, 32 MiB) and gets an equal share of --max-flows and
    /// --max-buffer-mb, so the more threads, the less of them one heavy source (steered to one thread) can
    /// use. More can still be asked for explicitly.
    /// </remarks>
    public static int DefaultThreads(CaptureKind capture) =>
        capture is CaptureKind.Pcap or CaptureKind.AfXdp || !OperatingSystem.IsLinux() ? 1 : Math.Clamp(Environment.ProcessorCount, 1, MaxDefaultThreads);

    public const int MaxDefaultThreads = 8;

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
