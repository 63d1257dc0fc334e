using System.Diagnostics;
using System.Runtime.InteropServices;
using CookieProxy.Host.Diagnostics.Logging;
using CookieProxy.Host.Os;
using CookieProxy.Host.Services;
using Microsoft.Extensions.Logging;

namespace CookieProxy.Host;

/// <summary>
/// The lifetime of `cookieproxy run`: opens and starts the services in order, waits for a stop (SIGINT/SIGTERM,
/// --duration, a faulted capture thread) while serving reloads (SIGHUP, the control socket), drains, then stops
/// and closes them in reverse order. Every exit path closes every service that was opened, so the drop rule goes
/// and XDP is detached: a failed start, a fault, an exception escaping a service (logged as a bug, exit 1), and an
/// unhandled exception on any other thread (closed from the crash handler before the runtime ends the process).
/// What the services are and their order is <see cref="Program"/>'s business.
/// </summary>
public sealed class ProxyHost
{
    private readonly IReadOnlyList<IHostService> _services;
    private readonly HostLifetime _lifetime;
    private readonly SystemdNotifier _systemd;
    private readonly ILogger _log;
    private readonly object _closeGate = new();
    private readonly List<IHostService> _opened = [];
    private bool _closed;

    public ProxyHost(IReadOnlyList<IHostService> services, HostLifetime lifetime, SystemdNotifier systemd, ILogger log)
    {
        _services = services;
        _lifetime = lifetime;
        _systemd = systemd;
        _log = log;
    }

    /// <summary>Exit after this long (0 = until a signal): --duration.</summary>
    public TimeSpan Duration { get; init; }

    /// <summary>Established flows get this long to finish on SIGINT/SIGTERM (a reload may change it).</summary>
    public Func<TimeSpan> DrainTimeout { get; init; } = () => TimeSpan.FromSeconds(10);

    /// <summary>Writes out what the log has queued (from the crash handler, before the runtime ends the process).</summary>
    public Action? Flush { get; init; }

    /// <summary>Text for systemd's STATUS= once running.</summary>
    public Func<string> ReadyStatus { get; init; } = () => "running";

    public int Run()
    {
        AppDomain.CurrentDomain.UnhandledException += OnUnhandledException;
        try
        {
            return RunServices();
        }
        catch (Exception e)
        {
            // Our own bug: say where, with the stack, then clean up like any other exit.
            HostLog.Unhandled(_log, "the host", e);
            return ExitCodes.RuntimeError;
        }
        finally
        {
            _lifetime.RefusePendingReloads();
            CloseAll();
            AppDomain.CurrentDomain.UnhandledException -= OnUnhandledException;
        }
    }

    private int RunServices()
    {
        // Registered before anything opens: a SIGTERM during start-up becomes a stop once started (and the
        // services opened so far are closed), a SIGHUP a reload, never the default action that ends the process
        // without unwinding (the drop rule and an XDP program would stay behind). systemd may well send either
        // while a slow start (the XDP verifier) is under way.
        using PosixSignalRegistration sigint = PosixSignalRegistration.Create(PosixSignal.SIGINT, OnStopSignal);
        using PosixSignalRegistration sigterm = PosixSignalRegistration.Create(PosixSignal.SIGTERM, OnStopSignal);
        using PosixSignalRegistration sighup = PosixSignalRegistration.Create(PosixSignal.SIGHUP, c =>
        {
            c.Cancel = true;
            _ = _lifetime.RequestReload("SIGHUP");
        });
        foreach (IHostService s in _services)
        {
            try
            {
                lock (_closeGate)
                {
                    if (_closed)
                    {
                        return ExitCodes.RuntimeError;
                    }
                    _opened.Add(s);
                }
                s.Open();
            }
            catch (HostStartException e)
            {
                HostLog.StartFailed(_log, e.Message);
                return e.ExitCode;
            }
        }
        var started = new List<IHostService>(_services.Count);
        try
        {
            foreach (IHostService s in _services)
            {
                try
                {
                    s.Start();
                }
                catch (HostStartException e)
                {
                    HostLog.StartFailed(_log, e.Message);
                    return e.ExitCode;
                }
                started.Add(s);
            }

            _systemd.Ready(ReadyStatus());

            WaitForStop();
            string reason = _lifetime.StopReason ?? "stop";
            if (!_lifetime.Immediate)
            {
                Drain(reason);
            }
            else
            {
                HostLog.Stopping(_log, reason);
            }
            return _lifetime.ExitCode;
        }
        finally
        {
            for (int i = started.Count - 1; i >= 0; i--)
            {
                try
                {
                    started[i].Stop();
                }
                catch (Exception e)
                {
                    HostLog.StopFailed(_log, started[i].Name, e);
                }
            }
        }
    }

    private void OnStopSignal(PosixSignalContext context)
    {
        context.Cancel = true;
        _lifetime.RequestStop(context.Signal == PosixSignal.SIGINT ? "SIGINT" : "SIGTERM");
    }

    private void WaitForStop()
    {
        var clock = Stopwatch.StartNew();
        while (true)
        {
            TimeSpan wait = TimeSpan.FromMilliseconds(250);
            if (Duration > TimeSpan.Zero)
            {
                TimeSpan left = Duration - clock.Elapsed;
                if (left <= TimeSpan.Zero)
                {
                    _lifetime.RequestStop("--duration elapsed");
                }
                else if (left < wait)
                {
                    wait = left;
                }
            }
            if (_lifetime.WaitAndServe(wait))
            {
                return;
            }
        }
    }

    /// <summary>Stop accepting, then wait for the flows to finish, for the drain timeout, or a second signal.</summary>
    private void Drain(string reason)
    {
        var draining = _services.OfType<IDrainingService>().ToArray();
        TimeSpan timeout = DrainTimeout();
        _systemd.Stopping($"draining ({reason})");
        foreach (IDrainingService d in draining)
        {
            d.BeginDrain();
        }
        long outstanding = Outstanding(draining);
        HostLog.Draining(_log, reason, outstanding, timeout.TotalSeconds);
        var clock = Stopwatch.StartNew();
        int stopRequests = _lifetime.StopRequests;
        while (outstanding > 0)
        {
            if (clock.Elapsed >= timeout)
            {
                HostLog.DrainCut(_log, "--drain-timeout", outstanding);
                return;
            }
            if (_lifetime.StopRequests > stopRequests)
            {
                HostLog.DrainCut(_log, "a second stop signal", outstanding);
                return;
            }
            // Reloads are refused while draining (the drain's settings stay put).
            _lifetime.RefusePendingReloads();
            Thread.Sleep(50);
            outstanding = Outstanding(draining);
        }
        HostLog.Drained(_log, clock.Elapsed.TotalSeconds);
    }

    private static long Outstanding(IDrainingService[] draining)
    {
        long n = 0;
        foreach (IDrainingService d in draining)
        {
            n += d.Outstanding;
        }
        return n;
    }

    /// <summary>Closes every opened service in reverse order, once (the host thread and the crash handler may race).</summary>
    private void CloseAll()
    {
        IHostService[] toClose;
        lock (_closeGate)
        {
            if (_closed)
            {
                return;
            }
            _closed = true;
            toClose = [.. _opened];
        }
        for (int i = toClose.Length - 1; i >= 0; i--)
        {
            try
            {
                toClose[i].Close();
            }
            catch (Exception e)
            {
                HostLog.StopFailed(_log, toClose[i].Name, e);
            }
        }
    }

    /// <summary>Another thread threw and nothing caught it: the runtime ends the process after this handler, without
    /// unwinding the host thread, so the drop rule and the XDP program are removed from here.</summary>
    private void OnUnhandledException(object? sender, UnhandledExceptionEventArgs e)
    {
        HostLog.Unhandled(_log, Thread.CurrentThread.Name ?? "a thread-pool thread", e.ExceptionObject as Exception ?? new InvalidOperationException(e.ExceptionObject?.ToString()));
        CloseAll();
        Flush?.Invoke();
    }
}
