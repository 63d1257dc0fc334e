using System.Text.Json;

namespace CookieProxy.EndToEnd.Infrastructure;

/// <summary>
/// One snapshot of the stats file (<c>--stats-file</c>): a JSON object with at least syn_received,
/// synack_sent, cookie_valid, cookie_invalid, flows_created, flows_active, rst_sent and drops (by reason),
/// and since multi-core capture <c>threads</c> and a <c>per_thread</c> list of each thread's main counters.
/// </summary>
public sealed class ProxyStats
{
    public static readonly string[] RequiredCounters =
        ["syn_received", "synack_sent", "cookie_valid", "cookie_invalid", "flows_created", "flows_active", "rst_sent"];

    private readonly Dictionary<string, long> _counters = new(StringComparer.Ordinal);
    private readonly Dictionary<string, long> _drops = new(StringComparer.Ordinal);
    private readonly List<Dictionary<string, long>> _perThread = [];

    private ProxyStats(string json)
    {
        Json = json;
        using JsonDocument doc = JsonDocument.Parse(json);
        foreach (JsonProperty p in doc.RootElement.EnumerateObject())
        {
            if (p.Value.ValueKind == JsonValueKind.Number && p.Value.TryGetInt64(out long v))
            {
                _counters[p.Name] = v;
            }
            else if (p.Name == "per_thread" && p.Value.ValueKind == JsonValueKind.Array)
            {
                foreach (JsonElement thread in p.Value.EnumerateArray())
                {
                    var counters = new Dictionary<string, long>(StringComparer.Ordinal);
                    foreach (JsonProperty c in thread.EnumerateObject())
                    {
                        if (c.Value.ValueKind == JsonValueKind.Number && c.Value.TryGetInt64(out long cv))
                        {
                            counters[c.Name] = cv;
                        }
                    }
                    _perThread.Add(counters);
                }
            }
            else if (p.Name == "drops" && p.Value.ValueKind == JsonValueKind.Object)
            {
                HasDropsObject = true;
                foreach (JsonProperty d in p.Value.EnumerateObject())
                {
                    if (d.Value.ValueKind == JsonValueKind.Number && d.Value.TryGetInt64(out long dv))
                    {
                        _drops[d.Name] = dv;
                    }
                }
            }
        }
    }

    public string Json { get; }

    public bool HasDropsObject { get; }

    public IReadOnlyDictionary<string, long> Counters => _counters;

    public IReadOnlyDictionary<string, long> Drops => _drops;

    /// <summary>One entry per capture thread, in thread order (empty for a binary without the list).</summary>
    public IReadOnlyList<IReadOnlyDictionary<string, long>> PerThread => _perThread;

    public long SynReceived => this["syn_received"];

    public long SynAckSent => this["synack_sent"];

    public long CookieValid => this["cookie_valid"];

    public long CookieInvalid => this["cookie_invalid"];

    public long FlowsCreated => this["flows_created"];

    public long this[string name] =>
        _counters.TryGetValue(name, out long v) ? v : throw new KeyNotFoundException($"stats file has no counter '{name}': {Json}");

    /// <summary>Parses the file, or returns null while it is missing or half-written.</summary>
    public static ProxyStats? TryRead(string path)
    {
        try
        {
            string json = File.ReadAllText(path);
            return json.Length == 0 ? null : new ProxyStats(json);
        }
        catch (Exception e) when (e is IOException or JsonException or UnauthorizedAccessException)
        {
            return null;
        }
    }

    public override string ToString() => Json;
}
