using System.CommandLine;

namespace CookieProxy.Host.Cli;

/// <summary>`cookieproxy reload`: asks the running daemon to re-read and apply its --config (as SIGHUP does) and
/// prints what changed or why nothing did.</summary>
public static class ReloadCommand
{
    public static Command Create(CommandHandlers handlers)
    {
        Option<string> socket = ControlSocket.CreateOption();
        var reload = new Command("reload", "Ask the running daemon to re-read its config file and apply it in place (like "
            + "SIGHUP); a bad file changes nothing. Prints what changed, or the errors.");
        reload.Options.Add(socket);
        reload.SetAction(parsed => handlers.Control.Request(parsed.GetValue(socket)!, "reload",
            parsed.InvocationConfiguration.Output, parsed.InvocationConfiguration.Error));
        return reload;
    }
}
