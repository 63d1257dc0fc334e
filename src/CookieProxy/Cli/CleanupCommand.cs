using System.CommandLine;
using CookieProxy.Host.Os;
using CookieProxy.Host.Services;

namespace CookieProxy.Host.Cli;

/// <summary>`cookieproxy cleanup`: remove what a killed instance left behind (for ExecStopPost=).</summary>
public static class CleanupCommand
{
    public static Command Create()
    {
        var dryRun = new Option<bool>("--dry-run") { Description = "only list what would be removed" };
        var cleanup = new Command("cleanup", "Remove what an instance that could not clean up (SIGKILL) left in this network "
            + "namespace: its nftables table, iptables rules, XDP programs, pf anchor rules. Leftovers of live instances are kept.");
        cleanup.Options.Add(dryRun);
        cleanup.SetAction(parsed =>
        {
            bool dry = parsed.GetValue(dryRun);
            (List<string> removed, List<string> failed) = LeftoverCleaner.Run(dry);
            TextWriter output = parsed.InvocationConfiguration.Output;
            foreach (string r in removed)
            {
                output.WriteLine($"cookieproxy cleanup: {(dry ? "would remove" : "removed")} {r}");
            }
            foreach (string f in failed)
            {
                parsed.InvocationConfiguration.Error.WriteLine($"cookieproxy cleanup: could not remove {f}");
            }
            if (removed.Count == 0 && failed.Count == 0)
            {
                output.WriteLine("cookieproxy cleanup: nothing left behind");
            }
            return failed.Count == 0 ? ExitCodes.Ok : ExitCodes.RuntimeError;
        });
        return cleanup;
    }
}
