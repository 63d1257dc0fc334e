using System.Text.Json;
using CookieProxy.Host.Cli;
using CookieProxy.Host.Services;
using Spectre.Console;

namespace CookieProxy.Host.Control;

/// <summary>
/// The commands that talk to a running daemon (`stats`, `top`, `reload`), over the control socket. Plugged into
/// the command tree as its <see cref="IControlClient"/>; the request words are the command tree's.
/// </summary>
public sealed class SocketControlClient : IControlClient
{
    public int Request(string socketPath, string request, TextWriter output, TextWriter error) => request switch
    {
        "stats" => StatsView.Run(socketPath, json: false, output, error),
        "stats json" => StatsView.Run(socketPath, json: true, output, error),
        "top" when ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected => TopView.Run(socketPath, once: false, AnsiConsole.Console, error),
        "top" or "top once" => TopView.Run(socketPath, once: true, ConsoleFor(output), error),
        "reload" => Reload(socketPath, output, error),
        _ => Unknown(request, error),
    };

    private static int Unknown(string request, TextWriter error)
    {
        error.WriteLine($"cookieproxy: {request}: not a control request");
        return ExitCodes.Usage;
    }

    /// <summary>A console over <paramref name="output"/>: colours and width when it is the terminal, plain and wide
    /// when it is a pipe or a file.</summary>
    private static IAnsiConsole ConsoleFor(TextWriter output)
    {
        bool terminal = ReferenceEquals(output, Console.Out) && !Console.IsOutputRedirected;
        IAnsiConsole console = AnsiConsole.Create(new AnsiConsoleSettings
        {
            Out = new AnsiConsoleOutput(output),
            Ansi = terminal ? AnsiSupport.Detect : AnsiSupport.No,
            ColorSystem = terminal ? ColorSystemSupport.Detect : ColorSystemSupport.NoColors,
            Interactive = terminal ? InteractionSupport.Detect : InteractionSupport.No,
        });
        if (!terminal)
        {
            console.Profile.Width = 160;
        }
        return console;
    }

    /// <summary>`cookieproxy reload`: what changed (exit 0), or why nothing did (exit 1).</summary>
    public static int Reload(string socketPath, TextWriter output, TextWriter error)
    {
        JsonElement result;
        try
        {
            using ControlClient client = ControlClient.Connect(socketPath, TimeSpan.FromSeconds(70));
            result = client.Request("reload");
        }
        catch (ControlClientException e)
        {
            error.WriteLine($"cookieproxy: reload: {e.Message}");
            return ExitCodes.RuntimeError;
        }
        bool applied = result.GetProperty("applied").GetBoolean();
        TextWriter to = applied ? output : error;
        int count = result.GetProperty("messages").GetArrayLength();
        to.WriteLine(applied ? (count == 0 ? "cookieproxy: reload applied: nothing changed" : "cookieproxy: reload applied")
            : "cookieproxy: reload refused; nothing changed");
        foreach (JsonElement m in result.GetProperty("messages").EnumerateArray())
        {
            to.WriteLine($"  {m.GetString()}");
        }
        return applied ? ExitCodes.Ok : ExitCodes.RuntimeError;
    }
}
