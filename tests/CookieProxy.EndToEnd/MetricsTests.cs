using System.Globalization;
using System.Text.Json;
using CookieProxy.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace CookieProxy.EndToEnd;

/// <summary>Issue 11.7: /metrics is valid Prometheus text (promtool) and says what `stats` says.</summary>
[Trait("Tier", "ops")]
public sealed class MetricsTests : LabTestBase
{
    private const string MetricsUrl = "http://198.18.0.1:9100/metrics";

    public MetricsTests(LabFixture lab, ITestOutputHelper output)
        : base(lab, output)
    {
    }

    private string Scrape()
    {
        CommandResult r = InServer(ShortTimeout, "curl", "-fsS", "--max-time", "5", MetricsUrl);
        Assert.True(r.Succeeded, r.ToString());
        return r.StdOut;
    }

    private static Dictionary<string, double> Samples(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith('#'))
            .ToDictionary(l => l[..l.LastIndexOf(' ')], l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], CultureInfo.InvariantCulture));

    [LabFact]
    public void Metrics_pass_promtool_and_their_counters_match_stats()
    {
        Assert.True(File.Exists("/usr/bin/promtool"), "promtool is missing (Debian package prometheus; scripts/install-deps.sh)");
        StartProxy("--metrics-listen", "198.18.0.1:9100");
        var scrapes = new List<string>();
        RunBoundedSynFlood(() =>
        {
            // Scraped once a second during the flood, as Prometheus would.
            for (int i = 0; i < 4; i++)
            {
                scrapes.Add(Scrape());
                Thread.Sleep(1000);
            }
        });
        Assert.True(Samples(scrapes[^1])["cookieproxy_syn_received_total"] > Samples(scrapes[0])["cookieproxy_syn_received_total"],
            "the counters moved during the flood");

        string text = Scrape();
        string file = Path.Combine(Lab.LabDir, "metrics.txt");
        File.WriteAllText(file, text);
        CommandResult check = CommandRunner.Run("bash", ["-c", $"promtool check metrics < {file}"], ShortTimeout, Log);
        Assert.True(check.Succeeded, "promtool check metrics:\n" + check);
        Assert.True(string.IsNullOrWhiteSpace(check.StdOut + check.StdErr), "promtool lint findings:\n" + check);

        CommandResult stats = CommandRunner.Run(Lab.BinaryPath, ["stats", "--json", "--socket", Path.Combine(Lab.LabDir, "control.sock")],
            ShortTimeout, Log);
        Assert.True(stats.Succeeded, stats.ToString());
        using JsonDocument doc = JsonDocument.Parse(stats.StdOut);
        JsonElement s = doc.RootElement;
        Dictionary<string, double> m = Samples(text);
        Assert.True(m["cookieproxy_syn_received_total"] >= BoundedFloodMinSyns);
        Assert.Equal(s.GetProperty("syn_received").GetInt64(), (long)m["cookieproxy_syn_received_total"]);
        Assert.Equal(s.GetProperty("synack_sent").GetInt64(), (long)m["cookieproxy_synack_sent_total"]);
        Assert.Equal(s.GetProperty("flows_active").GetInt64(), (long)m["cookieproxy_flows_active"]);
        foreach (JsonProperty drop in s.GetProperty("drops").EnumerateObject())
        {
            Assert.Equal(drop.Value.GetInt64(), (long)m[$"cookieproxy_drops_total{{reason=\"{drop.Name}\"}}"]);
        }
        Assert.Equal(s.GetProperty("listeners")[0].GetProperty("syn_received").GetInt64(),
            (long)m["cookieproxy_listener_syn_received_total{listener=\"198.18.0.1:80\"}"]);
        Assert.Contains(m.Keys, k => k.StartsWith("cookieproxy_build_info{version=", StringComparison.Ordinal));
    }
}
