using System.Globalization;
using System.Security.Cryptography;
using CookieProxy.Crypto;

namespace CookieProxy.Cookies;

/// <summary>The 128-bit cookie secret: from the OS CSPRNG, or from a key file shared by several instances.</summary>
public static class CookieKey
{
    public const int KeyBytes = 16;

    public static SipKey Generate()
    {
        Span<byte> key = stackalloc byte[KeyBytes];
        RandomNumberGenerator.Fill(key);
        return SipKey.FromBytes(key);
    }

    /// <summary>Parses a key file's text: 32 hex digits (whitespace and a trailing newline allowed).</summary>
    public static bool TryParse(string text, out SipKey key, out string error)
    {
        key = default;
        string hex = string.Concat(text.Where(c => !char.IsWhiteSpace(c)));
        if (hex.Length != KeyBytes * 2)
        {
            error = $"expected {KeyBytes * 2} hex digits (a 128-bit key), found {hex.Length} characters";
            return false;
        }
        Span<byte> bytes = stackalloc byte[KeyBytes];
        for (int i = 0; i < KeyBytes; i++)
        {
            if (!byte.TryParse(hex.AsSpan(i * 2, 2), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out bytes[i]))
            {
                error = $"'{hex.Substring(i * 2, 2)}' at position {i * 2} is not hexadecimal";
                return false;
            }
        }
        key = SipKey.FromBytes(bytes);
        error = "";
        return true;
    }

    /// <summary>Formats a fresh random key as key-file text.</summary>
    public static string NewKeyFileText()
    {
        Span<byte> key = stackalloc byte[KeyBytes];
        RandomNumberGenerator.Fill(key);
        return Convert.ToHexStringLower(key) + "\n";
    }
}
