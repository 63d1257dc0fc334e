using CookieProxy.Host.Capture;
using CookieProxy.Host.Cli;
using CookieProxy.Host.Control;
using CookieProxy.Host.Config;
using CookieProxy.Host.Cookies;
using CookieProxy.Host.Diagnostics;
using CookieProxy.Host.Diagnostics.Logging;
using CookieProxy.Host.Os;
using CookieProxy.Host.Services;
using Microsoft.Extensions.Logging;

namespace CookieProxy.Host;

/// <summary>Parses the command line and, for `run`, wires the services together in their start order. Nothing else.</summary>
internal static class Program
{
    private static int Main(string[] args)
    {
        // Backend sockets are read and written by the capture thread itself; the runtime's socket engine only
        // completes connects, the readability fallback and the send loop. Inline completions handle its epoll
        // events on the engine thread instead of waking a thread-pool worker for every readiness edge of
        // every backend socket (each data arrival), which cost a futex wake-up and a context switch apiece.
        // Read once by the engine's static initialiser (System.Net.Sockets, SocketAsyncEngine.Unix.cs), so it
        // must be set before the first socket; an explicit setting by the operator wins.
        if (Environment.GetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS") is null)
        {
            Environment.SetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS", "1");
        }
        try
        {
            var root = CommandTree.Build(new CommandHandlers { Run = RunProxy, Control = new SocketControlClient() });
            return CommandTree.Invoke(root, args, Console.Out, Console.Error);
        }
        catch (Exception e)
        {
            // A bug outside `run` (which has its own handler): the stack, and exit 1, not the runtime's 134.
            Console.Error.WriteLine($"cookieproxy: bug: {e}");
            return ExitCodes.RuntimeError;
        }
    }

    /// <summary>`cookieproxy run`: the services in start order (they stop in reverse).</summary>
    private static int RunProxy(ProxyOptions o, OptionsLoader reload)
    {
        using var logs = new ConsoleLogProvider(Console.Error, ConsoleLogProvider.DetectFormat(), o.Verbose ? LogLevel.Debug : LogLevel.Information);
        ILogger Log(string category) => logs.CreateLogger(category);
        using var lifetime = new HostLifetime(Log("CookieProxy.Host.Reload"));
        using var systemd = new SystemdNotifier();

        var locks = new InstanceLock(o.RunDirectory, o.Interface, o.Listeners.Select(l => l.Listen));
        var keys = new KeyringService(o.KeyFile, o.SlotSeconds, Log("CookieProxy.Host.Keys"));
        PcapSamplerService? sampler = o.SamplePcap is string pcap
            ? new PcapSamplerService(new PcapSampleOptions(pcap, o.SampleEvery, (long)o.SampleMaxMegabytes << 20), o.Interface, Log("CookieProxy.Host.Sampling"))
            : null;
        var capture = new CaptureService(o, () => keys.Codec, lifetime, Log("CookieProxy.Host.Capture")) { Sampler = sampler?.Sampler };
        var counters = new CounterSources(capture.Snapshot);
        var services = new List<IHostService> { locks, keys };
        if (sampler is not null)
        {
            services.Add(sampler);    // before the capture: its file exists before the threads take their rings
        }
        services.Add(capture);
        PortHidingService? hider = null;
        if (o.HidePort)
        {
            hider = new PortHidingService(o.Interface, o.Listeners);
            services.Add(hider);
        }
        // The SYN path in the kernel (--xdp-syn, auto by default; off: user space only). Its live-flow map goes to
        // every capture thread.
        var xdp = new XdpSynService(o, capture, () => keys.Codec, Log("CookieProxy.Host.Xdp"));
        capture.LiveFlows = xdp.LiveFlows;
        counters.Add(xdp.AddCounters);
        services.Add(xdp);
        if (o.SynCacheEntries > 0 && o.XdpSyn != XdpSynMode.Off)
        {
            // net: the syncache behind the XDP SYN path: the program passes SYNs up while they are few and answers
            // them itself under a flood (Capture/SynCacheXdpService.cs).
            var synCacheXdp = new SynCacheXdpService(CookieProxy.Responder.SynCacheConfig.For(o.SynCacheEntries), () => capture.Workers.Count,
                counters.Snapshot, pass => xdp.TrySetPassSyns(pass), Log("CookieProxy.Host.SynCache"));
            counters.Add(synCacheXdp.AddCounters);
            services.Add(synCacheXdp);
        }
        services.Add(new StatsService(counters, Console.Out, o.StatsIntervalSeconds, o.StatsFile, Log("CookieProxy.Host.Stats")));
        var view = new ProxyView(counters.Snapshot, capture.ThreadViews,
            () => [.. capture.Listeners.Select(l => new ListenerInfo(l.Listen, l.Backend.ToString()))]);
        if (o.ControlSocketPath is string control)
        {
            services.Add(new ControlService(control, o.ControlSocket is not null, view, lifetime, Log("CookieProxy.Host.Control")));
        }
        if (o.MetricsListen is System.Net.IPEndPoint metrics)
        {
            services.Add(new MetricsService(metrics, view, Log("CookieProxy.Host.Metrics")));
        }
        var reloads = new ReloadService(o, reload, keys, capture, locks, hider, xdp, lifetime, systemd, Log("CookieProxy.Host.Reload"));
        services.Add(reloads);
        ILogger hostLog = Log("CookieProxy.Host");
        services.Add(new DelegateService("start-up line", start: () =>
        {
            HostLog.CaptureStarted(hostLog, o.Interface, capture.Description, hider is null ? "" : $", port hidden via {hider.Method}",
                o.SlotSeconds, keys.Description);
            foreach (ListenerOptions l in o.Listeners)
            {
                HostLog.Protecting(hostLog, l.Listen.ToString(), l.Backend.ToString(),
                    l.ProxyProtocol == CookieProxy.ProxyProtocol.ProxyProtocolVersion.None ? "" : $" (PROXY {l.ProxyProtocol})");
            }
        }));

        var host = new ProxyHost(services, lifetime, systemd, hostLog)
        {
            Duration = TimeSpan.FromSeconds(o.DurationSeconds),
            DrainTimeout = () => TimeSpan.FromSeconds(reloads.Current.DrainTimeoutSeconds),
            ReadyStatus = () => $"protecting {reloads.Current.Listeners.Count} endpoint(s) on {o.Interface}",
            Flush = logs.Dispose,
        };
        return host.Run();
    }
}
