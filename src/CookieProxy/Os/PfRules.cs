using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Text;

namespace CookieProxy.Host.Os;

/// <summary>
/// --hide-port on macOS and the BSDs: pf(4) drop rules in an anchor of our own, "cookieproxy". The proxy loads
/// the anchor at start (<c>pfctl -a cookieproxy -f -</c>) and flushes it at exit; the main ruleset (/etc/pf.conf)
/// must reference the anchor, or pf never evaluates what we load there. <c>cookieproxy pf-rules</c> prints the
/// lines to add (<see cref="Document"/>). Capture taps (BPF, libpcap) see a frame before pf filters it, so the
/// proxy still receives what the host stack no longer answers.
/// </summary>
/// <remarks>
/// The emitted text stays inside the part of the pf.conf(5) grammar below (macOS 10.9+ and FreeBSD share it
/// with OpenBSD). There is no pf on the Linux build machine, so `pfctl -nf` cannot be run there; the unit tests
/// hold every line we emit to this grammar instead (tests/CookieProxy.Tests/Os/PfConfGrammar.cs).
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
/// </remarks>
public static class PfRules
{
    public const string AnchorName = "cookieproxy";

    /// <summary>Where the anchor file lives, next to macOS's own /etc/pf.anchors/com.apple.</summary>
    public const string AnchorFile = "/etc/pf.anchors/cookieproxy";

    /// <summary>The lines /etc/pf.conf needs: the anchor hook (filter section), then the load of its file.</summary>
    public static string PfConfLines =>
        $"anchor \"{AnchorName}\"\nload anchor \"{AnchorName}\" from \"{AnchorFile}\"\n";

    /// <summary>
    /// The anchor's rules: drop every inbound TCP packet to each protected endpoint, on
    /// <paramref name="interfaceName"/> (all interfaces when null), <c>quick</c> so no later rule passes it.
    /// </summary>
    /// <exception cref="ArgumentException">The interface name is not a pf interface-name token.</exception>
    public static string AnchorRules(string? interfaceName, IEnumerable<IPEndPoint> endpoints)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        if (interfaceName is not null && !IsInterfaceName(interfaceName))
        {
            throw new ArgumentException($"'{interfaceName}' is not an interface name pf accepts (a letter, then letters, digits, '_', '.', '-'; at most 15)", nameof(interfaceName));
        }
        string on = interfaceName is null ? "" : $"on {interfaceName} ";
        var sb = new StringBuilder();
        foreach (IPEndPoint endpoint in endpoints)
        {
            string af = endpoint.AddressFamily == AddressFamily.InterNetworkV6 ? "inet6" : "inet";
            sb.Append(CultureInfo.InvariantCulture,
                $"block drop in quick {on}{af} proto tcp from any to {endpoint.Address} port {endpoint.Port}\n");
        }
        return sb.ToString();
    }

    /// <summary>What `cookieproxy pf-rules` prints: both parts, with what to do with them in comments. The whole
    /// text parses as pf.conf too (comments and rules), so an operator can check it with <c>pfctl -vnf</c>.</summary>
    public static string Document(string? interfaceName, IEnumerable<IPEndPoint> endpoints)
    {
        string rules = AnchorRules(interfaceName, endpoints);
        var sb = new StringBuilder();
        sb.Append("# pf configuration for cookieproxy --hide-port (macOS, FreeBSD).\n");
        sb.Append("# 1. Add these two lines to /etc/pf.conf, after its other anchor lines\n");
        sb.Append("#    (the filter section: after any scrub, nat and rdr rules):\n");
        sb.Append(PfConfLines);
        sb.Append(CultureInfo.InvariantCulture, $"# 2. Save the rules below as {AnchorFile}. With --hide-port, cookieproxy loads the\n");
        sb.Append("#    same rules into the anchor when it starts and flushes them when it stops; the file keeps\n");
        sb.Append("#    the port hidden from the host's own TCP stack from boot on.\n");
        sb.Append("# 3. Check, load and enable: pfctl -vnf /etc/pf.conf && pfctl -f /etc/pf.conf && pfctl -E\n");
        sb.Append(CultureInfo.InvariantCulture, $"# --- {AnchorFile} ---\n");
        sb.Append(rules.Length == 0 ? "# (no protected endpoints given: pass --listen ADDR:PORT)\n" : rules);
        return sb.ToString();
    }

    /// <summary>Whether <c>pfctl -s rules</c> (the main ruleset) evaluates our anchor: a line
    /// <c>anchor "cookieproxy" all</c> (or the wildcard <c>anchor "cookieproxy/*"</c>).</summary>
    public static bool MainRulesetHasAnchor(string pfctlShowRules)
    {
        foreach (string raw in pfctlShowRules.Split('\n'))
        {
            string line = raw.Trim();
            if (line.StartsWith($"anchor \"{AnchorName}\"", StringComparison.Ordinal)
                || line.StartsWith($"anchor \"{AnchorName}/*\"", StringComparison.Ordinal)
                || line.StartsWith($"anchor {AnchorName} ", StringComparison.Ordinal)
                || line == $"anchor {AnchorName}")
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>From <c>pfctl -s info</c>: true for "Status: Enabled", false for "Status: Disabled", null if neither.</summary>
    public static bool? IsEnabled(string pfctlShowInfo)
    {
        foreach (string raw in pfctlShowInfo.Split('\n'))
        {
            string line = raw.Trim();
            if (line.StartsWith("Status: Enabled", StringComparison.Ordinal))
            {
                return true;
            }
            if (line.StartsWith("Status: Disabled", StringComparison.Ordinal))
            {
                return false;
            }
        }
        return null;
    }

    /// <summary>
    /// Loads the drop rules into the anchor, after checking that pf would evaluate them: pf enabled and the main
    /// ruleset referencing the anchor. Without those checks pfctl accepts the rules and the port stays open, silently.
    /// Returns the action that flushes the anchor again.
    /// </summary>
    /// <exception cref="InvalidOperationException">One line saying what is missing and how to add it.</exception>
    public static Action Install(string interfaceName, IEnumerable<IPEndPoint> endpoints, Pfctl pfctl)
    {
        ArgumentNullException.ThrowIfNull(pfctl);
        string rules;
        try
        {
            rules = AnchorRules(interfaceName, endpoints);
        }
        catch (ArgumentException e)
        {
            throw new InvalidOperationException($"--hide-port: {e.Message}", e);
        }
        if (!pfctl("-s info", null, out string info, out string infoErr))
        {
            throw new InvalidOperationException($"--hide-port: cannot ask pf for its status (pfctl -s info): {OneLine(infoErr)}");
        }
        if (IsEnabled(info) == false)
        {
            throw new InvalidOperationException(
                "--hide-port: pf is disabled, so its rules drop nothing: add the lines `cookieproxy pf-rules` prints to /etc/pf.conf, then `pfctl -f /etc/pf.conf -E`");
        }
        if (!pfctl("-s rules", null, out string mainRules, out string rulesErr))
        {
            throw new InvalidOperationException($"--hide-port: cannot read pf's main ruleset (pfctl -s rules): {OneLine(rulesErr)}");
        }
        if (!MainRulesetHasAnchor(mainRules))
        {
            throw new InvalidOperationException(
                $"--hide-port: pf's main ruleset has no `anchor \"{AnchorName}\"`, so rules loaded there would never be evaluated: add the lines `cookieproxy pf-rules` prints to /etc/pf.conf, then `pfctl -f /etc/pf.conf`");
        }
        if (!pfctl($"-a {AnchorName} -f -", rules, out _, out string loadErr))
        {
            throw new InvalidOperationException($"--hide-port: pfctl rejected the anchor rules: {OneLine(loadErr)}");
        }
        return () => pfctl($"-a {AnchorName} -F rules", null, out _, out _);
    }

    /// <summary>Replaces the anchor's rules with those for <paramref name="endpoints"/> (a reload): null, or why not.</summary>
    public static string? Load(string interfaceName, IEnumerable<IPEndPoint> endpoints, Pfctl pfctl)
    {
        string rules;
        try
        {
            rules = AnchorRules(interfaceName, endpoints);
        }
        catch (ArgumentException e)
        {
            return e.Message;
        }
        return pfctl($"-a {AnchorName} -f -", rules, out _, out string error) ? null : $"pfctl: {OneLine(error)}";
    }

    /// <summary>Runs pfctl with <paramref name="arguments"/> (and <paramref name="stdin"/>); true on exit 0.</summary>
    public delegate bool Pfctl(string arguments, string? stdin, out string stdout, out string stderr);

    /// <summary>The real pfctl(8).</summary>
    public static Pfctl SystemPfctl { get; } = (string arguments, string? stdin, out string stdout, out string stderr) =>
        PortHider.TryRun("pfctl", arguments, stdin, out stderr, out stdout);

    private static bool IsInterfaceName(string name)
    {
        if (name.Length is 0 or > 15 || !char.IsAsciiLetter(name[0]))
        {
            return false;
        }
        foreach (char c in name)
        {
            if (!char.IsAsciiLetterOrDigit(c) && c is not ('_' or '.' or '-'))
            {
                return false;
            }
        }
        return true;
    }

    private static string OneLine(string text)
    {
        string trimmed = text.Trim();
        int newline = trimmed.IndexOf('\n', StringComparison.Ordinal);
        return newline < 0 ? trimmed : trimmed[..newline].TrimEnd() + " ...";
    }
}
