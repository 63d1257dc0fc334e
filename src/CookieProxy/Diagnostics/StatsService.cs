using CookieProxy.Diagnostics;
using CookieProxy.Host.Services;
using Microsoft.Extensions.Logging;

namespace CookieProxy.Host.Diagnostics;

/// <summary>
/// The counters every reader sees (stats line and file here; the control socket and metrics of helper `ops`):
/// the capture threads' counters plus what other services add (the XDP program's), summed on read.
/// </summary>
public sealed class CounterSources
{
    private readonly List<Action<ProxyCounters[]>> _contributors = [];

    public CounterSources(Func<ProxyCounters[]> perThread)
    {
        PerThread = perThread;
    }

    private Func<ProxyCounters[]> PerThread { get; }

    /// <summary>Adds a source that writes into the per-thread counters (e.g. the XDP program's, on thread 0).</summary>
    public void Add(Action<ProxyCounters[]> contributor) => _contributors.Add(contributor);

    /// <summary>One fresh <see cref="ProxyCounters"/> per capture thread, in thread order (safe from any thread).</summary>
    public ProxyCounters[] Snapshot()
    {
        ProxyCounters[] perThread = PerThread();
        foreach (Action<ProxyCounters[]> add in _contributors)
        {
            add(perThread);
        }
        return perThread;
    }
}

/// <summary>--stats-interval / --stats-file: the periodic counters line and JSON file, and the final ones at exit
/// (written on close, after the capture threads stopped and before the XDP program goes).</summary>
public sealed class StatsService : IHostService
{
    private readonly CounterSources _counters;
    private readonly TextWriter _lines;
    private readonly double _intervalSeconds;
    private readonly string? _file;
    private readonly ILogger _log;
    private StatsReporter? _reporter;

    public StatsService(CounterSources counters, TextWriter lines, double intervalSeconds, string? file, ILogger log)
    {
        _counters = counters;
        _lines = lines;
        _intervalSeconds = intervalSeconds;
        _file = file;
        _log = log;
    }

    public string Name => "stats";

    public void Open()
    {
        try
        {
            _reporter = new StatsReporter(_counters.Snapshot, _lines, _intervalSeconds, _file, _log);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new HostStartException($"--stats-file {_file}: {e.Message}", ExitCodes.Usage);
        }
    }

    public void Stop() => _reporter?.StopPeriodic();

    public void Close()
    {
        _reporter?.Dispose();
        _reporter = null;
    }
}
