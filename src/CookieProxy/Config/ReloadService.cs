using System.Diagnostics;
using CookieProxy.Cookies;
using CookieProxy.Host.Capture;
using CookieProxy.Host.Cli;
using CookieProxy.Host.Cookies;
using CookieProxy.Host.Diagnostics.Logging;
using CookieProxy.Host.Os;
using CookieProxy.Host.Services;
using CookieProxy.ProxyProtocol;
using Microsoft.Extensions.Logging;

namespace CookieProxy.Host.Config;

/// <summary>Reads the options again the way the process read them at start (defaults, --config FILE, then the
/// command line over it); null with the errors (FILE:LINE: key: reason) when the result is not valid.</summary>
public delegate ProxyOptions? OptionsLoader(out List<string> errors);

/// <summary>
/// Reload without losing a flow (SIGHUP, `cookieproxy reload`): re-reads and checks the config file and the key
/// file; a bad file changes nothing (the errors are logged with their lines and the process keeps running).
/// Options that cannot change live are refused with a message, and then nothing changes either: a reload is
/// all or nothing. What can change is applied in place: listeners added (new lock, capture filter and drop
/// rule) or removed (no new connections; established flows finish), limits, allow/deny lists, timeouts, the
/// cookie key (the previous one keeps validating). The capture threads take the new settings at a batch
/// boundary; established flows are not touched and continue byte for byte.
/// Runs on the host thread (<see cref="HostLifetime"/>), so it never overlaps start-up, shutdown or itself.
/// </summary>
internal sealed class ReloadService : IHostService
{
    private readonly OptionsLoader _load;
    private readonly KeyringService _keys;
    private readonly CaptureService _capture;
    private readonly InstanceLock _locks;
    private readonly PortHidingService? _hider;
    private readonly XdpSynService? _xdp;
    private readonly HostLifetime _lifetime;
    private readonly SystemdNotifier _systemd;
    private readonly ILogger _log;
    private ProxyOptions _current;

    internal ReloadService(ProxyOptions current, OptionsLoader load, KeyringService keys, CaptureService capture, InstanceLock locks,
        PortHidingService? hider, XdpSynService? xdp, HostLifetime lifetime, SystemdNotifier systemd, ILogger log)
    {
        _current = current;
        _load = load;
        _keys = keys;
        _capture = capture;
        _locks = locks;
        _hider = hider;
        _xdp = xdp;
        _lifetime = lifetime;
        _systemd = systemd;
        _log = log;
    }

    public string Name => "reload";

    /// <summary>The options in force (the last reload's, or the start's).</summary>
    public ProxyOptions Current => _current;

    public void Start() => _lifetime.ReloadHandler = Reload;

    public void Stop() => _lifetime.ReloadHandler = null;

    /// <summary>One reload; host thread. Logs and returns what happened.</summary>
    public ReloadOutcome Reload(string origin)
    {
        _systemd.Reloading();
        try
        {
            ReloadOutcome outcome = ReloadOnce();
            string file = _current.ConfigFile ?? "(command line)";
            if (outcome.Applied)
            {
                HostLog.Reloaded(_log, origin, file, outcome.Messages.Count == 0 ? "nothing changed" : string.Join("; ", outcome.Messages));
            }
            else
            {
                foreach (string m in outcome.Messages)
                {
                    HostLog.ReloadRefused(_log, origin, file, m);
                }
            }
            return outcome;
        }
        finally
        {
            _systemd.Ready($"protecting {_current.Listeners.Count} endpoint(s) on {_current.Interface}");
        }
    }

    private ReloadOutcome ReloadOnce()
    {
        ProxyOptions? next = _load(out List<string> errors);
        if (next is null)
        {
            return new ReloadOutcome(false, errors);
        }

        // All or nothing: every refusal is found before anything is touched.
        var refusals = new List<string>();
        foreach (RunOption option in RunOptions.All)
        {
            if (!option.Reloadable && option.Differs(_current, next))
            {
                refusals.Add($"{option.Key}: cannot change while running ({option.Format(_current)} -> {option.Format(next)}); restart to apply");
            }
        }
        bool listenersChanged = !SameListeners(_current.Listeners, next.Listeners);
        foreach (ListenerOptions l in next.Listeners)
        {
            ListenerOptions? old = _current.Listeners.FirstOrDefault(o => o.Listen.Equals(l.Listen));
            if (old is not null && old != l)
            {
                // Same endpoint, other backend or PROXY version: new flows would go elsewhere than established ones.
                refusals.Add($"listeners: {l.Listen}: changing its backend or proxy-protocol needs the listener removed first (or a restart)");
            }
        }
        SynCookieCodec? codec = _keys.Prepare(next.KeyFile, out bool keyChanged, out string? keyError);
        if (codec is null)
        {
            refusals.Add(keyError!);
        }
        if (refusals.Count > 0)
        {
            return new ReloadOutcome(false, refusals);
        }

        List<string> changes = Describe(_current, next, keyChanged);
        SourceLimitConfigView limits = new(next);
        if (limits.Any && !_capture.LimitsExact)
        {
            // The threads were set up to share by flow hash (no limit at start): a source's flows spread over them.
            changes.Add($"warning: the capture threads share the traffic by flow hash, so the per-source limits apply per thread (start with a limit, or --fanout source, for exact ones)");
        }
        if (listenersChanged)
        {
            string? lockError = _locks.Update([.. next.Listeners.Select(l => l.Listen)]);
            if (lockError is not null)
            {
                return ReloadOutcome.Refused(lockError);
            }
        }
        string? captureError = _capture.Reconfigure(next, codec!);
        if (captureError is not null)
        {
            if (listenersChanged)
            {
                _locks.Update([.. _current.Listeners.Select(l => l.Listen)]);
            }
            return ReloadOutcome.Refused(captureError);
        }
        if (listenersChanged && _hider is not null)
        {
            // The removed listeners stay hidden: their established flows still arrive here.
            var hidden = next.Listeners.Concat(_capture.Retired.Select(ep => new ListenerOptions(ep, ep, ProxyProtocolVersion.None))).ToList();
            string? hideError = _hider.Update(hidden);
            if (hideError is not null)
            {
                changes.Add($"warning: --hide-port: {hideError}");
            }
        }
        if (listenersChanged && _xdp is not null)
        {
            // xdp: the program answers SYNs of the new set from now on; a removed listener's SYNs go up to the
            // capture threads (and its established flows' SYNs go to their flows, as before).
            string? xdpError = _xdp.UpdateEndpoints([.. next.Listeners.Select(l => l.Listen)]);
            if (xdpError is not null)
            {
                changes.Add($"warning: --xdp-syn: {xdpError}");
            }
        }
        if (keyChanged && _xdp is not null)
        {
            string? xdpError = _xdp.UpdateKey(codec!);
            if (xdpError is not null)
            {
                changes.Add($"warning: --xdp-syn: {xdpError}");
            }
        }
        _keys.Commit(next.KeyFile, codec!, keyChanged);
        _current = next;
        WaitForThreads();
        return new ReloadOutcome(true, changes);
    }

    /// <summary>Until every capture thread runs with the new settings (they take them within one loop pass,
    /// at most ~100 ms), so that `cookieproxy reload` returning means "in force".</summary>
    private void WaitForThreads()
    {
        var clock = Stopwatch.StartNew();
        while (!_capture.SettingsApplied && clock.ElapsedMilliseconds < 2000)
        {
            Thread.Sleep(5);
        }
    }

    private readonly record struct SourceLimitConfigView(ProxyOptions O)
    {
        public bool Any => O.MaxConnectionsPerSource > 0 || O.ConnectionRatePerSource > 0 || O.SynRatePerSource > 0;
    }

    private static bool SameListeners(IReadOnlyList<ListenerOptions> a, IReadOnlyList<ListenerOptions> b) =>
        a.Count == b.Count && a.All(b.Contains);

    private static List<string> Describe(ProxyOptions a, ProxyOptions b, bool keyChanged)
    {
        var changes = new List<string>();
        foreach (RunOption option in RunOptions.All)
        {
            if (option.Differs(a, b))
            {
                changes.Add($"{option.Key} {option.Format(a)} -> {option.Format(b)}");
            }
        }
        foreach (ListenerOptions l in b.Listeners.Where(l => !a.Listeners.Contains(l)))
        {
            changes.Add($"listener added: {l.Listen} -> {l.Backend}");
        }
        foreach (ListenerOptions l in a.Listeners.Where(l => !b.Listeners.Contains(l)))
        {
            changes.Add($"listener removed: {l.Listen} (no new connections; its established flows finish)");
        }
        if (keyChanged)
        {
            changes.Add("cookie key rotated (the previous key still validates)");
        }
        return changes;
    }
}
