using System.Net;
using System.Net.Sockets;

namespace CookieProxy.Tests.Os;

/// <summary>
/// A checker for the part of the pf.conf(5) grammar that <c>cookieproxy pf-rules</c> and --hide-port emit
/// (documented in src/CookieProxy/Os/PfRules.cs). There is no pf(4) on the Linux build machine, so
/// <c>pfctl -nf</c> cannot be asked; this fixture holds every emitted line to the grammar instead:
/// <code>
/// line        = comment | anchor-rule | load-anchor | pf-rule
/// comment     = "#" { any character }
/// anchor-rule = "anchor" string
/// load-anchor = "load anchor" string "from" filename        ; after the anchor rule of the same name
/// pf-rule     = "block" "drop" "in" "quick" [ "on" interface-name ] af "proto" "tcp" hosts
/// af          = "inet" | "inet6"                            ; the family of the address
/// hosts       = "from" "any" "to" address "port" number    ; 1..65535
/// string      = '"' name '"'
/// </code>
/// From pf.conf(5) (OpenBSD, FreeBSD, macOS 10.9+): pf-rule = action [("in"|"out")] ["log"] ["quick"] ["on" ifspec]
/// [af] [protospec] hosts [filteropts]; action "block" [return], return = "drop" | ...; "load anchor" string
/// "from" filename, which "must be placed after the anchor rule".
/// </summary>
internal static class PfConfGrammar
{
    /// <summary>Null when every line of <paramref name="text"/> is in the grammar, else "line N: why".</summary>
    public static string? Check(string text)
    {
        var anchors = new HashSet<string>(StringComparer.Ordinal);
        string[] lines = text.Split('\n');
        for (int i = 0; i < lines.Length; i++)
        {
            string line = lines[i].Trim();
            if (line.Length == 0 || line[0] == '#')
            {
                continue;
            }
            if (!TryTokenize(line, out List<string> tokens, out string? tokenError))
            {
                return $"line {i + 1}: {tokenError}: {line}";
            }
            string? error = tokens[0] switch
            {
                "anchor" => CheckAnchor(tokens, anchors),
                "load" => CheckLoadAnchor(tokens, anchors),
                "block" => CheckBlock(tokens),
                _ => $"'{tokens[0]}' starts no statement of the grammar",
            };
            if (error is not null)
            {
                return $"line {i + 1}: {error}: {line}";
            }
        }
        return null;
    }

    private static string? CheckAnchor(List<string> t, HashSet<string> anchors)
    {
        if (t.Count != 2 || !TryName(t[1], out string name))
        {
            return "anchor-rule is `anchor \"name\"`";
        }
        anchors.Add(name);
        return null;
    }

    private static string? CheckLoadAnchor(List<string> t, HashSet<string> anchors)
    {
        if (t.Count != 5 || t[1] != "anchor" || t[3] != "from" || !TryName(t[2], out string name) || !IsQuoted(t[4]))
        {
            return "load-anchor is `load anchor \"name\" from \"file\"`";
        }
        if (!anchors.Contains(name))
        {
            return $"load anchor \"{name}\" comes before its anchor rule";
        }
        if (!t[4].Trim('"').StartsWith('/'))
        {
            return "the anchor file is not an absolute path";
        }
        return null;
    }

    private static string? CheckBlock(List<string> t)
    {
        int i = 0;
        foreach (string word in new[] { "block", "drop", "in", "quick" })
        {
            if (i >= t.Count || t[i] != word)
            {
                return $"pf-rule wants '{word}' at word {i + 1}";
            }
            i++;
        }
        if (i < t.Count && t[i] == "on")
        {
            if (i + 1 >= t.Count || !IsInterfaceName(t[i + 1]))
            {
                return "'on' wants an interface name";
            }
            i += 2;
        }
        if (i >= t.Count || t[i] is not ("inet" or "inet6"))
        {
            return "pf-rule wants an address family (inet or inet6)";
        }
        AddressFamily family = t[i] == "inet" ? AddressFamily.InterNetwork : AddressFamily.InterNetworkV6;
        i++;
        foreach (string word in new[] { "proto", "tcp", "from", "any", "to" })
        {
            if (i >= t.Count || t[i] != word)
            {
                return $"pf-rule wants '{word}' at word {i + 1}";
            }
            i++;
        }
        if (i >= t.Count || !IPAddress.TryParse(t[i], out IPAddress? address))
        {
            return "'to' wants an address";
        }
        if (address.AddressFamily != family)
        {
            return $"address {address} is not of family {(family == AddressFamily.InterNetwork ? "inet" : "inet6")}";
        }
        i++;
        if (i + 1 >= t.Count || t[i] != "port" || !int.TryParse(t[i + 1], out int port) || port is < 1 or > 65535)
        {
            return "the address wants `port N` with N in 1..65535";
        }
        i += 2;
        return i == t.Count ? null : $"unexpected '{t[i]}' after the port";
    }

    private static bool TryTokenize(string line, out List<string> tokens, out string? error)
    {
        tokens = new List<string>();
        error = null;
        int i = 0;
        while (i < line.Length)
        {
            if (char.IsWhiteSpace(line[i]))
            {
                i++;
                continue;
            }
            int start = i;
            if (line[i] == '"')
            {
                int end = line.IndexOf('"', i + 1);
                if (end < 0)
                {
                    error = "unterminated string";
                    return false;
                }
                i = end + 1;
            }
            else
            {
                while (i < line.Length && !char.IsWhiteSpace(line[i]))
                {
                    if (line[i] is '{' or '}' or '(' or ')' or '<' or '>' or '!' or '=' or ',' or ';' or '"')
                    {
                        error = $"'{line[i]}' outside a string";
                        return false;
                    }
                    i++;
                }
            }
            tokens.Add(line[start..i]);
        }
        return true;
    }

    private static bool IsQuoted(string token) => token.Length >= 2 && token[0] == '"' && token[^1] == '"';

    private static bool TryName(string token, out string name)
    {
        name = "";
        if (!IsQuoted(token))
        {
            return false;
        }
        name = token[1..^1];
        return name.Length > 0 && name.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '-' or '.' or '/' or '*');
    }

    private static bool IsInterfaceName(string token) =>
        token.Length is > 0 and <= 15 && char.IsAsciiLetter(token[0])
        && token.All(c => char.IsAsciiLetterOrDigit(c) || c is '_' or '.' or '-');
}
