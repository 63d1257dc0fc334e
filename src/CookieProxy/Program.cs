using CookieProxy.Cookies;
using CookieProxy.Host.Cli;

namespace CookieProxy.Host;

internal static class Program
{
    private static int Main(string[] args)
    {
        ParseResult parsed = CommandLine.Parse(args);
        if (parsed.Error is not null)
        {
            Console.Error.WriteLine($"cookieproxy: {parsed.Error}");
            Console.Error.WriteLine("Try 'cookieproxy --help'.");
            return ProxyHost.ExitUsage;
        }
        if (parsed.Output is not null)
        {
            Console.Out.WriteLine(parsed.Output);
            return ProxyHost.ExitOk;
        }
        if (parsed.Command == "genkey")
        {
            string text = CookieKey.NewKeyFileText();
            if (parsed.Argument is null)
            {
                Console.Out.Write(text);
                return ProxyHost.ExitOk;
            }
            try
            {
                File.WriteAllText(parsed.Argument, text);
                if (!OperatingSystem.IsWindows())
                {
                    File.SetUnixFileMode(parsed.Argument, UnixFileMode.UserRead | UnixFileMode.UserWrite);
                }
                return ProxyHost.ExitOk;
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException)
            {
                Console.Error.WriteLine($"cookieproxy: genkey {parsed.Argument}: {e.Message}");
                return ProxyHost.ExitRuntimeError;
            }
        }
        return ProxyHost.Run(parsed.Options!, Console.Error);
    }
}
