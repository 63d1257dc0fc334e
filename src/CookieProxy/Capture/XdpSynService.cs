using CookieProxy.Cookies;
using CookieProxy.Diagnostics;
using CookieProxy.Host.Diagnostics.Logging;
using CookieProxy.Host.Services;
using CookieProxy.Platform;
using Microsoft.Extensions.Logging;

namespace CookieProxy.Host.Capture;

/// <summary>
/// --xdp-syn: the SYN path in the kernel (<see cref="XdpSynResponder"/>; owned by helper `xdp`). Loaded and
/// attached after the capture rings are open, so the ACKs to its SYN+ACKs wait there until the threads start.
/// Detached when the drain begins (from then on SYNs reach the draining capture threads, which leave them
/// unanswered) and at the latest on close, before the capture devices go.
/// </summary>
internal sealed class XdpSynService : IHostService, IDrainingService
{
    private readonly string _interface;
    private readonly XdpAttachMode _mode;
    private readonly CaptureService _capture;
    private readonly Func<SynCookieCodec> _codec;
    private readonly ILogger _log;
    private readonly object _gate = new();
    private XdpSynResponder? _xdp;
    private Timer? _slotTimer;

    public XdpSynService(string interfaceName, XdpAttachMode mode, CaptureService capture, Func<SynCookieCodec> codec, ILogger log)
    {
        _interface = interfaceName;
        _mode = mode;
        _capture = capture;
        _codec = codec;
        _log = log;
    }

    public string Name => "xdp-syn";

    long IDrainingService.Outstanding => 0;

    public void Open()
    {
        if (!OperatingSystem.IsLinux())
        {
            throw new HostStartException("--xdp-syn needs Linux (XDP)", ExitCodes.Usage);
        }
        SynCookieCodec codec = _codec();
        try
        {
            _xdp = XdpSynResponder.Load(_interface, XdpSynSettings.For(_capture.ResponderConfig, _capture.Endpoints.Endpoints),
                codec.Key.K0, codec.Key.K1, codec.SlotAt(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
            _xdp.Attach(_mode);
        }
        catch (PacketDeviceException e)
        {
            ((IDisposable?)_xdp)?.Dispose();
            _xdp = null;
            throw new HostStartException($"--xdp-syn: {e.Message}");
        }
        HostLog.XdpSynAttached(_log, _mode.ToString().ToLowerInvariant(), _xdp.InstructionCount, _interface);
    }

    public void Start()
    {
        // The program's slot follows the clock within a second; a cookie then lives at least SlotSeconds - 1
        // (the validator accepts the slot before the current one).
        _slotTimer = new Timer(_ => UpdateSlot(), null, TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(1));
    }

    private void UpdateSlot()
    {
        lock (_gate)
        {
            try
            {
                if (OperatingSystem.IsLinux() && _xdp is not null)
                {
                    _xdp.SetSlot(_codec().SlotAt(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds()));
                }
            }
            catch (PacketDeviceException e)
            {
                HostLog.XdpSynUpdateFailed(_log, e.Message);
            }
        }
    }

    /// <summary>The program's counters ride on thread 0's (one program for the interface, not per thread).</summary>
    public void AddCounters(ProxyCounters[] perThread)
    {
        lock (_gate)
        {
            if (_xdp is null || perThread.Length == 0 || !OperatingSystem.IsLinux())
            {
                return;
            }
            XdpSynCounters x = _xdp.ReadCounters();
            perThread[0][Counter.XdpSynAckSent] = x.SynAckSent;
            perThread[0][Counter.XdpSynPassed] = x.SynPassed;
            perThread[0][Counter.XdpInternalErrors] = x.InternalErrors;
            // syn_received and synack_sent count every SYN, wherever it was answered.
            perThread[0][Counter.SynReceived] += x.SynAckSent;
            perThread[0][Counter.SynAckSent] += x.SynAckSent;
        }
    }

    /// <summary>
    /// Reload with a rotated key: the program should sign with the new key from now on (the capture threads
    /// validate both). Null when done, or why not. This build's <see cref="XdpSynResponder"/> keeps the key it was
    /// loaded with: its cookies then stay valid only while the old key is the previous one.
    /// </summary>
    public string? UpdateKey(SynCookieCodec codec)
    {
        _ = codec;
        return "the XDP program keeps signing with the key it was loaded with until restart (XdpSynResponder has no key update here)";
    }

    public void BeginDrain() => StopTimer();

    public void Stop() => StopTimer();

    private void StopTimer()
    {
        Timer? timer = Interlocked.Exchange(ref _slotTimer, null);
        if (timer is not null)
        {
            using var done = new ManualResetEvent(false);
            if (timer.Dispose(done))
            {
                done.WaitOne(TimeSpan.FromSeconds(2)); // a running slot update finishes before the maps close
            }
        }
    }

    public void Close()
    {
        StopTimer();
        lock (_gate)
        {
            // Detached before the capture stops: from here SYNs reach the host stack's drop rule (or it).
            ((IDisposable?)_xdp)?.Dispose();
            _xdp = null;
        }
    }
}
