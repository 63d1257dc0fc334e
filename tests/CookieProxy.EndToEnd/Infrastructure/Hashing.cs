using System.Security.Cryptography;

namespace CookieProxy.EndToEnd.Infrastructure;

public static class Hashing
{
    public static string Sha256OfFile(string path)
    {
        using FileStream stream = File.OpenRead(path);
        return Convert.ToHexStringLower(SHA256.HashData(stream));
    }
}
