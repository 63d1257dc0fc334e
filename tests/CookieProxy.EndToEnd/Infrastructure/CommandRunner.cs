using System.Diagnostics;
using System.Text;

namespace CookieProxy.EndToEnd.Infrastructure;

/// <summary>The outcome of one external command.</summary>
public sealed record CommandResult(string CommandLine, int ExitCode, string StdOut, string StdErr, TimeSpan Elapsed, bool TimedOut)
{
    public bool Succeeded => !TimedOut && ExitCode == 0;

    public override string ToString()
    {
        var text = new StringBuilder();
        text.Append("$ ").AppendLine(CommandLine);
        text.Append(TimedOut ? "TIMED OUT" : $"exit {ExitCode}").Append(" after ").Append(Elapsed.TotalSeconds.ToString("F2")).AppendLine(" s");
        if (StdOut.Length > 0)
        {
            text.AppendLine("stdout:").AppendLine(Tail(StdOut));
        }

        if (StdErr.Length > 0)
        {
            text.AppendLine("stderr:").AppendLine(Tail(StdErr));
        }

        return text.ToString();
    }

    private static string Tail(string s) => s.Length <= 4000 ? s.TrimEnd() : "..." + s[^4000..].TrimEnd();
}

/// <summary>
/// Runs external commands with a hard timeout. On timeout the process tree we started is killed, so
/// a hung tool fails its test instead of hanging the run.
/// </summary>
public static class CommandRunner
{
    public static CommandResult Run(string file, IEnumerable<string> args, TimeSpan timeout, Action<string>? log = null)
    {
        RunningCommand running = Start(file, args);
        return running.WaitForExit(timeout, log);
    }

    public static RunningCommand Start(string file, IEnumerable<string> args)
    {
        var psi = new ProcessStartInfo(file)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (string arg in args)
        {
            psi.ArgumentList.Add(arg);
        }

        string commandLine = file + " " + string.Join(' ', psi.ArgumentList.Select(Quote));
        var process = new Process { StartInfo = psi };
        var stdout = new StringBuilder();
        var stderr = new StringBuilder();
        process.OutputDataReceived += (_, e) => Append(stdout, e.Data);
        process.ErrorDataReceived += (_, e) => Append(stderr, e.Data);
        process.Start();
        process.StandardInput.Close();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return new RunningCommand(process, commandLine, stdout, stderr);
    }

    private static void Append(StringBuilder sb, string? line)
    {
        if (line is null)
        {
            return;
        }

        lock (sb)
        {
            sb.AppendLine(line);
        }
    }

    private static string Quote(string arg) =>
        arg.Length > 0 && arg.All(c => char.IsAsciiLetterOrDigit(c) || "-_./:=@%+,".Contains(c)) ? arg : "'" + arg.Replace("'", "'\\''") + "'";
}

/// <summary>A command started in the background (tcpdump, a long curl).</summary>
public sealed class RunningCommand : IDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stdout;
    private readonly StringBuilder _stderr;
    private readonly Stopwatch _clock = Stopwatch.StartNew();

    internal RunningCommand(Process process, string commandLine, StringBuilder stdout, StringBuilder stderr)
    {
        _process = process;
        CommandLine = commandLine;
        _stdout = stdout;
        _stderr = stderr;
    }

    public string CommandLine { get; }

    public int Pid => _process.Id;

    public bool HasExited => _process.HasExited;

    public string StdErrSoFar
    {
        get
        {
            lock (_stderr)
            {
                return _stderr.ToString();
            }
        }
    }

    public CommandResult WaitForExit(TimeSpan timeout, Action<string>? log = null)
    {
        bool exited = _process.WaitForExit(timeout);
        if (!exited)
        {
            Kill();
            _process.WaitForExit(TimeSpan.FromSeconds(5));
        }

        // The parameterless overload waits for the redirected streams to reach end of file; bounded,
        // in case a daemon we started inherited the pipes.
        if (_process.HasExited)
        {
            Task.Run(() => _process.WaitForExit()).Wait(TimeSpan.FromSeconds(5));
        }

        string stdout;
        string stderr;
        lock (_stdout)
        {
            stdout = _stdout.ToString();
        }

        lock (_stderr)
        {
            stderr = _stderr.ToString();
        }

        var result = new CommandResult(CommandLine, exited ? _process.ExitCode : -1, stdout, stderr, _clock.Elapsed, !exited);
        log?.Invoke(result.ToString());
        return result;
    }

    /// <summary>Sends a signal to the process we started (tcpdump flushes its file on SIGINT).</summary>
    public void Signal(string signal)
    {
        if (!_process.HasExited)
        {
            CommandRunner.Run("kill", ["-" + signal, _process.Id.ToString()], TimeSpan.FromSeconds(5));
        }
    }

    public void Kill()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // Exited in between.
        }
    }

    public void Dispose()
    {
        Kill();
        _process.Dispose();
    }
}
