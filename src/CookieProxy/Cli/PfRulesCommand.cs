using System.CommandLine;
using CookieProxy.Host.Os;
using CookieProxy.Host.Services;

namespace CookieProxy.Host.Cli;

/// <summary>
/// `cookieproxy pf-rules`: the pf configuration --hide-port needs on macOS and FreeBSD (<see cref="PfRules.Document"/>):
/// the two /etc/pf.conf lines (anchor "cookieproxy", load anchor) and the anchor's drop rules for the endpoints the
/// same options (or --config FILE) protect. Prints only; changes nothing. Runs on any OS, so the rules can be made
/// on the machine that writes the config.
/// </summary>
public static class PfRulesCommand
{
    public static Command Create()
    {
        var command = new Command("pf-rules", "Print the pf configuration for --hide-port on macOS/FreeBSD: the lines to add to "
            + "/etc/pf.conf (anchor \"cookieproxy\", load anchor) and the anchor's drop rules for the protected endpoints. "
            + "Takes the options of `run` (or --config FILE); changes nothing.");
        RunOptions.AddTo(command);
        command.SetAction(parsed =>
        {
            ProxyOptions? options = RunCommand.Load(parsed, out List<string> errors);
            if (options is null)
            {
                TextWriter error = parsed.InvocationConfiguration.Error;
                foreach (string e in errors)
                {
                    error.WriteLine($"cookieproxy: {e}");
                }
                return ExitCodes.Usage;
            }
            try
            {
                parsed.InvocationConfiguration.Output.Write(PfRules.Document(options.Interface, options.Listeners.Select(l => l.Listen)));
                return ExitCodes.Ok;
            }
            catch (ArgumentException e)
            {
                parsed.InvocationConfiguration.Error.WriteLine($"cookieproxy: --interface {options.Interface}: {e.Message}");
                return ExitCodes.Usage;
            }
        });
        return command;
    }
}
