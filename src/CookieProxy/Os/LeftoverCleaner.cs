using System.Globalization;
using System.Text.Json;

namespace CookieProxy.Host.Os;

/// <summary>
/// `cookieproxy cleanup` (ExecStopPost=): removes what an instance that could not clean up (SIGKILL, OOM, power
/// cut of a container) left in this network namespace: its nftables table (cookieproxy_PID), its iptables/ip6tables
/// rules (commented cookieproxy_PID), XDP programs of ours (cp_xdp_*) still attached through netlink, and on
/// BSD/macOS the pf anchor's rules. Only leftovers of processes that no longer exist are touched, so it is safe
/// while other instances run. (Our XDP programs are attached through bpf links, which the kernel removes with the
/// process; the netlink check is for programs attached by hand or by an older build.)
/// </summary>
public static class LeftoverCleaner
{
    /// <summary>What was (or, with <paramref name="dryRun"/>, would be) removed, one line each; and failures.</summary>
    public static (List<string> Removed, List<string> Failed) Run(bool dryRun)
    {
        var removed = new List<string>();
        var failed = new List<string>();
        void Report(string what, string? error)
        {
            if (error is null)
            {
                removed.Add(what);
            }
            else
            {
                failed.Add($"{what}: {error}");
            }
        }
        if (OperatingSystem.IsLinux())
        {
            RemoveStaleNftTables(dryRun, Report);
            RemoveStaleIptablesRules("iptables", dryRun, Report);
            RemoveStaleIptablesRules("ip6tables", dryRun, Report);
            DetachStaleXdpPrograms(dryRun, Report);
        }
        else if (!OperatingSystem.IsWindows())
        {
            // pf has one anchor for every instance (PortHider): flush it only when no other instance runs.
            if (!OtherInstanceRunning())
            {
                if (PortHider.TryRun("pfctl", "-a cookieproxy -s rules", null, out _, out string rules) && rules.Trim().Length > 0)
                {
                    string what = "pf anchor cookieproxy rules";
                    if (dryRun)
                    {
                        Report(what, null);
                    }
                    else
                    {
                        Report(what, PortHider.TryRun("pfctl", "-a cookieproxy -F rules", null, out string err) ? null : err.Trim());
                    }
                }
            }
        }
        return (removed, failed);
    }

    /// <summary>True when <paramref name="pid"/> names a live process (Linux: /proc; elsewhere: ask the runtime).</summary>
    public static bool ProcessAlive(int pid)
    {
        if (pid == Environment.ProcessId)
        {
            return true;
        }
        if (OperatingSystem.IsLinux())
        {
            return Directory.Exists($"/proc/{pid}");
        }
        try
        {
            using var p = System.Diagnostics.Process.GetProcessById(pid);
            return !p.HasExited;
        }
        catch (ArgumentException)
        {
            return false;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }

    /// <summary>The pid in a "cookieproxy_PID" name, if the name is one of ours (the lab's cookieproxy_lab is not).</summary>
    public static int? PidOf(string name)
    {
        if (!name.StartsWith(PortHider.NftTablePrefix, StringComparison.Ordinal))
        {
            return null;
        }
        ReadOnlySpan<char> digits = name.AsSpan(PortHider.NftTablePrefix.Length);
        if (digits.Length == 0 || !int.TryParse(digits, NumberStyles.None, CultureInfo.InvariantCulture, out int pid) || pid <= 0)
        {
            return null;
        }
        return pid;
    }

    internal static void RemoveStaleNftTables(bool dryRun, Action<string, string?>? report)
    {
        if (!PortHider.TryRun("nft", "list tables inet", null, out _, out string listing))
        {
            return;
        }
        foreach (string line in listing.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            // "table inet cookieproxy_1234"
            string[] words = line.Split(' ');
            if (words.Length == 3 && PidOf(words[2]) is int pid && !ProcessAlive(pid))
            {
                string what = $"nft table inet {words[2]} (process {pid} is gone)";
                if (dryRun)
                {
                    report?.Invoke(what, null);
                    continue;
                }
                bool ok = PortHider.TryRun("nft", $"delete table inet {words[2]}", null, out string err);
                report?.Invoke(what, ok ? null : err.Trim());
            }
        }
    }

    private static void RemoveStaleIptablesRules(string tool, bool dryRun, Action<string, string?> report)
    {
        if (!PortHider.TryRun(tool, "-w -t raw -S PREROUTING", null, out _, out string listing))
        {
            return; // no such tool, or no raw table: nothing of ours there
        }
        foreach (string line in listing.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            // "-A PREROUTING -d 198.18.0.1/32 -i cp-s0 -p tcp -m tcp --dport 80 -m comment --comment cookieproxy_1234 -j DROP"
            const string Append = "-A PREROUTING ";
            int comment = line.IndexOf("--comment ", StringComparison.Ordinal);
            if (!line.StartsWith(Append, StringComparison.Ordinal) || comment < 0)
            {
                continue;
            }
            string name = line[(comment + "--comment ".Length)..].Split(' ')[0].Trim('"');
            if (PidOf(name) is not int pid || ProcessAlive(pid))
            {
                continue;
            }
            string rule = line[Append.Length..];
            string what = $"{tool} raw PREROUTING rule {rule} (process {pid} is gone)";
            if (dryRun)
            {
                report(what, null);
                continue;
            }
            bool ok = PortHider.TryRun(tool, "-w -t raw -D PREROUTING " + rule, null, out string err);
            report(what, ok ? null : err.Trim());
        }
    }

    private static void DetachStaleXdpPrograms(bool dryRun, Action<string, string?> report)
    {
        if (!PortHider.TryRun("ip", "-j -d link show", null, out _, out string json))
        {
            return;
        }
        List<(string Interface, string Program, int Mode)> attached;
        try
        {
            attached = ParseXdpPrograms(json);
        }
        catch (JsonException)
        {
            return;
        }
        foreach ((string ifname, string program, int mode) in attached)
        {
            if (!program.StartsWith("cp_xdp", StringComparison.Ordinal))
            {
                continue;
            }
            string what = $"XDP program {program} on {ifname}";
            if (dryRun)
            {
                report(what, null);
                continue;
            }
            // XDP_ATTACHED_DRV = 1, SKB = 2, HW = 3 (linux/if_link.h). A program held by a live process's bpf link
            // cannot be removed this way (the kernel answers EBUSY): only leftovers go.
            string kind = mode switch
            {
                2 => "xdpgeneric",
                3 => "xdpoffload",
                _ => "xdpdrv",
            };
            bool ok = PortHider.TryRun("ip", $"link set dev {ifname} {kind} off", null, out string err);
            if (!ok && err.Contains("link", StringComparison.OrdinalIgnoreCase))
            {
                continue; // attached through a bpf link: a live instance's, not a leftover
            }
            report(what, ok ? null : err.Trim());
        }
    }

    /// <summary>The XDP programs `ip -j -d link show` reports: (interface, program name, attach mode).</summary>
    public static List<(string Interface, string Program, int Mode)> ParseXdpPrograms(string json)
    {
        var result = new List<(string, string, int)>();
        using JsonDocument doc = JsonDocument.Parse(json);
        foreach (JsonElement link in doc.RootElement.EnumerateArray())
        {
            if (!link.TryGetProperty("ifname", out JsonElement ifname) || !link.TryGetProperty("xdp", out JsonElement xdp))
            {
                continue;
            }
            int mode = xdp.TryGetProperty("mode", out JsonElement m) && m.ValueKind == JsonValueKind.Number ? m.GetInt32() : 0;
            if (xdp.TryGetProperty("prog", out JsonElement prog) && prog.TryGetProperty("name", out JsonElement name))
            {
                result.Add((ifname.GetString() ?? "", name.GetString() ?? "", mode));
            }
            if (xdp.TryGetProperty("attached", out JsonElement list) && list.ValueKind == JsonValueKind.Array)
            {
                foreach (JsonElement a in list.EnumerateArray())
                {
                    int am = a.TryGetProperty("mode", out JsonElement amode) && amode.ValueKind == JsonValueKind.Number ? amode.GetInt32() : mode;
                    if (a.TryGetProperty("prog", out JsonElement ap) && ap.TryGetProperty("name", out JsonElement an))
                    {
                        result.Add((ifname.GetString() ?? "", an.GetString() ?? "", am));
                    }
                }
            }
        }
        return result;
    }

    private static bool OtherInstanceRunning()
    {
        foreach (System.Diagnostics.Process p in System.Diagnostics.Process.GetProcessesByName("cookieproxy"))
        {
            using (p)
            {
                if (p.Id != Environment.ProcessId)
                {
                    return true;
                }
            }
        }
        return false;
    }
}
