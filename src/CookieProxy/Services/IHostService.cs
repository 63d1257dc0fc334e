namespace CookieProxy.Host.Services;

/// <summary>
/// One part of `cookieproxy run` with a single owner (capture, XDP, port hiding, stats, reload, control socket,
/// metrics, ...). <see cref="ProxyHost"/> calls <see cref="Open"/> on every service in order, then
/// <see cref="Start"/> in order; at the end <see cref="Stop"/> in reverse order, then <see cref="Close"/> in
/// reverse order, on every exit path (including a failed Open: the services opened before it are closed).
/// All four run on the host's thread, one at a time. Every method has an empty default.
/// </summary>
public interface IHostService
{
    /// <summary>For log lines ("capture", "port hiding").</summary>
    string Name { get; }

    /// <summary>Acquire: open devices, install rules, load programs. Throw <see cref="HostStartException"/> for a
    /// failure the operator can fix (it becomes one line and an exit code).</summary>
    void Open()
    {
    }

    /// <summary>Go live: start threads and timers. Every service is open by now.</summary>
    void Start()
    {
    }

    /// <summary>Quiesce: stop threads and timers (join them). Nothing else is stopped yet when this runs.</summary>
    void Stop()
    {
    }

    /// <summary>Release what Open acquired. Must not throw; runs even if Start never did.</summary>
    void Close()
    {
    }
}

/// <summary>A service that takes part in the drain on SIGINT/SIGTERM (stop accepting, let flows finish).</summary>
public interface IDrainingService
{
    /// <summary>Stop accepting new work (SYNs, new flows). Called on the host thread.</summary>
    void BeginDrain();

    /// <summary>Work still in progress (the established flows); the drain ends when every service reports 0.</summary>
    long Outstanding { get; }
}

/// <summary>A start-up failure with its message (one line, naming the option) and the exit code to end with.</summary>
public sealed class HostStartException : Exception
{
    public HostStartException(string message, int exitCode = ExitCodes.RuntimeError)
        : base(message)
    {
        ExitCode = exitCode;
    }

    public HostStartException(string message, int exitCode, Exception inner)
        : base(message, inner)
    {
        ExitCode = exitCode;
    }

    public int ExitCode { get; }
}

/// <summary>The exit codes of every command.</summary>
public static class ExitCodes
{
    public const int Ok = 0;

    /// <summary>A run-time failure (capture cannot open, a capture thread died, a bug).</summary>
    public const int RuntimeError = 1;

    /// <summary>Bad command line, options, config file or paths.</summary>
    public const int Usage = 2;
}
