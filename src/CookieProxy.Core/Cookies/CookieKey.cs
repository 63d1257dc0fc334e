using System.Globalization;
using System.Security.Cryptography;
using System.Text;
using CookieProxy.Crypto;

namespace CookieProxy.Cookies;

/// <summary>
/// The 128-bit cookie secret: from the OS CSPRNG, or from a key file shared by several instances.
/// <para>Key file: one key per line as 32 hex digits, the current key first, optionally the previous key second
/// (after <c>cookieproxy genkey --rotate FILE</c>); blank lines and lines starting with '#' are ignored, and so is
/// whitespace inside a line. A file of one key is the format before rotation existed.</para>
/// </summary>
public static class CookieKey
{
    public const int KeyBytes = 16;

    public static SipKey Generate()
    {
        Span<byte> key = stackalloc byte[KeyBytes];
        RandomNumberGenerator.Fill(key);
        return SipKey.FromBytes(key);
    }

    /// <summary>Parses a key file's text and returns its current key (the first).</summary>
    public static bool TryParse(string text, out SipKey key, out string error) => TryParse(text, out key, out _, out error);

    /// <summary>Parses a key file's text: the current key and, when the file has a second key, the previous one.</summary>
    public static bool TryParse(string text, out SipKey current, out SipKey? previous, out string error)
    {
        current = default;
        previous = null;
        var keys = new List<SipKey>(2);
        int lineNumber = 0;
        foreach (string rawLine in text.Split('\n'))
        {
            lineNumber++;
            string line = rawLine.Trim();
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }
            string hex = string.Concat(line.Where(c => !char.IsWhiteSpace(c)));
            if (keys.Count == 2)
            {
                error = $"line {lineNumber}: more than two keys (the current one, then the previous one)";
                return false;
            }
            if (!TryParseHex(hex, out SipKey key, out string keyError))
            {
                error = keys.Count == 0 && lineNumber == 1 ? keyError : $"line {lineNumber}: {keyError}";
                return false;
            }
            keys.Add(key);
        }
        if (keys.Count == 0)
        {
            error = $"expected {KeyBytes * 2} hex digits (a 128-bit key), found none";
            return false;
        }
        current = keys[0];
        previous = keys.Count > 1 ? keys[1] : null;
        error = "";
        return true;
    }

    private static bool TryParseHex(string hex, out SipKey key, out string error)
    {
        key = default;
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
    public static string NewKeyFileText() => FormatKeyFile(Generate(), previous: null);

    /// <summary>Key-file text for a current key and, after a rotation, the previous one.</summary>
    public static string FormatKeyFile(in SipKey current, SipKey? previous)
    {
        var sb = new StringBuilder();
        if (previous is not null)
        {
            sb.Append("# cookieproxy cookie keys: current, then previous (cookies made under it still validate)\n");
        }
        sb.Append(ToHex(current)).Append('\n');
        if (previous is SipKey p)
        {
            sb.Append(ToHex(p)).Append('\n');
        }
        return sb.ToString();
    }

    public static string ToHex(in SipKey key)
    {
        Span<byte> bytes = stackalloc byte[KeyBytes];
        key.WriteBytes(bytes);
        return Convert.ToHexStringLower(bytes);
    }
}
