using System.Net;
using CookieProxy.Cookies;
using CookieProxy.Diagnostics;
using CookieProxy.Host.Cli;
using CookieProxy.Host.Services;
using CookieProxy.Platform;
using Microsoft.Extensions.Logging;

namespace CookieProxy.Host.Capture;

/// <summary>
/// --xdp-syn (auto by default): the SYN path in the kernel as a host service (owned by helper `xdp`; the logic
/// is <see cref="XdpSynPath"/>). Opened after the capture rings, so the ACKs to its SYN+ACKs wait there until the
/// threads start. Detached when the drain begins (from then on SYNs reach the draining capture threads, which
/// leave them unanswered) and at the latest on close, before the capture devices go. The capture threads get
/// its live-flow map through <see cref="LiveFlows"/> (CaptureService hands it to every worker).
/// </summary>
internal sealed class XdpSynService : IHostService, IDrainingService
{
    private readonly ProxyOptions _options;
    private readonly CaptureService _capture;
    private readonly XdpSynPath _path;

    public XdpSynService(ProxyOptions options, CaptureService capture, Func<SynCookieCodec> codec, ILogger log)
    {
        _options = options;
        _capture = capture;
        _path = XdpSynPath.Create(options.XdpSyn, options.Interface, log, codec);
    }

    public string Name => "xdp-syn";

    long IDrainingService.Outstanding => 0;

    /// <summary>For the capture threads (null with --xdp-syn off): a no-op until the program is loaded.</summary>
    public ILiveFlowRegistry? LiveFlows => _path.LiveFlows;

    /// <summary>The mode the program runs in; null: SYNs are answered in user space.</summary>
    public XdpAttachMode? ActiveMode => _path.ActiveMode;

    public void Open()
    {
        if (_capture.Workers.Count == 0)
        {
            throw new HostStartException("--xdp-syn: no capture device is open");
        }
        string? error = _path.Start(_capture.Workers[0].Device, _capture.Endpoints.Endpoints, _capture.ResponderConfig,
            CaptureService.LimitConfigFor(_options), Math.Max(1, _options.MaxFlows));
        if (error is not null)
        {
            throw new HostStartException(error);
        }
    }

    public void Start()
    {
    }

    /// <summary>The program's counters ride on thread 0's (one program for the interface, not per thread).</summary>
    public void AddCounters(ProxyCounters[] perThread)
    {
        if (perThread.Length > 0)
        {
            _path.AddCounters(perThread[0]);
        }
    }

    /// <summary>Reload with a rotated key: the program signs with the new key from now on (the capture threads
    /// validate both). Null when done, or why not.</summary>
    public string? UpdateKey(SynCookieCodec codec) => _path.UpdateKey(codec);

    /// <summary>Reload with listeners added or removed: the program's endpoint map follows (null when done, or why
    /// not). A SYN to an endpoint the program does not hold goes up to the capture threads.</summary>
    public string? UpdateEndpoints(IReadOnlyList<IPEndPoint> endpoints) => _path.UpdateEndpoints(endpoints);

    /// <summary>While true every SYN goes up to user space (a SYN cache that answers while the rate is low).</summary>
    public void SetPassSyns(bool pass) => _path.SetPassSyns(pass);

    /// <summary><see cref="SetPassSyns"/> when a program runs (net: for SynCacheXdpService); false when SYNs are
    /// answered in user space anyway (off, or auto fell back).</summary>
    public bool TrySetPassSyns(bool pass)
    {
        if (ActiveMode is null)
        {
            return false;
        }
        SetPassSyns(pass);
        return true;
    }

    public void BeginDrain() => _path.Detach();

    public void Stop() => _path.Detach();

    public void Close() => _path.Dispose();
}
