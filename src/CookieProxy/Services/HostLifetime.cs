using CookieProxy.Host.Diagnostics.Logging;
using Microsoft.Extensions.Logging;

namespace CookieProxy.Host.Services;

/// <summary>What a reload did: applied (with what changed), refused (with the reasons), or nothing to do.</summary>
public sealed record ReloadOutcome(bool Applied, IReadOnlyList<string> Messages)
{
    public static ReloadOutcome Refused(params string[] reasons) => new(false, reasons);

    public static ReloadOutcome Done(params string[] changes) => new(true, changes);
}

/// <summary>
/// The requests that reach the host thread from elsewhere: stop (signals, --duration, a faulted capture thread)
/// and reload (SIGHUP, the control socket). Both are handled on the host thread, one at a time, so a reload never
/// runs concurrently with start-up, another reload or shutdown.
/// </summary>
public sealed class HostLifetime : IDisposable
{
    private readonly ILogger _log;
    private readonly object _gate = new();
    private readonly Queue<(string Origin, TaskCompletionSource<ReloadOutcome> Done)> _reloads = new();
    private readonly AutoResetEvent _wake = new(false);
    private int _stopRequests;
    private int _exitCode;
    private string? _stopReason;
    private bool _immediate;

    public HostLifetime(ILogger log)
    {
        _log = log;
    }

    /// <summary>Runs a reload on the host thread (set by the reload service; null: nothing can be reloaded).</summary>
    public Func<string, ReloadOutcome>? ReloadHandler { get; set; }

    /// <summary>How many stop requests arrived (the first drains, the second ends the drain).</summary>
    public int StopRequests => Volatile.Read(ref _stopRequests);

    public string? StopReason
    {
        get
        {
            lock (_gate)
            {
                return _stopReason;
            }
        }
    }

    /// <summary>The exit code the stop asked for (0 for a signal, non-zero for a fault).</summary>
    public int ExitCode => Volatile.Read(ref _exitCode);

    /// <summary>True when the stop must not drain (a fault): flows are reset at once.</summary>
    public bool Immediate
    {
        get
        {
            lock (_gate)
            {
                return _immediate;
            }
        }
    }

    /// <summary>Asks the host to stop: drain first unless <paramref name="immediate"/>. A second request ends the drain.
    /// Safe from any thread, signal handlers included.</summary>
    public void RequestStop(string reason, int exitCode = ExitCodes.Ok, bool immediate = false)
    {
        lock (_gate)
        {
            _stopReason ??= reason;
            _immediate |= immediate;
            if (exitCode != ExitCodes.Ok && _exitCode == ExitCodes.Ok)
            {
                _exitCode = exitCode;
            }
        }
        Interlocked.Increment(ref _stopRequests);
        _wake.Set();
    }

    /// <summary>Queues a reload for the host thread; the task completes when it has been applied or refused.</summary>
    public Task<ReloadOutcome> RequestReload(string origin)
    {
        var done = new TaskCompletionSource<ReloadOutcome>(TaskCreationOptions.RunContinuationsAsynchronously);
        lock (_gate)
        {
            _reloads.Enqueue((origin, done));
        }
        _wake.Set();
        return done.Task;
    }

    /// <summary>Host thread: waits up to <paramref name="timeout"/> for a request; runs queued reloads. Returns true
    /// when a stop has been requested.</summary>
    internal bool WaitAndServe(TimeSpan timeout)
    {
        if (StopRequests == 0)
        {
            _wake.WaitOne(timeout);
        }
        ServeReloads();
        return StopRequests > 0;
    }

    internal void ServeReloads()
    {
        while (true)
        {
            (string Origin, TaskCompletionSource<ReloadOutcome> Done) next;
            lock (_gate)
            {
                if (!_reloads.TryDequeue(out next))
                {
                    return;
                }
            }
            Func<string, ReloadOutcome>? handler = ReloadHandler;
            try
            {
                if (handler is null)
                {
                    HostLog.ReloadNothing(_log, next.Origin, "nothing to reload without --config FILE; still running");
                    next.Done.SetResult(ReloadOutcome.Refused("nothing to reload: not started with --config FILE"));
                }
                else
                {
                    next.Done.SetResult(handler(next.Origin));
                }
            }
            catch (Exception e)
            {
                next.Done.SetException(e);
            }
        }
    }

    /// <summary>Fails the reloads still queued at exit.</summary>
    internal void RefusePendingReloads()
    {
        lock (_gate)
        {
            while (_reloads.TryDequeue(out var next))
            {
                next.Done.TrySetResult(ReloadOutcome.Refused("shutting down"));
            }
        }
    }

    public void Dispose() => _wake.Dispose();
}
