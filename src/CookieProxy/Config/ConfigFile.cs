using System.Net;
using CookieProxy.Host.Cli;
using CookieProxy.ProxyProtocol;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace CookieProxy.Host.Config;

/// <summary>One problem in a config file: where, which key, why. Printed as <c>FILE:LINE: key: reason</c>.</summary>
public sealed record ConfigError(string File, int Line, string? Key, string Reason)
{
    public override string ToString() =>
        Line > 0
            ? (Key is null ? $"{File}:{Line}: {Reason}" : $"{File}:{Line}: {Key}: {Reason}")
            : (Key is null ? $"{File}: {Reason}" : $"{File}: {Key}: {Reason}");
}

/// <summary>
/// The YAML config file of `run --config FILE` and `check --config FILE`. Every `run` option has a key of the
/// same name without the dashes (<c>interface: eth0</c>, <c>max-conn-per-source: 10</c>, flags as
/// <c>hide-port: true</c>); <c>listeners:</c> is a list of <c>{listen, backend, proxy-protocol}</c> (one listener
/// may also be given as top-level <c>listen:</c>/<c>backend:</c>/<c>proxy-protocol:</c>). Every value goes through
/// the same parser as on the command line (<see cref="RunOptions"/>), so the two agree on what is valid.
/// Unknown keys, repeated keys and values of the wrong shape are errors: a typo must not pass silently.
/// </summary>
public static class ConfigFile
{
    public const string ListenersKey = "listeners";

    /// <summary>Where each key was set (for errors found later, e.g. cross-option checks): key → line.</summary>
    public sealed class Origins : Dictionary<string, int>
    {
    }

    /// <summary>
    /// Reads <paramref name="path"/> and applies it over <paramref name="options"/>. Returns the errors (empty: all
    /// applied). On error <paramref name="options"/> may be partly applied; callers discard it.
    /// </summary>
    public static List<ConfigError> Apply(string path, ref ProxyOptions options, Origins origins)
    {
        var errors = new List<ConfigError>();
        string text;
        try
        {
            text = File.ReadAllText(path);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            errors.Add(new ConfigError(path, 0, null, $"cannot read: {e.Message}"));
            return errors;
        }
        ApplyText(path, text, ref options, origins, errors);
        return errors;
    }

    /// <summary><see cref="Apply"/> on text already read (<paramref name="path"/> names it in errors).</summary>
    public static void ApplyText(string path, string text, ref ProxyOptions options, Origins origins, List<ConfigError> errors)
    {
        var yaml = new YamlStream();
        try
        {
            using var reader = new StringReader(text);
            yaml.Load(reader);
        }
        catch (YamlException e)
        {
            string message = Clean(e);
            const string Duplicate = "Duplicate key ";
            errors.Add(message.StartsWith(Duplicate, StringComparison.Ordinal)
                ? new ConfigError(path, (int)e.Start.Line, message[Duplicate.Length..], "given twice")
                : new ConfigError(path, (int)e.Start.Line, null, $"not valid YAML: {message}"));
            return;
        }
        if (yaml.Documents.Count == 0 || yaml.Documents[0].RootNode is YamlScalarNode { Value: null or "" })
        {
            return; // an empty file (or only comments): nothing set
        }
        if (yaml.Documents.Count > 1)
        {
            errors.Add(new ConfigError(path, Line(yaml.Documents[1].RootNode), null, "only one YAML document is allowed"));
            return;
        }
        if (yaml.Documents[0].RootNode is not YamlMappingNode root)
        {
            errors.Add(new ConfigError(path, Line(yaml.Documents[0].RootNode), null, "expected a mapping of option names to values (interface: eth0)"));
            return;
        }

        var seen = new HashSet<string>(StringComparer.Ordinal);
        YamlNode? topListen = null, topBackend = null, topProxyProtocol = null, listenersNode = null;
        int listenersLine = 0;
        foreach ((YamlNode keyNode, YamlNode value) in root.Children)
        {
            int line = Line(keyNode);
            if (keyNode is not YamlScalarNode { Value: string key })
            {
                errors.Add(new ConfigError(path, line, null, "a key must be a plain name"));
                continue;
            }
            if (!seen.Add(key))
            {
                errors.Add(new ConfigError(path, line, key, "given twice"));
                continue;
            }
            switch (key)
            {
                case ListenersKey:
                    listenersNode = value;
                    listenersLine = line;
                    continue;
                case "listen":
                    topListen = value;
                    continue;
                case "backend":
                    topBackend = value;
                    continue;
                case "proxy-protocol":
                    topProxyProtocol = value;
                    continue;
                case "config":
                    errors.Add(new ConfigError(path, line, key, "a config file cannot include another"));
                    continue;
            }
            RunOption? option = RunOptions.FindByKey(key);
            if (option is null)
            {
                errors.Add(new ConfigError(path, line, key, UnknownKey(key)));
                continue;
            }
            if (option.IsList && value is YamlSequenceNode items)
            {
                // A YAML list: each item one value, checked one by one so the error points at its line.
                var texts = new List<string>();
                bool ok = true;
                foreach (YamlNode item in items.Children)
                {
                    if (!TryScalar(item, out string? itemText, out string? itemShape))
                    {
                        errors.Add(new ConfigError(path, Line(item), key, itemShape!));
                        ok = false;
                        continue;
                    }
                    ProxyOptions probe = options;
                    string? itemError = option.TryApply(ref probe, itemText!);
                    if (itemError is not null)
                    {
                        errors.Add(new ConfigError(path, Line(item), key, $"'{itemText}': {itemError}"));
                        ok = false;
                        continue;
                    }
                    texts.Add(itemText!);
                }
                if (ok && option.TryApply(ref options, string.Join(",", texts)) is null)
                {
                    origins[key] = line;
                }
                continue;
            }
            if (!TryScalar(value, out string? scalar, out string? shapeError))
            {
                errors.Add(new ConfigError(path, Line(value), key, shapeError!));
                continue;
            }
            string? error = option.TryApply(ref options, scalar!);
            if (error is not null)
            {
                errors.Add(new ConfigError(path, Line(value), key, $"'{scalar}': {error}"));
                continue;
            }
            origins[key] = line;
        }

        var listeners = new List<ListenerOptions>();
        if (listenersNode is not null)
        {
            if (topListen is not null || topBackend is not null || topProxyProtocol is not null)
            {
                errors.Add(new ConfigError(path, Line(topListen ?? topBackend ?? topProxyProtocol!), null,
                    "give either listeners: or a top-level listen:/backend:, not both"));
                return;
            }
            if (listenersNode is not YamlSequenceNode list)
            {
                errors.Add(new ConfigError(path, Line(listenersNode), ListenersKey, "expected a list of {listen, backend, proxy-protocol}"));
                return;
            }
            foreach (YamlNode item in list.Children)
            {
                if (item is not YamlMappingNode entry)
                {
                    errors.Add(new ConfigError(path, Line(item), ListenersKey, "each listener is a mapping: - listen: IP:PORT, backend: IP:PORT"));
                    continue;
                }
                YamlNode? l = null, b = null, pp = null;
                foreach ((YamlNode k, YamlNode v) in entry.Children)
                {
                    string? name = (k as YamlScalarNode)?.Value;
                    switch (name)
                    {
                        case "listen" when l is null:
                            l = v;
                            break;
                        case "backend" when b is null:
                            b = v;
                            break;
                        case "proxy-protocol" when pp is null:
                            pp = v;
                            break;
                        case "listen" or "backend" or "proxy-protocol":
                            errors.Add(new ConfigError(path, Line(k), $"{ListenersKey}: {name}", "given twice"));
                            break;
                        default:
                            errors.Add(new ConfigError(path, Line(k), $"{ListenersKey}: {name}", "unknown key (a listener has listen, backend, proxy-protocol)"));
                            break;
                    }
                }
                ReadListener(path, Line(item), l, b, pp, listeners, errors);
            }
            if (list.Children.Count == 0)
            {
                errors.Add(new ConfigError(path, listenersLine, ListenersKey, "the list is empty"));
            }
        }
        else if (topListen is not null || topBackend is not null || topProxyProtocol is not null)
        {
            ReadListener(path, Line(topListen ?? topBackend ?? topProxyProtocol!), topListen, topBackend, topProxyProtocol, listeners, errors);
            listenersLine = Line(topListen ?? topBackend ?? topProxyProtocol!);
        }
        if (listeners.Count > 0)
        {
            options = options with { Listeners = listeners };
            origins[ListenersKey] = listenersLine;
        }
    }

    private static void ReadListener(string path, int line, YamlNode? listenNode, YamlNode? backendNode, YamlNode? ppNode,
        List<ListenerOptions> listeners, List<ConfigError> errors)
    {
        if (listenNode is null)
        {
            errors.Add(new ConfigError(path, line, "listen", "missing (each listener needs listen: IP:PORT)"));
            return;
        }
        if (backendNode is null)
        {
            errors.Add(new ConfigError(path, line, "backend", "missing (each listener needs backend: IP:PORT)"));
            return;
        }
        if (!TryScalar(listenNode, out string? listenText, out string? shape))
        {
            errors.Add(new ConfigError(path, Line(listenNode), "listen", shape!));
            return;
        }
        string? error = RunOptions.ParseListen(listenText!, out IPEndPoint? listen);
        if (error is not null)
        {
            errors.Add(new ConfigError(path, Line(listenNode), "listen", $"'{listenText}': {error}"));
            return;
        }
        if (!TryScalar(backendNode, out string? backendText, out shape))
        {
            errors.Add(new ConfigError(path, Line(backendNode), "backend", shape!));
            return;
        }
        if (!RunOptions.TryParseEndpoint(backendText!, out IPEndPoint? backend, out error))
        {
            errors.Add(new ConfigError(path, Line(backendNode), "backend", $"'{backendText}': {error}"));
            return;
        }
        if (backend!.Equals(listen))
        {
            errors.Add(new ConfigError(path, Line(backendNode), "backend",
                $"{backend} is the protected endpoint itself; move the server to another port (e.g. 127.0.0.1:8080)"));
            return;
        }
        ProxyProtocolVersion pp = ProxyProtocolVersion.None;
        if (ppNode is not null)
        {
            if (!TryScalar(ppNode, out string? ppText, out shape))
            {
                errors.Add(new ConfigError(path, Line(ppNode), "proxy-protocol", shape!));
                return;
            }
            if (!RunOptions.TryParseProxyProtocol(ppText!, out pp, out string ppError))
            {
                errors.Add(new ConfigError(path, Line(ppNode), "proxy-protocol", $"'{ppText}': {ppError}"));
                return;
            }
        }
        if (listeners.Exists(x => x.Listen.Equals(listen)))
        {
            errors.Add(new ConfigError(path, Line(listenNode), "listen", $"{listen} is given twice"));
            return;
        }
        listeners.Add(new ListenerOptions(listen!, backend, pp));
    }

    private static bool TryScalar(YamlNode node, out string? value, out string? error)
    {
        if (node is YamlScalarNode scalar)
        {
            if (string.IsNullOrWhiteSpace(scalar.Value) && scalar.Style == YamlDotNet.Core.ScalarStyle.Plain)
            {
                value = null;
                error = "needs a value";
                return false;
            }
            value = scalar.Value ?? "";
            error = null;
            return true;
        }
        value = null;
        error = node is YamlSequenceNode ? "expected one value, not a list" : "expected one value, not a mapping";
        return false;
    }

    private static string UnknownKey(string key)
    {
        // A typo is the likely cause: name the nearest key.
        string? best = null;
        int bestDistance = int.MaxValue;
        foreach (string candidate in RunOptions.All.Select(o => o.Key).Append(ListenersKey))
        {
            int d = Distance(key, candidate);
            if (d < bestDistance)
            {
                bestDistance = d;
                best = candidate;
            }
        }
        return bestDistance <= 3 ? $"unknown key (did you mean '{best}'?)" : "unknown key";
    }

    private static int Distance(string a, string b)
    {
        var row = new int[b.Length + 1];
        for (int j = 0; j <= b.Length; j++)
        {
            row[j] = j;
        }
        for (int i = 1; i <= a.Length; i++)
        {
            int diagonal = row[0];
            row[0] = i;
            for (int j = 1; j <= b.Length; j++)
            {
                int above = row[j];
                row[j] = Math.Min(Math.Min(row[j] + 1, row[j - 1] + 1), diagonal + (a[i - 1] == b[j - 1] ? 0 : 1));
                diagonal = above;
            }
        }
        return row[b.Length];
    }

    private static int Line(YamlNode node) => (int)node.Start.Line;

    private static string Clean(YamlException e)
    {
        // "(Line: 3, Col: 1, Idx: 20) - (Line: 3, Col: 2, Idx: 21): While scanning ..." → the message only.
        string m = e.Message;
        int colon = m.IndexOf("): ", StringComparison.Ordinal);
        return (colon >= 0 ? m[(colon + 3)..] : m).TrimEnd('.');
    }
}
