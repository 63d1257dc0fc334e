using System.CommandLine;
using System.CommandLine.Help;
using System.Text.RegularExpressions;
using CookieProxy.Host.Services;

namespace CookieProxy.Host.Cli;

/// <summary>What the commands call into: the pieces that live outside the CLI (set up by <see cref="Program"/>).</summary>
public sealed class CommandHandlers
{
    /// <summary>`run` with validated options, and how to read them again for a reload: the proxy's exit code.</summary>
    public Func<ProxyOptions, Config.OptionsLoader, int> Run { get; init; } = (_, _) => ExitCodes.RuntimeError;

    /// <summary>Talks to a running daemon (`reload`, `stats`, `top`); the control socket is helper `ops`'s.</summary>
    public IControlClient Control { get; init; } = new UnavailableControlClient();
}

/// <summary>
/// The command tree on System.CommandLine: run, check, reload, stats, top, genkey, cleanup, version. Every
/// command has --help; `--opt=value` and `--opt value` both work. A bad command line is one line on stderr
/// naming the option, and exit code 2 (never System.CommandLine's help dump, never a stack trace).
/// </summary>
public static partial class CommandTree
{
    public static RootCommand Build(CommandHandlers handlers)
    {
        var root = new RootCommand("CookieProxy: a user-space SYN-cookie TCP proxy. Answers SYNs to the protected endpoints "
            + "with cookie SYN+ACKs, and splices each validated connection to its backend.");
        // `--version` prints what `cookieproxy version` prints.
        foreach (Option o in root.Options)
        {
            if (o is VersionOption v)
            {
                v.Action = new VersionAction();
            }
        }
        root.Subcommands.Add(RunCommand.CreateRun(handlers));
        root.Subcommands.Add(RunCommand.CreateCheck());
        root.Subcommands.Add(ReloadCommand.Create(handlers));
        root.Subcommands.Add(StatsCommand.Create(handlers));
        root.Subcommands.Add(TopCommand.Create(handlers));
        root.Subcommands.Add(GenkeyCommand.Create());
        root.Subcommands.Add(CleanupCommand.Create());
        root.Subcommands.Add(PfRulesCommand.Create());
        root.Subcommands.Add(VersionCommand.Create());
        return root;
    }

    /// <summary>The parser's settings: no response files (a `@name` argument is a value, not a file to expand).</summary>
    public static ParserConfiguration ParserConfiguration { get; } = new() { ResponseFileTokenReplacer = null };

    public static ParseResult Parse(RootCommand root, IReadOnlyList<string> args) => root.Parse(args, ParserConfiguration);

    /// <summary>Parses and runs the command line; returns the process exit code.</summary>
    public static int Invoke(RootCommand root, IReadOnlyList<string> args, TextWriter output, TextWriter error)
    {
        ParseResult parsed = Parse(root, args);
        if (parsed.Errors.Count > 0 && !IsHelpOrVersion(parsed))
        {
            WriteUsageError(error, parsed.CommandResult.Command, FirstError(parsed));
            return ExitCodes.Usage;
        }
        return parsed.Invoke(new InvocationConfiguration { Output = output, Error = error, EnableDefaultExceptionHandler = false });
    }

    /// <summary>The one line for a bad command line, and where to look.</summary>
    public static void WriteUsageError(TextWriter error, Command command, string message)
    {
        error.WriteLine($"cookieproxy: {message}");
        string path = command.Parents.OfType<Command>().Any() ? $"cookieproxy {command.Name} --help" : "cookieproxy --help";
        error.WriteLine($"Try '{path}'.");
    }

    private static bool IsHelpOrVersion(ParseResult parsed) => parsed.Action is HelpAction or VersionAction;

    /// <summary>System.CommandLine's first parse error in our words (the option's name, the value, what is wrong).</summary>
    public static string FirstError(ParseResult parsed)
    {
        // An unknown word explains a missing command better than "no command given" does.
        string message = parsed.Errors.FirstOrDefault(e => UnrecognizedToken().IsMatch(e.Message))?.Message ?? parsed.Errors[0].Message;
        bool atRoot = parsed.CommandResult.Command is RootCommand;
        Match m = UnrecognizedToken().Match(message);
        if (m.Success)
        {
            string token = m.Groups[1].Value;
            if (atRoot && !token.StartsWith('-'))
            {
                return $"unknown command '{token}'";
            }
            return token.StartsWith('-') ? $"unknown option '{token}'" : $"unexpected argument '{token}'";
        }
        if (message.StartsWith("Required command was not provided", StringComparison.Ordinal))
        {
            return "no command given (run, check, reload, stats, top, genkey, cleanup, version)";
        }
        m = MissingArgument().Match(message);
        if (m.Success)
        {
            return $"{m.Groups[1].Value} needs a value";
        }
        return message.TrimEnd('.');
    }

    [GeneratedRegex(@"^Unrecognized command or argument '(.*)'")]
    private static partial Regex UnrecognizedToken();

    [GeneratedRegex(@"^Required argument missing for option: '(.*)'")]
    private static partial Regex MissingArgument();

    /// <summary>`--version`: the informational version with the commit it was built from.</summary>
    private sealed class VersionAction : System.CommandLine.Invocation.SynchronousCommandLineAction
    {
        public override int Invoke(ParseResult parseResult)
        {
            parseResult.InvocationConfiguration.Output.WriteLine($"cookieproxy {VersionInfo.Informational}");
            return ExitCodes.Ok;
        }
    }
}
