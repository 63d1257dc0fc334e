using System.CommandLine;
using CookieProxy.Host.Config;
using CookieProxy.Host.Services;

namespace CookieProxy.Host.Cli;

/// <summary>`run` and `check`: the same options (<see cref="RunOptions"/>), read in the same order: the defaults,
/// then --config FILE, then the command line; then the checks across options.</summary>
public static class RunCommand
{
    public static Command CreateRun(CommandHandlers handlers)
    {
        var run = new Command("run", "Protect the endpoints: capture on --interface, answer SYNs with cookies, proxy the "
            + "validated connections to their backends. Runs until SIGINT/SIGTERM (drain) ; SIGHUP reloads --config.");
        RunOptions.AddTo(run);
        run.SetAction(parsed =>
        {
            ProxyOptions? options = Load(parsed, out List<string> errors);
            if (options is null)
            {
                WriteErrors(parsed, errors);
                return ExitCodes.Usage;
            }
            return handlers.Run(options, (out List<string> reloadErrors) => Load(parsed, out reloadErrors));
        });
        return run;
    }

    public static Command CreateCheck()
    {
        var check = new Command("check", "Check a config file (and any options given with it) without running: exit 0, or 2 "
            + "with FILE:LINE: key: reason for each error. ExecReload= runs it before signalling the daemon.");
        RunOptions.AddTo(check);
        check.SetAction(parsed =>
        {
            TextWriter output = parsed.InvocationConfiguration.Output;
            ProxyOptions? options = Load(parsed, out List<string> errors);
            if (options is not null)
            {
                errors.AddRange(CheckFiles(options));
            }
            if (errors.Count > 0)
            {
                TextWriter error = parsed.InvocationConfiguration.Error;
                foreach (string e in errors)
                {
                    error.WriteLine(e);
                }
                return ExitCodes.Usage;
            }
            string? config = parsed.GetValue(RunOptions.Config);
            output.WriteLine($"{config ?? "options"}: ok ({options!.Listeners.Count} listener{(options.Listeners.Count == 1 ? "" : "s")} on {options.Interface})");
            return ExitCodes.Ok;
        });
        return check;
    }

    /// <summary>
    /// The options of a `run`/`check` command line: defaults, the config file, the command line, the cross checks.
    /// Returns null with the errors (config errors as FILE:LINE: key: reason, command-line ones naming the option).
    /// </summary>
    public static ProxyOptions? Load(ParseResult parsed, out List<string> errors)
    {
        errors = [];
        ProxyOptions options = ProxyOptions.Defaults;
        var origins = new ConfigFile.Origins();
        string? config = parsed.GetValue(RunOptions.Config);
        if (config is not null)
        {
            List<ConfigError> fileErrors = ConfigFile.Apply(config, ref options, origins);
            if (fileErrors.Count > 0)
            {
                errors.AddRange(fileErrors.Select(e => e.ToString()));
                return null;
            }
            options = options with { ConfigFile = Path.GetFullPath(config) };
        }
        string? error = RunOptions.ApplyCommandLine(parsed, ref options);
        if (error is not null)
        {
            errors.Add(error);
            return null;
        }
        (string? crossError, RunOption? culprit) = RunOptions.Validate(options);
        if (crossError is not null)
        {
            // Said in the file's terms when the file set the option at fault (and the command line did not).
            if (config is not null && culprit is not null && origins.TryGetValue(culprit.Key, out int line) && parsed.GetResult(culprit.Symbol) is null)
            {
                crossError = new ConfigError(config, line, culprit.Key, crossError).ToString();
            }
            else if (config is not null && culprit is null && crossError.StartsWith("at least one", StringComparison.Ordinal))
            {
                crossError = new ConfigError(config, 0, ConfigFile.ListenersKey, crossError).ToString();
            }
            errors.Add(crossError);
            return null;
        }
        return options;
    }

    /// <summary>What `check` verifies beyond the syntax: the files the options name can be used.</summary>
    public static List<string> CheckFiles(ProxyOptions o)
    {
        var errors = new List<string>();
        if (o.KeyFile is not null)
        {
            string? keyError = Cookies.KeyFiles.CheckReadable(o.KeyFile);
            if (keyError is not null)
            {
                errors.Add($"--key-file {o.KeyFile}: {keyError}");
            }
        }
        return errors;
    }

    private static void WriteErrors(ParseResult parsed, List<string> errors)
    {
        TextWriter error = parsed.InvocationConfiguration.Error;
        if (parsed.GetValue(RunOptions.Config) is null)
        {
            CommandTree.WriteUsageError(error, parsed.CommandResult.Command, errors[0]);
            return;
        }
        foreach (string e in errors)
        {
            error.WriteLine($"cookieproxy: {e}");
        }
    }
}
