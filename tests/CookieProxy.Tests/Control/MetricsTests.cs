using System.Net;
using System.Text.RegularExpressions;
using CookieProxy.Diagnostics;
using CookieProxy.Host.Control;
using CookieProxy.Host.Diagnostics;

namespace CookieProxy.Tests.Control;

/// <summary>The Prometheus text (written by prometheus-net from the counter table) and the /metrics endpoint
/// (promtool checks the real one in the e2e MetricsTests).</summary>
public partial class MetricsTests
{
    private readonly FakeProxy _proxy = new();
    private PrometheusMetrics? _metrics;

    [GeneratedRegex(@"^[a-zA-Z_:][a-zA-Z0-9_:]*(\{([a-zA-Z_][a-zA-Z0-9_]*=""([^""\\]|\\.)*"",?)*\})? -?[0-9.e+]+$")]
    private static partial Regex SampleLine();

    /// <summary>One scrape; the same registry across calls, as the server keeps it.</summary>
    private string Text()
    {
        _metrics ??= new PrometheusMetrics(_proxy.View, "1.2.3+abc\"quoted\"");
        return _metrics.WriteToString();
    }

    private static Dictionary<string, double> Samples(string text) =>
        text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith('#'))
            .ToDictionary(l => l[..l.LastIndexOf(' ')], l => double.Parse(l[(l.LastIndexOf(' ') + 1)..], System.Globalization.CultureInfo.InvariantCulture));

    [Fact]
    public void EveryTableCounterIsExposedCountersWithTotalAndGaugesWithout()
    {
        _proxy.Syns(0, 10);
        _proxy.Syns(1, 5, listener: 1);
        _proxy.Counters[0][Counter.FlowsActive] = 3;
        _proxy.Drops(1, DropReason.CookieInvalid, 4);
        Dictionary<string, double> samples = Samples(Text());

        Assert.Equal(15, samples["cookieproxy_syn_received_total"]);
        Assert.Equal(15, samples["cookieproxy_synack_sent_total"]);
        Assert.Equal(3, samples["cookieproxy_flows_active"]);
        Assert.Equal(4, samples["cookieproxy_drops_total{reason=\"CookieInvalid\"}"]);
        Assert.Equal(0, samples["cookieproxy_drops_total{reason=\"NoFlow\"}"]);
        Assert.Equal(10, samples["cookieproxy_listener_syn_received_total{listener=\"198.18.0.1:80\"}"]);
        Assert.Equal(5, samples["cookieproxy_listener_syn_received_total{listener=\"[2001:db8::1]:443\"}"]);
        Assert.Equal(1, samples["cookieproxy_build_info{version=\"1.2.3+abc\\\"quoted\\\"\"}"]);
        Assert.Equal(2, samples["cookieproxy_capture_threads"]);
        for (var c = (Counter)0; c < Counter.Count; c++)
        {
            Assert.True(samples.ContainsKey(PrometheusMetrics.NameOf(c)), PrometheusMetrics.NameOf(c));
            Assert.Equal(CounterTable.Of(c).Kind == CounterKind.Counter, PrometheusMetrics.NameOf(c).EndsWith("_total", StringComparison.Ordinal));
        }
    }

    [Fact]
    public void EachScrapeShowsTheCountersOfItsOwnMoment()
    {
        _proxy.Syns(0, 10);
        Assert.Equal(10, Samples(Text())["cookieproxy_syn_received_total"]);

        _proxy.Syns(1, 7);
        _proxy.Counters[0][Counter.FlowsActive] = 5;
        Dictionary<string, double> second = Samples(Text());
        Assert.Equal(17, second["cookieproxy_syn_received_total"]);
        Assert.Equal(5, second["cookieproxy_flows_active"]);

        _proxy.Counters[0][Counter.FlowsActive] = 1;
        Assert.Equal(1, Samples(Text())["cookieproxy_flows_active"]);    // a gauge goes down too
    }

    [Fact]
    public void AListenerThatLeavesTheViewLosesItsSeriesAndOneWithCountsKeepsThem()
    {
        _proxy.Syns(0, 3, listener: 0);
        Assert.Contains("cookieproxy_listener_flows_active{listener=\"[2001:db8::1]:443\"}", Samples(Text()).Keys);

        // A reload removes both: the first still has counts (the view keeps it as removed), the second has none.
        _proxy.Listeners.Clear();
        Dictionary<string, double> after = Samples(Text());
        Assert.Equal(3, after["cookieproxy_listener_syn_received_total{listener=\"198.18.0.1:80\"}"]);
        Assert.DoesNotContain(after.Keys, k => k.Contains("2001:db8::1", StringComparison.Ordinal));
    }

    [Fact]
    public void OnlyCookieProxyMetricsAreExposedNotTheLibrarysProcessDefaults()
    {
        string text = Text();
        foreach (string line in text.TrimEnd('\n').Split('\n'))
        {
            string name = line.StartsWith('#') ? line.Split(' ')[2] : line.Split('{', ' ')[0];
            Assert.StartsWith(PrometheusMetrics.Prefix, name, StringComparison.Ordinal);
        }
    }

    [Fact]
    public void EachMetricHasOneHelpAndOneTypeBeforeItsSamplesAndEveryLineParses()
    {
        string text = Text();
        Assert.EndsWith("\n", text);
        var typed = new HashSet<string>();
        string? current = null;
        foreach (string line in text.TrimEnd('\n').Split('\n'))
        {
            if (line.StartsWith("# HELP ", StringComparison.Ordinal))
            {
                current = line.Split(' ')[2];
                continue;
            }
            if (line.StartsWith("# TYPE ", StringComparison.Ordinal))
            {
                string[] parts = line.Split(' ');
                Assert.Equal(current, parts[2]);
                Assert.True(typed.Add(parts[2]), $"{parts[2]} typed twice");
                Assert.Contains(parts[3], new[] { "counter", "gauge" });
                continue;
            }
            Assert.Matches(SampleLine(), line);
            string name = line.Split('{', ' ')[0];
            Assert.Equal(current, name);
        }
    }

    [Fact]
    public async Task MetricsAreServedOverHttpAtMetricsAndNowhereElse()
    {
        _proxy.Syns(0, 42);
        using MetricsServer server = MetricsServer.Start(new IPEndPoint(IPAddress.Loopback, 0), _proxy.View);
        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{server.LocalEndPoint.Port}/"), Timeout = TimeSpan.FromSeconds(5) };

        HttpResponseMessage ok = (await http.GetAsync("metrics"));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
        Assert.Equal("text/plain; version=0.0.4; charset=utf-8", ok.Content.Headers.ContentType!.ToString().Replace("\"", ""));
        string body = await ok.Content.ReadAsStringAsync();
        Assert.Contains("\ncookieproxy_syn_received_total 42\n", body);

        Assert.Equal(HttpStatusCode.NotFound, (await http.GetAsync("")).StatusCode);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, (await http.PostAsync("metrics", new StringContent("x"))).StatusCode);
        using var head = new HttpRequestMessage(HttpMethod.Head, "metrics");
        HttpResponseMessage h = (await http.SendAsync(head));
        Assert.Equal(HttpStatusCode.OK, h.StatusCode);
        Assert.Equal(2, server.Scrapes);    // the GET and the HEAD
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("metrics?x=1")).StatusCode);
    }

    [Fact]
    public async Task AScraperThatSendsNothingIsDroppedAndTheNextOneServed()
    {
        using MetricsServer server = MetricsServer.Start(new IPEndPoint(IPAddress.Loopback, 0), _proxy.View);
        using var silent = new System.Net.Sockets.TcpClient();
        silent.Connect(IPAddress.Loopback, server.LocalEndPoint.Port);
        using var http = new HttpClient { Timeout = TimeSpan.FromSeconds(10) };
        HttpResponseMessage ok = (await http.GetAsync($"http://127.0.0.1:{server.LocalEndPoint.Port}/metrics"));
        Assert.Equal(HttpStatusCode.OK, ok.StatusCode);
    }
}
