using CookieProxy.Cookies;
using CookieProxy.Host.Cli;

namespace CookieProxy.Host;

internal static class Program
{
    private static int Main(string[] args)
    {
        // Backend sockets are read and written by the capture thread itself; the runtime's socket engine only
        // completes connects, the readability fallback and the send loop. Inline completions handle its epoll
        // events on the engine thread instead of waking a thread-pool worker for every readiness edge of
        // every backend socket (each data arrival), which cost a futex wake-up and a context switch apiece.
        // Read once by the engine's static initialiser (System.Net.Sockets, SocketAsyncEngine.Unix.cs), so it
        // must be set before the first socket; an explicit setting by the operator wins.
        if (Environment.GetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS") is null)
        {
            Environment.SetEnvironmentVariable("DOTNET_SYSTEM_NET_SOCKETS_INLINE_COMPLETIONS", "1");
        }
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
