using System.CommandLine;

namespace CookieProxy.Host.Cli;

/// <summary>`cookieproxy stats`: the running daemon's counters over the control socket (owned by helper `ops`).</summary>
public static class StatsCommand
{
    public static Command Create(CommandHandlers handlers)
    {
        Option<string> socket = ControlSocket.CreateOption();
        var json = new Option<bool>("--json") { Description = "print the counters as JSON" };
        var stats = new Command("stats", "Print the running daemon's counters: rates and drops by reason (like pfctl -si).");
        stats.Options.Add(socket);
        stats.Options.Add(json);
        stats.SetAction(parsed => handlers.Control.Request(parsed.GetValue(socket)!, parsed.GetValue(json) ? "stats json" : "stats",
            parsed.InvocationConfiguration.Output, parsed.InvocationConfiguration.Error));
        return stats;
    }
}
