namespace CookieProxy.Host.Cli;

/// <summary>
/// The seam between the commands that talk to a running daemon (`reload`, `stats`, `top`) and the control socket
/// (helper `ops`, src/CookieProxy/Control). <see cref="Program"/> passes the real client in <see cref="CommandHandlers"/>.
/// </summary>
public interface IControlClient
{
    /// <summary>Sends <paramref name="request"/> (e.g. "reload") to the daemon listening on
    /// <paramref name="socketPath"/>, writes its answer; returns the command's exit code.</summary>
    int Request(string socketPath, string request, TextWriter output, TextWriter error);
}

/// <summary>Until the control socket lands: says so, exit 1.</summary>
public sealed class UnavailableControlClient : IControlClient
{
    public int Request(string socketPath, string request, TextWriter output, TextWriter error)
    {
        error.WriteLine($"cookieproxy: {request}: this build has no control socket client; send SIGHUP to reload (systemctl reload cookieproxy)");
        return Services.ExitCodes.RuntimeError;
    }
}

/// <summary>Where the control socket lives unless told otherwise (the daemon's --run-dir).</summary>
public static class ControlSocket
{
    public const string DefaultDirectory = "/run/cookieproxy";

    public const string FileName = "control.sock";

    public static string DefaultPath => Path.Combine(DefaultDirectory, FileName);

    /// <summary>`--socket PATH` of the commands that talk to a running daemon.</summary>
    public static System.CommandLine.Option<string> CreateOption() => new("--socket", "--control-socket")
    {
        Description = $"the daemon's control socket (default {DefaultPath})",
        HelpName = "PATH",
        DefaultValueFactory = _ => DefaultPath,
    };
}
