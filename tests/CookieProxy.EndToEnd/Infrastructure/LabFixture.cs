using System.Text;

namespace CookieProxy.EndToEnd.Infrastructure;

/// <summary>
/// Brings the netns lab up once for the whole run (<c>scripts/lab.sh up</c>) and always tears it down
/// (<c>scripts/lab.sh down</c>). Missing root or tools make every test FAIL with the reason, in the
/// spirit of nft_synproxy.sh telling SKIP from FAIL: only COOKIEPROXY_SKIP_E2E=1 skips, visibly.
/// </summary>
public sealed class LabFixture : IDisposable
{
    /// <summary>CP_LAB_ID suffixes the namespace names (as scripts/lib/common.sh does), so labs of several
    /// checkouts can run side by side.</summary>
    public static readonly string LabSuffix = Environment.GetEnvironmentVariable("CP_LAB_ID") is { Length: > 0 } id ? "-" + id : "";
    public static readonly string ServerNs = "cp-srv" + LabSuffix;
    public static readonly string ClientNs = "cp-cli" + LabSuffix;
    public const string ServerDev = "cp-s0";
    public const string ClientDev = "cp-c0";
    public const string ServerIp = "198.18.0.1";
    public const string ClientIp = "198.18.0.2";
    public const int ProtectedPort = 80;

    private static readonly string[] s_requiredTools =
        ["ip", "nft", "tc", "ethtool", "curl", "hping3", "tcpdump", "wrk", "python3", "/usr/sbin/apache2"];

    private readonly string? _notReady;

    public LabFixture()
    {
        RepoRoot = FindRepoRoot();
        LabScript = Path.Combine(RepoRoot, "scripts", "lab.sh");
        LabDir = Environment.GetEnvironmentVariable("CP_LABDIR") ?? "/tmp/cookieproxy-lab" + LabSuffix;
        CacheDir = Environment.GetEnvironmentVariable("CP_CACHEDIR") ?? "/var/tmp/cookieproxy-lab-cache";
        string bin = Environment.GetEnvironmentVariable("COOKIEPROXY_BIN") ?? "out/cookieproxy";
        BinaryPath = Path.IsPathRooted(bin) ? bin : Path.Combine(RepoRoot, bin);

        if (SkipRequested)
        {
            Console.Error.WriteLine($"CookieProxy.EndToEnd: {SkipReason}");
            return;
        }

        _notReady = CheckPrerequisites();
        if (_notReady is not null)
        {
            return;
        }

        CommandResult up = RunLabRaw(["up"], TimeSpan.FromMinutes(3));
        SetupLog = up.ToString();
        if (!up.Succeeded)
        {
            _notReady = "scripts/lab.sh up failed:\n" + up;
            RunLabRaw(["down"], TimeSpan.FromMinutes(1));
        }
    }

    public static bool SkipRequested => Environment.GetEnvironmentVariable("COOKIEPROXY_SKIP_E2E") == "1";

    public static string SkipReason => "COOKIEPROXY_SKIP_E2E=1: end-to-end tests skipped (they need root, network namespaces and the lab tools)";

    public string RepoRoot { get; }

    public string LabScript { get; }

    public string LabDir { get; }

    public string CacheDir { get; }

    public string BinaryPath { get; }

    public string StatsPath => Path.Combine(LabDir, "stats.json");

    public string ProxyLogPath => Path.Combine(LabDir, "proxy.log");

    public string AccessLogPath => Path.Combine(LabDir, "apache", "logs", "access.log");

    public string RemoteIpLogPath => Path.Combine(LabDir, "apache", "logs", "remoteip.log");

    public string SetupLog { get; private set; } = "";

    /// <summary>Fails the calling test (never skips it) when the lab could not be built.</summary>
    public void RequireReady()
    {
        if (_notReady is not null)
        {
            Assert.Fail("end-to-end prerequisites missing (set COOKIEPROXY_SKIP_E2E=1 to skip deliberately): " + _notReady);
        }
    }

    public CommandResult RunLabRaw(IEnumerable<string> args, TimeSpan timeout, Action<string>? log = null) =>
        CommandRunner.Run("bash", [LabScript, .. args], timeout, log);

    public void Dispose()
    {
        if (!SkipRequested)
        {
            RunLabRaw(["down"], TimeSpan.FromMinutes(1));
        }
    }

    /// <summary>The sha256 of a served file, from the SHA256SUMS that lab.sh writes into the cache.</summary>
    public string ExpectedSha256(string name)
    {
        foreach (string line in File.ReadAllLines(Path.Combine(CacheDir, "SHA256SUMS")))
        {
            string[] parts = line.Split(' ', 2, StringSplitOptions.RemoveEmptyEntries);
            if (parts.Length == 2 && parts[1].TrimStart('*') == name)
            {
                return parts[0];
            }
        }

        throw new InvalidOperationException($"{name} not in SHA256SUMS");
    }

    private static string? CheckPrerequisites()
    {
        var problems = new StringBuilder();
        CommandResult id = CommandRunner.Run("id", ["-u"], TimeSpan.FromSeconds(10));
        if (id.StdOut.Trim() != "0")
        {
            problems.AppendLine("not running as root (uid " + id.StdOut.Trim() + ")");
        }

        foreach (string tool in s_requiredTools)
        {
            CommandResult which = CommandRunner.Run("bash", ["-c", "command -v \"$0\"", tool], TimeSpan.FromSeconds(10));
            if (!which.Succeeded)
            {
                problems.AppendLine($"missing tool: {tool} (run scripts/install-deps.sh)");
            }
        }

        return problems.Length == 0 ? null : problems.ToString();
    }

    private static string FindRepoRoot()
    {
        string? dir = AppContext.BaseDirectory;
        while (dir is not null)
        {
            if (File.Exists(Path.Combine(dir, "CookieProxy.sln")) && File.Exists(Path.Combine(dir, "scripts", "lab.sh")))
            {
                return dir;
            }

            dir = Path.GetDirectoryName(dir);
        }

        throw new InvalidOperationException("cannot find the repository root (CookieProxy.sln + scripts/lab.sh) above " + AppContext.BaseDirectory);
    }
}

[CollectionDefinition(Name)]
public sealed class LabCollection : ICollectionFixture<LabFixture>
{
    public const string Name = "lab";
}

/// <summary>A fact that needs the lab; skipped (visibly) only when COOKIEPROXY_SKIP_E2E=1.</summary>
public sealed class LabFactAttribute : FactAttribute
{
    public LabFactAttribute()
    {
        if (LabFixture.SkipRequested)
        {
            Skip = LabFixture.SkipReason;
        }
    }
}

/// <summary>A theory that needs the lab; skipped (visibly) only when COOKIEPROXY_SKIP_E2E=1.</summary>
public sealed class LabTheoryAttribute : TheoryAttribute
{
    public LabTheoryAttribute()
    {
        if (LabFixture.SkipRequested)
        {
            Skip = LabFixture.SkipReason;
        }
    }
}
