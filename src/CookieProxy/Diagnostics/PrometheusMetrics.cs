using CookieProxy.Diagnostics;
using CookieProxy.Host.Control;
using Prom = Prometheus;

namespace CookieProxy.Host.Diagnostics;

/// <summary>
/// The /metrics exposition through prometheus-net, in the Prometheus text format (version 0.0.4):
/// <list type="bullet">
/// <item>every <see cref="CounterTable"/> entry as <c>cookieproxy_NAME_total</c> (a counter) or <c>cookieproxy_NAME</c>
/// (a gauge), with the table's help;</item>
/// <item><c>cookieproxy_drops_total{reason="..."}</c>, one series per <see cref="DropReason"/> name;</item>
/// <item>the per-listener counters with a <c>listener</c> label, <c>cookieproxy_capture_threads</c>,
/// <c>cookieproxy_uptime_seconds</c> and <c>cookieproxy_build_info{version="..."} 1</c>.</item>
/// </list>
/// The collectors live in a registry of our own, registered from the tables once; a before-collect callback fills
/// them from one <see cref="ProxyView"/> snapshot per scrape, the same snapshot <c>cookieproxy stats</c> reads,
/// so the two agree and nothing runs on a capture thread. Prometheus computes the rates.
/// <para>
/// The private registry also keeps prometheus-net's default process and .NET metrics out (they live in its
/// default registry, which is never collected, so its event-counter and meter listeners never start): the
/// library calls them sample data, and a host's CPU and memory are better read from systemd or node_exporter.
/// </para>
/// </summary>
public sealed class PrometheusMetrics
{
    /// <summary>The Content-Type of the exposition.</summary>
    public const string ContentType = Prom.PrometheusConstants.TextContentTypeWithVersionAndEncoding;

    public const string Prefix = "cookieproxy_";

    private const string ListenerLabel = "listener";

    private readonly ProxyView _view;
    private readonly Prom.CollectorRegistry _registry = Prom.Metrics.NewCustomRegistry();

    // Indexed by the enums they come from; the unused kind of each Counter is null.
    private readonly Prom.Counter?[] _counters = new Prom.Counter?[(int)Counter.Count];
    private readonly Prom.Gauge?[] _gauges = new Prom.Gauge?[(int)Counter.Count];
    private readonly Prom.Counter.Child[] _drops = new Prom.Counter.Child[(int)DropReason.Count];
    private readonly Prom.Counter[] _listenerCounters = new Prom.Counter[(int)ListenerCounter.Count];
    private readonly Prom.Gauge _listenerFlowsActive;
    private readonly Prom.Gauge _captureThreads;
    private readonly Prom.Gauge _uptime;

    // The listener label values now exposed (a reload may add or remove listeners).
    private readonly HashSet<string> _listeners = new(StringComparer.Ordinal);
    private Exception? _fillFailure;

    public PrometheusMetrics(ProxyView view, string version)
    {
        _view = view;
        Prom.MetricFactory factory = Prom.Metrics.WithCustomRegistry(_registry);
        for (var c = (Counter)0; c < Counter.Count; c++)
        {
            CounterInfo info = CounterTable.Of(c);
            if (info.Kind == CounterKind.Counter)
            {
                _counters[(int)c] = factory.CreateCounter(NameOf(c), info.Help);
            }
            else
            {
                _gauges[(int)c] = factory.CreateGauge(NameOf(c), info.Help);
            }
        }

        Prom.Counter drops = factory.CreateCounter(Prefix + "drops_total", "Frames not acted upon, by reason (see DropReason).", "reason");
        for (var r = (DropReason)1; r < DropReason.Count; r++)
        {
            _drops[(int)r] = drops.WithLabels(CounterTable.NameOf(r));
        }

        for (var lc = (ListenerCounter)0; lc < ListenerCounter.Count; lc++)
        {
            _listenerCounters[(int)lc] = factory.CreateCounter(
                Prefix + "listener_" + ListenerCounterTable.NameOf(lc) + "_total", ListenerCounterTable.HelpOf(lc), ListenerLabel);
        }
        _listenerFlowsActive = factory.CreateGauge(Prefix + "listener_flows_active", "Flows of the listener in the flow tables now.", ListenerLabel);

        _captureThreads = factory.CreateGauge(Prefix + "capture_threads", "Capture threads sharing the interface.");
        _uptime = factory.CreateGauge(Prefix + "uptime_seconds", "Seconds since the capture started.");
        factory.CreateGauge(Prefix + "build_info", "The running version (the value is always 1).", "version").WithLabels(version).Set(1);

        _registry.AddBeforeCollectCallback(FillFromSnapshot);
    }

    /// <summary>The exposition name of a table counter.</summary>
    public static string NameOf(Counter c)
    {
        CounterInfo info = CounterTable.Of(c);
        return Prefix + info.Name + (info.Kind == CounterKind.Counter ? "_total" : "");
    }

    /// <summary>Takes one snapshot and writes the exposition of it to <paramref name="stream"/>.</summary>
    /// <exception cref="InvalidOperationException">Filling the collectors failed (a bug of ours; the scrape fails).</exception>
    public void WriteTo(Stream stream)
    {
        _fillFailure = null;
        // Synchronous in effect: the callback is synchronous and the stream is a MemoryStream or a socket the
        // caller owns; the metrics thread has no synchronization context to deadlock on.
        _registry.CollectAndExportAsTextAsync(stream).GetAwaiter().GetResult();
        if (_fillFailure is Exception e)
        {
            // prometheus-net swallows a callback's exception; stale values must not pass for fresh ones.
            throw new InvalidOperationException("filling the metrics from the snapshot failed", e);
        }
    }

    /// <summary>The exposition as a string (tests and warm-up).</summary>
    public string WriteToString()
    {
        using var stream = new MemoryStream();
        WriteTo(stream);
        return Prom.PrometheusConstants.ExportEncoding.GetString(stream.GetBuffer(), 0, (int)stream.Length);
    }

    private void FillFromSnapshot()
    {
        try
        {
            Fill(_view.Capture());
        }
        catch (Exception e)
        {
            _fillFailure = e;
        }
    }

    private void Fill(StatsSnapshot s)
    {
        for (var c = (Counter)0; c < Counter.Count; c++)
        {
            long value = s.Total.Read(c);
            // The table's counters only grow (IncTo keeps a counter monotonic, as Prometheus requires).
            _counters[(int)c]?.IncTo(value);
            _gauges[(int)c]?.Set(value);
        }
        for (var r = (DropReason)1; r < DropReason.Count; r++)
        {
            _drops[(int)r].IncTo(s.Total.Drops(r));
        }

        var now = new HashSet<string>(StringComparer.Ordinal);
        foreach (ListenerInfo l in s.ListenerInfo)
        {
            string label = l.Listen.ToString();
            now.Add(label);
            for (var lc = (ListenerCounter)0; lc < ListenerCounter.Count; lc++)
            {
                _listenerCounters[(int)lc].WithLabels(label).IncTo(s.Listeners.Read(l.Listen, lc));
            }
            _listenerFlowsActive.WithLabels(label).Set(ControlJson.FlowsActive(s.Listeners, l.Listen));
        }
        // A listener a reload removed stays while its counts do (ProxyView); once gone, so are its series.
        foreach (string gone in _listeners)
        {
            if (!now.Contains(gone))
            {
                foreach (Prom.Counter counter in _listenerCounters)
                {
                    counter.RemoveLabelled(gone);
                }
                _listenerFlowsActive.RemoveLabelled(gone);
            }
        }
        _listeners.Clear();
        _listeners.UnionWith(now);

        _captureThreads.Set(s.PerThread.Count);
        _uptime.Set(Math.Round(s.UptimeSeconds, 3));
    }
}
