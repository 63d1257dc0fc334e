namespace CookieProxy.Host;

internal static class Program
{
    private static int Main(string[] args)
    {
        Console.Error.WriteLine("cookieproxy: not implemented yet");
        return args.Length == 0 ? 2 : 1;
    }
}
