using System.Net;
using System.Runtime.Versioning;
using CookieProxy.Cookies;
using CookieProxy.Crypto;
using CookieProxy.Diagnostics;
using CookieProxy.Host.Diagnostics.Logging;
using CookieProxy.Io;
using CookieProxy.Limits;
using CookieProxy.Platform;
using CookieProxy.Responder;
using CookieProxy.Wire;
using Microsoft.Extensions.Logging;

namespace CookieProxy.Host.Capture;

/// <summary>--xdp-syn: where SYNs are answered.</summary>
public enum XdpSynMode
{
    /// <summary>Native XDP where the driver's XDP_TX really sends, else generic, else user space (Linux default).</summary>
    Auto,

    /// <summary>Driver XDP, or an error.</summary>
    Native,

    /// <summary>Generic (SKB) XDP, or an error.</summary>
    Generic,

    /// <summary>User space only (capture ring → SynResponder).</summary>
    Off,
}

/// <summary>
/// The SYN path in the kernel, seen from the host (the logic of <see cref="XdpSynService"/>): decides whether
/// and how the XDP SYN responder runs (<see cref="XdpSynMode"/>), loads it with the responder's own values,
/// attaches it with the fallbacks of <c>auto</c>, keeps its slot and key current, re-checks a native veth
/// attachment, hands the capture threads the live-flow map, adds its counters to the stats and detaches it
/// on dispose. Every failure of <c>auto</c> ends in the user-space path with the reason in the start-up line;
/// an explicit <c>native</c>/<c>generic</c> that cannot be had is an error.
/// </summary>
internal sealed class XdpSynPath : IDisposable
{
    private readonly XdpSynMode _mode;
    private readonly string _interface;
    private readonly ILogger _log;
    private readonly Func<SynCookieCodec> _codec;
    private readonly LiveFlowForwarder _liveFlows = new();
    private readonly Lock _lock = new();
    private object? _responder;           // XdpSynResponder (typed object: the type is Linux-only)
    private Timer? _timer;
    private XdpDeviceInfo? _device;

    private XdpSynPath(XdpSynMode mode, string interfaceName, ILogger log, Func<SynCookieCodec> codec)
    {
        _mode = mode;
        _interface = interfaceName;
        _log = log;
        _codec = codec;
    }

    /// <summary>The live-flow map for the capture threads (a no-op while the program is not loaded); null
    /// when SYNs are answered in user space only.</summary>
    public ILiveFlowRegistry? LiveFlows => _mode == XdpSynMode.Off || !OperatingSystem.IsLinux() ? null : _liveFlows;

    /// <summary>The mode the program runs in; null: SYNs are answered in user space.</summary>
    public XdpAttachMode? ActiveMode { get; private set; }

    /// <summary>Before the capture threads start: nothing is loaded yet (see <see cref="Start"/>).</summary>
    public static XdpSynPath Create(XdpSynMode mode, string interfaceName, ILogger log, Func<SynCookieCodec> codec) =>
        new(mode, interfaceName, log, codec);

    /// <summary>
    /// Loads and attaches the program (after the capture rings are open, so ACKs to its SYN+ACKs wait there)
    /// and logs the start-up line. Null when SYNs are answered somewhere (<c>auto</c> always gets there, falling
    /// back to user space); else why an explicit mode cannot be had.
    /// </summary>
    public string? Start(IPacketDevice capture, IReadOnlyList<IPEndPoint> endpoints, ResponderConfig responder,
        SourceLimitConfig limits, int liveFlowCapacity)
    {
        if (_mode == XdpSynMode.Off)
        {
            HostLog.XdpSynUserSpace(_log, "--xdp-syn off");
            return null;
        }
        string? notHere = !OperatingSystem.IsLinux() ? "XDP needs Linux"
            : capture is AfXdpDevice ? "--capture afxdp holds the interface's XDP hook"
            : capture is PcapDevice ? "libpcap capture (the XDP path goes with AF_PACKET)"
            : null;
        if (notHere is not null)
        {
            return Refused(notHere);
        }
        return OperatingSystem.IsLinux() ? StartLinux(endpoints, responder, limits, liveFlowCapacity) : null;
    }

    [SupportedOSPlatform("linux")]
    private string? StartLinux(IReadOnlyList<IPEndPoint> endpoints, ResponderConfig responder, SourceLimitConfig limits, int liveFlowCapacity)
    {
        XdpSynResponder xdp;
        SynCookieCodec codec = _codec();
        try
        {
            xdp = XdpSynResponder.Load(_interface, Settings(endpoints, responder, limits, liveFlowCapacity),
                Key(codec.Key), codec.SlotAt(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
        }
        catch (PacketDeviceException e)
        {
            return Refused($"the XDP program could not be loaded: {e.Message}");
        }

        XdpModeChoice choice;
        if (_mode == XdpSynMode.Auto)
        {
            XdpDeviceInfo device = XdpDeviceInfo.Of(_interface);
            _device = device;
            choice = device.ChooseAuto();
        }
        else
        {
            choice = new XdpModeChoice(_mode == XdpSynMode.Native ? XdpAttachMode.Native : XdpAttachMode.Generic, $"--xdp-syn {Name(_mode)}");
        }

        string? removed;
        try
        {
            removed = xdp.Attach(choice.Mode);
        }
        catch (PacketDeviceException first) when (_mode == XdpSynMode.Auto && choice.Mode == XdpAttachMode.Native)
        {
            choice = new XdpModeChoice(XdpAttachMode.Generic, $"native XDP failed ({first.Message})");
            try
            {
                removed = xdp.Attach(XdpAttachMode.Generic);
            }
            catch (PacketDeviceException e)
            {
                xdp.Dispose();
                return Refused(e.Message);
            }
        }
        catch (PacketDeviceException e)
        {
            xdp.Dispose();
            return Refused(e.Message);
        }

        if (removed is not null)
        {
            HostLog.XdpStaleRemoved(_log, _interface, removed);
        }
        lock (_lock)
        {
            _responder = xdp;
            _liveFlows.Target = xdp.LiveFlows;
            ActiveMode = choice.Mode;
        }
        // The program's slot follows the clock within a second; a cookie then lives at least SlotSeconds - 1
        // (the validator accepts the slot before the current one).
        _timer = new Timer(_ => Tick(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
        string budget = limits.SynLimitEnabled ? $", --syn-rate-per-source {limits.SynsPerSecond}/s per prefix per CPU" : "";
        HostLog.XdpSynAttached(_log, _interface, Name(choice.Mode), choice.Reason, budget);
        return null;
    }

    /// <summary>auto: user space, with the reason in the start-up line (null); an explicit mode: the error.</summary>
    private string? Refused(string reason)
    {
        if (_mode == XdpSynMode.Auto)
        {
            HostLog.XdpSynUserSpace(_log, $"--xdp-syn auto: {reason}");
            return null;
        }
        return $"--xdp-syn {Name(_mode)}: {reason}";
    }

    /// <summary>The host's values, handed over as plain numbers: ResponderConfig's options, CookieTables'
    /// tables, SynCookieCodec's layout, SourceLimitConfig's SYN bucket.</summary>
    internal static XdpSynSettings Settings(IReadOnlyList<IPEndPoint> endpoints, ResponderConfig responder, SourceLimitConfig limits, int liveFlowCapacity) => new()
    {
        Endpoints = endpoints,
        MssV4 = responder.Mss,
        MssV6 = responder.MssV6,
        Window = responder.SynAckWindow,
        WindowScale = (byte)responder.WindowScale,
        MssTable = CookieTables.Mss.ToArray(),
        WindowScaleTable = CookieTables.WindowScale.ToArray(),
        Layout = new XdpCookieLayout(SynCookieCodec.MacBits, SynCookieCodec.OptionShiftWsi, SynCookieCodec.OptionShiftMsi,
            SynCookieCodec.OptionShiftSack, (int)SynCookieCodec.TsEcnBit, SynCookieCodec.TsWsNone),
        Budget = limits.SynLimitEnabled
            ? new XdpSynBudget(limits.SynIntervalMicros, limits.SynToleranceMicros, limits.Ipv4PrefixLength, limits.Ipv6PrefixLength, limits.TableSize)
            : null,
        LiveFlowCapacity = liveFlowCapacity,
    };

    internal static XdpSynKey Key(in SipKey key) => new(key.K0, key.K1);

    /// <summary>Key rotation (reload): the program signs with <paramref name="codec"/>'s key from now on. Null when
    /// done (or when no program runs), else why not.</summary>
    public string? UpdateKey(SynCookieCodec codec)
    {
        if (OperatingSystem.IsLinux() && Responder is XdpSynResponder xdp)
        {
            try
            {
                xdp.UpdateKey(Key(codec.Key), codec.SlotAt(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
            }
            catch (PacketDeviceException e)
            {
                return e.Message;
            }
        }
        return null;
    }

    /// <summary>Listeners added or removed (reload): the program's endpoint map follows. Null when done (or when no
    /// program runs), else why not.</summary>
    public string? UpdateEndpoints(IReadOnlyList<IPEndPoint> endpoints)
    {
        if (OperatingSystem.IsLinux() && Responder is XdpSynResponder xdp)
        {
            try
            {
                xdp.UpdateEndpoints(endpoints);
            }
            catch (Exception e) when (e is PacketDeviceException or ArgumentException)
            {
                return e.Message;
            }
        }
        return null;
    }

    /// <summary>While true the program passes every SYN up (see <see cref="XdpSynResponder.SetPassSyns"/>).</summary>
    public void SetPassSyns(bool pass)
    {
        if (OperatingSystem.IsLinux() && Responder is XdpSynResponder xdp)
        {
            xdp.SetPassSyns(pass);
        }
    }

    private object? Responder
    {
        get
        {
            lock (_lock)
            {
                return _responder;
            }
        }
    }

    /// <summary>Once a second: the slot, and whether a native attachment on a veth still reaches the peer
    /// (its XDP program can go at any time; then XDP_TX frames would not arrive): if not, generic.</summary>
    private void Tick()
    {
        if (!OperatingSystem.IsLinux() || Responder is not XdpSynResponder xdp)
        {
            return;
        }
        try
        {
            xdp.SetSlot(_codec().SlotAt(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
            if (ActiveMode == XdpAttachMode.Native && _device is { IsVeth: true }
                && XdpDeviceInfo.Of(_interface).NativeTxDelivers == false)
            {
                lock (_lock)
                {
                    xdp.Detach();
                    xdp.Attach(XdpAttachMode.Generic);
                    ActiveMode = XdpAttachMode.Generic;
                }
                HostLog.XdpSynMovedToGeneric(_log, _interface);
            }
        }
        catch (PacketDeviceException e)
        {
            HostLog.XdpSynUpdateFailed(_log, e.Message);
        }
    }

    /// <summary>The program's counters, on thread 0's share (one program for the interface).</summary>
    public void AddCounters(ProxyCounters counters)
    {
        if (!OperatingSystem.IsLinux() || Responder is not XdpSynResponder xdp)
        {
            return;
        }
        XdpSynCounters x;
        try
        {
            x = xdp.ReadCounters();
        }
        catch (PacketDeviceException)
        {
            return;
        }
        counters[Counter.XdpSynAckSent] = x.SynAckSent;
        counters[Counter.XdpSynPassed] = x.SynPassed;
        counters[Counter.XdpSynLiveFlow] = x.SynLiveFlow;
        counters[Counter.XdpSynOverBudget] = x.SynOverBudget;
        counters[Counter.XdpInternalErrors] = x.InternalErrors;
        counters[Counter.XdpLiveFlowUpdateFailed] = x.LiveFlowUpdateFailures;
        // syn_received and synack_sent count every SYN, wherever it was answered (or refused).
        counters[Counter.SynReceived] += x.SynAckSent + x.SynOverBudget;
        counters[Counter.SynAckSent] += x.SynAckSent;
    }

    /// <summary>Drain: the program goes off the hook (its counters stay readable), so SYNs reach the draining
    /// capture threads, which leave them unanswered.</summary>
    public void Detach()
    {
        StopTimer();
        lock (_lock)
        {
            if (OperatingSystem.IsLinux() && _responder is XdpSynResponder xdp)
            {
                xdp.Detach();
                ActiveMode = null;
            }
        }
    }

    private void StopTimer()
    {
        Timer? timer = Interlocked.Exchange(ref _timer, null);
        if (timer is not null)
        {
            using var done = new ManualResetEvent(false);
            if (timer.Dispose(done))
            {
                done.WaitOne(TimeSpan.FromSeconds(2));     // a running tick finishes before the maps change
            }
        }
    }

    private static string Name(XdpSynMode mode) => mode.ToString().ToLowerInvariant();

    private static string Name(XdpAttachMode mode) => mode == XdpAttachMode.Native ? "native" : "generic";

    public void Dispose()
    {
        StopTimer();
        object? responder;
        lock (_lock)
        {
            responder = _responder;
            _responder = null;
            _liveFlows.Target = null;
            ActiveMode = null;
        }
        ((IDisposable?)responder)?.Dispose();
    }

    /// <summary>What the capture threads hold: the program's live-flow map once it is loaded, nothing before.</summary>
    private sealed class LiveFlowForwarder : ILiveFlowRegistry
    {
        private volatile ILiveFlowRegistry? _target;

        public ILiveFlowRegistry? Target
        {
            get => _target;
            set => _target = value;
        }

        public long Failures => _target?.Failures ?? 0;

        public void Add(in FlowKey flow) => _target?.Add(flow);

        public void Remove(in FlowKey flow) => _target?.Remove(flow);
    }
}
