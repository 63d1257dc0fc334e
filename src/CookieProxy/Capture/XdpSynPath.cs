using System.Net;
using System.Runtime.Versioning;
using CookieProxy.Cookies;
using CookieProxy.Crypto;
using CookieProxy.Diagnostics;
using CookieProxy.Io;
using CookieProxy.Limits;
using CookieProxy.Platform;
using CookieProxy.Responder;
using CookieProxy.Wire;

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
/// The SYN path in the kernel, seen from the host: decides whether and how the XDP SYN responder runs
/// (<see cref="XdpSynMode"/>), loads it with the responder's own values, attaches it with the fallbacks of
/// <c>auto</c>, keeps its slot and key current, re-checks a native veth attachment, hands the capture
/// threads the live-flow map, adds its counters to the stats and detaches it on dispose. Every failure of
/// <c>auto</c> ends in the user-space path with the reason in the start-up line; an explicit
/// <c>native</c>/<c>generic</c> that cannot be had is an error.
/// </summary>
internal sealed class XdpSynPath : IDisposable
{
    private readonly XdpSynMode _mode;
    private readonly string _interface;
    private readonly TextWriter _log;
    private readonly SynCookieCodec _codec;
    private readonly LiveFlowForwarder _liveFlows = new();
    private readonly Lock _lock = new();
    private object? _responder;           // XdpSynResponder (typed object: the type is Linux-only)
    private Timer? _timer;
    private XdpDeviceInfo? _device;

    private XdpSynPath(XdpSynMode mode, string interfaceName, TextWriter log, SynCookieCodec codec)
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
    public static XdpSynPath Create(XdpSynMode mode, string interfaceName, TextWriter log, SynCookieCodec codec) =>
        new(mode, interfaceName, log, codec);

    /// <summary>
    /// Loads and attaches the program (after the capture rings are open, so ACKs to its SYN+ACKs wait there)
    /// and writes the start-up line. False with a message already written when an explicit mode cannot be
    /// had; <c>auto</c> always returns true (falling back to user space).
    /// </summary>
    public bool Start(IPacketDevice capture, IReadOnlyList<IPEndPoint> endpoints, ResponderConfig responder,
        SourceLimitConfig limits, int liveFlowCapacity)
    {
        if (_mode == XdpSynMode.Off)
        {
            _log.WriteLine("cookieproxy: SYNs answered in user space (--xdp-syn off)");
            return true;
        }
        string? notHere = !OperatingSystem.IsLinux() ? "XDP needs Linux"
            : capture is AfXdpDevice ? "--capture afxdp holds the interface's XDP hook"
            : capture is PcapDevice ? "libpcap capture (the XDP path goes with AF_PACKET)"
            : null;
        if (notHere is not null)
        {
            if (_mode != XdpSynMode.Auto)
            {
                _log.WriteLine($"cookieproxy: --xdp-syn {Name(_mode)}: {notHere}");
                return false;
            }
            _log.WriteLine($"cookieproxy: SYNs answered in user space (--xdp-syn auto: {notHere})");
            return true;
        }
        return OperatingSystem.IsLinux() && StartLinux(endpoints, responder, limits, liveFlowCapacity);
    }

    [SupportedOSPlatform("linux")]
    private bool StartLinux(IReadOnlyList<IPEndPoint> endpoints, ResponderConfig responder, SourceLimitConfig limits, int liveFlowCapacity)
    {
        XdpSynResponder xdp;
        try
        {
            xdp = XdpSynResponder.Load(_interface, Settings(endpoints, responder, limits, liveFlowCapacity),
                Key(_codec.Key), _codec.SlotAt(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
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
            _log.WriteLine($"cookieproxy: removed a stale XDP program left on {_interface}: {removed}");
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
        _log.WriteLine($"cookieproxy: SYNs answered in XDP on {_interface} ({Name(choice.Mode)}: {choice.Reason}{budget}); "
            + "the SYNs it passes up are answered in user space");
        return true;
    }

    private bool Refused(string reason)
    {
        if (_mode == XdpSynMode.Auto)
        {
            _log.WriteLine($"cookieproxy: SYNs answered in user space (--xdp-syn auto: {reason})");
            return true;
        }
        _log.WriteLine($"cookieproxy: --xdp-syn {Name(_mode)}: {reason}");
        return false;
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

    /// <summary>Key rotation (reload): the program signs with <paramref name="key"/> from now on.</summary>
    public void UpdateKey(in SipKey key)
    {
        if (OperatingSystem.IsLinux() && Responder is XdpSynResponder xdp)
        {
            xdp.UpdateKey(Key(key), _codec.SlotAt(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
        }
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
            xdp.SetSlot(_codec.SlotAt(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
            if (ActiveMode == XdpAttachMode.Native && _device is { IsVeth: true }
                && XdpDeviceInfo.Of(_interface).NativeTxDelivers == false)
            {
                lock (_lock)
                {
                    xdp.Detach();
                    xdp.Attach(XdpAttachMode.Generic);
                    ActiveMode = XdpAttachMode.Generic;
                }
                _log.WriteLine($"cookieproxy: the veth peer of {_interface} stopped running native XDP (native XDP_TX would not reach it): SYNs now answered in generic XDP");
            }
        }
        catch (PacketDeviceException e)
        {
            _log.WriteLine($"cookieproxy: --xdp-syn: {e.Message}");
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

    private static string Name(XdpSynMode mode) => mode.ToString().ToLowerInvariant();

    private static string Name(XdpAttachMode mode) => mode == XdpAttachMode.Native ? "native" : "generic";

    public void Dispose()
    {
        if (_timer is not null)
        {
            using var done = new ManualResetEvent(false);
            if (_timer.Dispose(done))
            {
                done.WaitOne(TimeSpan.FromSeconds(2));     // a running tick finishes before the maps close
            }
            _timer = null;
        }
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
