using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using System.Text;
using CookieProxy.Host.Cli;
using CookieProxy.Platform;

namespace CookieProxy.Host.Os;

/// <summary>
/// Tells the host kernel to drop inbound packets to the protected endpoints, so it never answers them
/// itself (no RST for a port nobody listens on, no SYN queue to fill). Capture taps (libpcap, AF_PACKET)
/// see frames before netfilter/pf, so CookieProxy still receives them. Removed again on dispose.
/// Linux: nftables, a table of our own whose chain sits on the interface's ingress hook (Linux ≥ 5.10 for
/// the inet family): after the capture taps, before IP input, so a flood costs the host no ip_rcv and no
/// conntrack; on older kernels the prerouting hook at raw priority (still before conntrack); falling back
/// to iptables in the raw table. BSD/macOS: a pf anchor.
/// </summary>
public sealed class PortHider : IDisposable
{
    /// <summary>Table names are per process (cookieproxy_PID) so that one instance exiting never removes
    /// another instance's rules; tables of processes that no longer exist are swept at start.</summary>
    public const string NftTablePrefix = "cookieproxy_";

    public static string NftTable => NftTablePrefix + Environment.ProcessId.ToString(System.Globalization.CultureInfo.InvariantCulture);
    private readonly Action _remove;
    private readonly Func<IReadOnlyList<ListenerOptions>, string?> _update;
    private bool _disposed;

    private PortHider(string method, Action remove, Func<IReadOnlyList<ListenerOptions>, string?> update)
    {
        Method = method;
        _remove = remove;
        _update = update;
    }

    public string Method { get; }

    /// <summary>A reload changed the listeners: the rule set now drops exactly these endpoints (nft and pf swap it in
    /// one transaction; iptables adds the new rules before deleting the old). Null, or why not (nothing changed).</summary>
    public string? Update(IReadOnlyList<ListenerOptions> listeners) => _disposed ? "removed already" : _update(listeners);

    /// <param name="os">The OS to choose for (<see cref="HostOs.Current"/>; tests simulate macOS).</param>
    /// <param name="pfctl">pfctl(8) for the pf path (tests pass a fake).</param>
    public static PortHider Install(string interfaceName, IReadOnlyList<ListenerOptions> listeners, HostOs? os = null,
        PfRules.Pfctl? pfctl = null)
    {
        if ((os ?? HostOs.Current).IsLinux)
        {
            if (TryRun("nft", "--version", null, out _))
            {
                SweepStaleNftTables();
                string method = "nftables (ingress hook)";
                bool ingress = true;
                if (!TryRun("nft", "-f -", BuildNftScript(interfaceName, listeners, ingressHook: true), out string err))
                {
                    // Kernels before 5.10 have no ingress hook in the inet family: prerouting it is.
                    method = "nftables (prerouting)";
                    ingress = false;
                    if (!TryRun("nft", "-f -", BuildNftScript(interfaceName, listeners, ingressHook: false), out string err2))
                    {
                        throw new InvalidOperationException($"--hide-port: nft rejected the rule set: {err2.Trim()} (ingress hook: {err.Trim()})");
                    }
                }
                return new PortHider(method, () => TryRun("nft", $"delete table inet {NftTable}", null, out _), next =>
                    // One nft transaction: the flush and the new rules apply together or not at all.
                    TryRun("nft", "-f -", $"flush table inet {NftTable}\n" + BuildNftScript(interfaceName, next, ingress), out string updateError)
                        ? null
                        : $"nft rejected the new rule set: {updateError.Trim()}");
            }
            var added = new List<string>();
            foreach (string rule in BuildIptablesRules(interfaceName, listeners))
            {
                string tool = rule.StartsWith("-6 ", StringComparison.Ordinal) ? "ip6tables" : "iptables";
                string args = rule.StartsWith("-6 ", StringComparison.Ordinal) ? rule[3..] : rule;
                if (!TryRun(tool, "-w -t raw -I PREROUTING " + args, null, out string err))
                {
                    throw new InvalidOperationException($"--hide-port: neither nft nor {tool} worked: {err.Trim()}");
                }
                added.Add(rule);
            }
            static bool Iptables(string verb, string rule, out string error)
            {
                string tool = rule.StartsWith("-6 ", StringComparison.Ordinal) ? "ip6tables" : "iptables";
                string args = rule.StartsWith("-6 ", StringComparison.Ordinal) ? rule[3..] : rule;
                return TryRun(tool, $"-w -t raw {verb} PREROUTING " + args, null, out error);
            }
            return new PortHider("iptables", () =>
            {
                foreach (string rule in added)
                {
                    Iptables("-D", rule, out _);
                }
            }, next =>
            {
                var wanted = BuildIptablesRules(interfaceName, next).ToList();
                foreach (string rule in wanted.Except(added).ToList())
                {
                    if (!Iptables("-I", rule, out string error))
                    {
                        return $"iptables: {error.Trim()}";
                    }
                    added.Add(rule);
                }
                foreach (string rule in added.Except(wanted).ToList())
                {
                    Iptables("-D", rule, out _);
                    added.Remove(rule);
                }
                return null;
            });
        }

        // macOS / FreeBSD: a pf anchor, checked to be referenced by the main ruleset (Os/PfRules.cs). pfctl -f
        // replaces the anchor's rules in one step, so a reload swaps them whole.
        PfRules.Pfctl run = pfctl ?? PfRules.SystemPfctl;
        Action flush = PfRules.Install(interfaceName, listeners.Select(l => l.Listen), run);
        return new PortHider($"pf anchor {PfRules.AnchorName}", flush,
            next => PfRules.Load(interfaceName, next.Select(l => l.Listen), run));
    }

    /// <summary>
    /// The nftables rule set. With <paramref name="ingressHook"/>: a chain on the interface's ingress hook,
    /// which __netif_receive_skb_core runs after the packet taps (our capture) and before the protocol
    /// handlers (ip_rcv), so a dropped flood SYN costs one rule lookup instead of IP input (in the lab: ~9%
    /// of the server CPU at full trafgen rate went to ip_rcv + the prerouting hook). Without: prerouting
    /// at priority raw (-300), before conntrack (nftables wiki "Netfilter hooks"). Neither lets a flood
    /// packet create a conntrack entry.
    /// </summary>
    public static string BuildNftScript(string interfaceName, IReadOnlyList<ListenerOptions> listeners, bool ingressHook = true)
    {
        var sb = new StringBuilder();
        sb.Append(CultureInfoInvariant($"table inet {NftTable} {{\n"));
        if (ingressHook)
        {
            sb.Append(CultureInfoInvariant($"  chain ingress {{\n    type filter hook ingress device \"{interfaceName}\" priority -500; policy accept;\n"));
        }
        else
        {
            sb.Append("  chain prerouting {\n    type filter hook prerouting priority raw; policy accept;\n");
        }
        foreach (ListenerOptions l in listeners)
        {
            string ipKind = l.Listen.AddressFamily == AddressFamily.InterNetworkV6 ? "ip6" : "ip";
            string match = ingressHook ? "" : CultureInfoInvariant($"iifname \"{interfaceName}\" ");
            sb.Append(CultureInfoInvariant(
                $"    {match}{ipKind} daddr {l.Listen.Address} tcp dport {l.Listen.Port} counter drop\n"));
        }
        AppendFragmentRules(sb, interfaceName, listeners, ingressHook);
        sb.Append("  }\n}\n");
        return sb.ToString();
    }

    /// <summary>
    /// hostile (issue 12.5): TCP fragments to a protected address are dropped before the host reassembles them. A
    /// cookie SYN or ACK is never fragmented, and non-first fragments carry no port, so the port rule above misses
    /// them: they would fill the host's reassembly queue (IpReasmReqds) and a reassembled SYN would reach the
    /// stack the rule hides the port from. The capture still sees and counts them (DropReason.Ipv4Fragment). Every
    /// TCP fragment to the address goes, whatever its port (TCP relies on path MTU discovery; nothing legitimate
    /// sends it fragmented).
    /// </summary>
    private static void AppendFragmentRules(StringBuilder sb, string interfaceName, IReadOnlyList<ListenerOptions> listeners, bool ingressHook)
    {
        string match = ingressHook ? "" : CultureInfoInvariant($"iifname \"{interfaceName}\" ");
        var done = new HashSet<IPAddress>();
        foreach (ListenerOptions l in listeners)
        {
            if (!done.Add(l.Listen.Address))
            {
                continue;
            }
            bool v6 = l.Listen.AddressFamily == AddressFamily.InterNetworkV6;
            bool any = l.Listen.Address.Equals(IPAddress.Any) || l.Listen.Address.Equals(IPAddress.IPv6Any);
            string daddr = any ? (v6 ? "meta nfproto ipv6 " : "meta nfproto ipv4 ") : CultureInfoInvariant($"{(v6 ? "ip6" : "ip")} daddr {l.Listen.Address} ");
            sb.Append(v6
                ? CultureInfoInvariant($"    {match}{daddr}exthdr frag exists frag nexthdr tcp counter drop\n")
                : CultureInfoInvariant($"    {match}{daddr}ip protocol tcp ip frag-off & 0x3fff != 0 counter drop\n"));
        }
    }

    /// <summary>Deletes cookieproxy_PID tables whose process is gone (a crashed or killed earlier run).</summary>
    private static void SweepStaleNftTables() => LeftoverCleaner.RemoveStaleNftTables(dryRun: false, report: null);

    public static IEnumerable<string> BuildIptablesRules(string interfaceName, IReadOnlyList<ListenerOptions> listeners)
    {
        foreach (ListenerOptions l in listeners)
        {
            string prefix = l.Listen.AddressFamily == AddressFamily.InterNetworkV6 ? "-6 " : "";
            // The comment names the process, so `cookieproxy cleanup` finds the rules of one that was killed.
            yield return prefix + CultureInfoInvariant($"-i {interfaceName} -p tcp -d {l.Listen.Address} --dport {l.Listen.Port} -m comment --comment {NftTable} -j DROP");
        }
    }

    private static string CultureInfoInvariant(FormattableString s) => FormattableString.Invariant(s);

    internal static bool TryRun(string file, string args, string? stdin, out string stderr) => TryRun(file, args, stdin, out stderr, out _);

    internal static bool TryRun(string file, string args, string? stdin, out string stderr, out string stdout)
    {
        stdout = "";
        try
        {
            var psi = new ProcessStartInfo(file, args)
            {
                RedirectStandardInput = stdin is not null,
                RedirectStandardError = true,
                RedirectStandardOutput = true,
                UseShellExecute = false,
            };
            using Process p = Process.Start(psi)!;
            if (stdin is not null)
            {
                p.StandardInput.Write(stdin);
                p.StandardInput.Close();
            }
            Task<string> err = p.StandardError.ReadToEndAsync();
            stdout = p.StandardOutput.ReadToEnd();
            if (!p.WaitForExit(10_000))
            {
                p.Kill();
                stderr = $"{file} timed out";
                return false;
            }
            stderr = err.Result;
            return p.ExitCode == 0;
        }
        catch (Exception e) when (e is System.ComponentModel.Win32Exception or InvalidOperationException)
        {
            stderr = $"{file}: {e.Message}";
            return false;
        }
    }

    public void Dispose()
    {
        if (!_disposed)
        {
            _disposed = true;
            _remove();
        }
    }
}
