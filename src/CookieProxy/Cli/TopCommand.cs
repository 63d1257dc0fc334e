using System.CommandLine;

namespace CookieProxy.Host.Cli;

/// <summary>`cookieproxy top`: a live view of the running daemon over the control socket (owned by helper `ops`).</summary>
public static class TopCommand
{
    public static Command Create(CommandHandlers handlers)
    {
        Option<string> socket = ControlSocket.CreateOption();
        var top = new Command("top", "Live view of the running daemon (1 Hz): per listener SYN/s, valid ACK/s, flows, drops, top sources. q quits.");
        var once = new Option<bool>("--once") { Description = "print one frame (after a second, so the rates are real) and exit" };
        top.Options.Add(socket);
        top.Options.Add(once);
        top.SetAction(parsed => handlers.Control.Request(parsed.GetValue(socket)!, parsed.GetValue(once) ? "top once" : "top",
            parsed.InvocationConfiguration.Output, parsed.InvocationConfiguration.Error));
        return top;
    }
}
