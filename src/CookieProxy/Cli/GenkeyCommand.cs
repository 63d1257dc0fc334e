using System.CommandLine;
using CookieProxy.Cookies;
using CookieProxy.Host.Cookies;
using CookieProxy.Host.Services;

namespace CookieProxy.Host.Cli;

/// <summary>`cookieproxy genkey [FILE]` and `cookieproxy genkey --rotate FILE`.</summary>
public static class GenkeyCommand
{
    public static Command Create()
    {
        var file = new Argument<string?>("FILE") { Description = "write the key here (mode 0600); default: stdout", Arity = ArgumentArity.ZeroOrOne };
        var rotate = new Option<string?>("--rotate")
        {
            Description = "rotate the key file: its current key becomes the previous one (cookies made under it keep validating "
                + "for their lifetime), a new current key is written (atomic rename); then reload the instances that share it",
            HelpName = "FILE",
        };
        var genkey = new Command("genkey", "Write a new 128-bit cookie key (hex), or rotate a key file.");
        genkey.Arguments.Add(file);
        genkey.Options.Add(rotate);
        genkey.SetAction(parsed =>
        {
            TextWriter output = parsed.InvocationConfiguration.Output;
            TextWriter error = parsed.InvocationConfiguration.Error;
            string? path = parsed.GetValue(file);
            string? rotatePath = parsed.GetValue(rotate);
            if (rotatePath is not null && path is not null)
            {
                CommandTree.WriteUsageError(error, genkey, "genkey --rotate FILE takes no second FILE");
                return ExitCodes.Usage;
            }
            if (rotatePath is not null)
            {
                if (!KeyFiles.TryRotate(rotatePath, out string? rotateError))
                {
                    error.WriteLine($"cookieproxy: genkey --rotate {rotatePath}: {rotateError}");
                    return rotateError!.StartsWith("cannot", StringComparison.Ordinal) ? ExitCodes.RuntimeError : ExitCodes.Usage;
                }
                output.WriteLine($"{rotatePath}: rotated (new current key; the old one is now the previous key). Reload the instances that use it.");
                return ExitCodes.Ok;
            }
            if (path is null)
            {
                output.Write(CookieKey.NewKeyFileText());
                return ExitCodes.Ok;
            }
            if (!KeyFiles.TryWriteNew(path, out string? writeError))
            {
                error.WriteLine($"cookieproxy: genkey {path}: {writeError}");
                return ExitCodes.RuntimeError;
            }
            return ExitCodes.Ok;
        });
        return genkey;
    }
}
