using System.CommandLine;
using System.CommandLine.Help;
using CookieProxy.Host.Services;

namespace CookieProxy.Host.Cli;

/// <summary>What a command line comes to without running it (tests, and `check`-like callers).</summary>
public sealed record CliParse(string? Command, ProxyOptions? Options, string? Error, string? Output)
{
    public bool IsHelp => Output is not null;
}

/// <summary>Parses a command line the way <see cref="CommandTree.Invoke"/> would, without running a command:
/// the `run`/`check` options, the error message, or the --help text.</summary>
public static class CommandLine
{
    private static readonly RootCommand s_root = CommandTree.Build(new CommandHandlers());

    public static CliParse Parse(IReadOnlyList<string> args)
    {
        ParseResult parsed = CommandTree.Parse(s_root, args);
        string? command = parsed.CommandResult.Command is RootCommand ? null : parsed.CommandResult.Command.Name;
        if (parsed.Action is HelpAction)
        {
            var output = new StringWriter();
            parsed.Invoke(new InvocationConfiguration { Output = output, Error = output });
            return new CliParse(command, null, null, output.ToString());
        }
        if (parsed.Errors.Count > 0)
        {
            return new CliParse(command, null, CommandTree.FirstError(parsed), null);
        }
        if (command is "run" or "check")
        {
            ProxyOptions? options = RunCommand.Load(parsed, out List<string> errors);
            return new CliParse(command, options, errors.Count > 0 ? string.Join("\n", errors) : null, null);
        }
        return new CliParse(command, null, null, null);
    }

    /// <summary>Runs a command line with its output captured: (exit code, stdout, stderr).</summary>
    public static (int ExitCode, string Output, string Error) Invoke(IReadOnlyList<string> args, CommandHandlers? handlers = null)
    {
        var output = new StringWriter();
        var error = new StringWriter();
        int code = CommandTree.Invoke(CommandTree.Build(handlers ?? new CommandHandlers()), args, output, error);
        return (code, output.ToString(), error.ToString());
    }

    /// <summary>The exit code of a bad command line.</summary>
    public const int ExitUsage = ExitCodes.Usage;
}
