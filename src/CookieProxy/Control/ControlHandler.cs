using System.Buffers;
using System.Text;
using System.Text.Json;
using CookieProxy.Host.Services;

namespace CookieProxy.Host.Control;

/// <summary>
/// The control protocol, apart from the socket: one request line in, one JSON line out.
/// A request is a JSON object <c>{"command":"stats"}</c> or just the word (<c>stats</c>, for socat users).
/// A reply is <c>{"ok":true,"command":"stats","result":{...}}</c> or <c>{"ok":false,"error":"..."}</c>.
/// Commands: stats, top, reload, version, help.
/// Rates compare with a snapshot the server thread takes every second (<see cref="Tick"/>), so a request is
/// answered at once. Used by one thread only (the control server's).
/// </summary>
public sealed class ControlHandler
{
    public static readonly string[] Commands = ["stats", "top", "reload", "version", "help"];

    /// <summary>The longest request line read; longer ones are refused.</summary>
    public const int MaxRequestBytes = 4096;

    private const int History = 4;

    private readonly ProxyView _view;
    private readonly Func<ReloadOutcome>? _reload;
    private readonly StatsSnapshot?[] _history = new StatsSnapshot?[History];
    private readonly ArrayBufferWriter<byte> _buffer = new(16 * 1024);
    private int _next;

    public ControlHandler(ProxyView view, Func<ReloadOutcome>? reload)
    {
        _view = view;
        _reload = reload;
    }

    public ProxyView View => _view;

    /// <summary>
    /// Answers each command once and discards the replies: the host runs without tiered compilation, so the first
    /// `stats` would otherwise pay for compiling every method on its way (hundreds of milliseconds on a busy
    /// machine) in the middle of a flood, when the operator asks.
    /// </summary>
    public void WarmUp()
    {
        Handle("{\"command\":\"stats\"}"u8);
        Handle("{\"command\":\"top\"}"u8);
        Handle("{\"command\":\"version\"}"u8);
        Handle("bad"u8);
        _buffer.Clear();
    }

    /// <summary>Takes the once-a-second snapshot that later replies take their rates against.</summary>
    public void Tick()
    {
        _history[_next] = _view.Capture();
        _next = (_next + 1) % History;
    }

    /// <summary>The newest snapshot at least half a second older than <paramref name="now"/> (else the oldest kept).</summary>
    internal StatsSnapshot? BaselineFor(StatsSnapshot now)
    {
        StatsSnapshot? best = null, oldest = null;
        foreach (StatsSnapshot? s in _history)
        {
            if (s is null || s.MonotonicMs > now.MonotonicMs)
            {
                continue;
            }
            if (oldest is null || s.MonotonicMs < oldest.MonotonicMs)
            {
                oldest = s;
            }
            if (now.MonotonicMs - s.MonotonicMs >= 500 && (best is null || s.MonotonicMs > best.MonotonicMs))
            {
                best = s;
            }
        }
        return best ?? (oldest is not null && oldest.MonotonicMs < now.MonotonicMs ? oldest : null);
    }

    /// <summary>Answers one request line with one JSON line (UTF-8, ending in \n). Never throws for bad input.</summary>
    public ReadOnlyMemory<byte> Handle(ReadOnlySpan<byte> line)
    {
        _buffer.Clear();
        using var w = new Utf8JsonWriter(_buffer);
        string? command = ParseCommand(line, out int sources, out string? error);
        if (command is null)
        {
            WriteError(w, error!);
        }
        else
        {
            try
            {
                WriteReply(w, command, sources);
            }
            catch (Exception e)
            {
                // The host stopping under us (a thread's tables went away), or a bug of ours: this request fails,
                // the control socket (and the proxy) go on.
                _buffer.Clear();
                w.Reset(_buffer);
                WriteError(w, $"{command}: {e.GetType().Name}: {e.Message}");
            }
        }
        w.Flush();
        _buffer.Write("\n"u8);
        return _buffer.WrittenMemory;
    }

    private static void WriteError(Utf8JsonWriter w, string error)
    {
        w.WriteStartObject();
        w.WriteBoolean("ok", false);
        w.WriteString("error", error);
        w.WriteEndObject();
    }

    private void WriteReply(Utf8JsonWriter w, string command, int sources)
    {
        if (command == "reload" && _reload is null)
        {
            WriteError(w, "reload: this instance has nothing to reload (it was started without --config)");
            return;
        }
        w.WriteStartObject();
        w.WriteBoolean("ok", true);
        w.WriteString("command", command);
        w.WritePropertyName("result");
        switch (command)
        {
            case "stats":
            {
                StatsSnapshot now = _view.Capture();
                ControlJson.WriteStats(w, now, BaselineFor(now));
                break;
            }
            case "top":
            {
                StatsSnapshot now = _view.Capture();
                ControlJson.WriteTop(w, now, BaselineFor(now), _view.CaptureSources(sources));
                break;
            }
            case "reload":
            {
                ReloadOutcome r = _reload!();
                w.WriteStartObject();
                w.WriteBoolean("applied", r.Applied);
                w.WriteStartArray("messages");
                foreach (string m in r.Messages)
                {
                    w.WriteStringValue(m);
                }
                w.WriteEndArray();
                w.WriteEndObject();
                break;
            }
            case "version":
                w.WriteStartObject();
                w.WriteString("version", ProxyView.Version);
                w.WriteNumber("pid", Environment.ProcessId);
                w.WriteEndObject();
                break;
            default:
                w.WriteStartObject();
                w.WriteStartArray("commands");
                foreach (string c in Commands)
                {
                    w.WriteStringValue(c);
                }
                w.WriteEndArray();
                w.WriteEndObject();
                break;
        }
        w.WriteEndObject();
    }

    /// <summary>The command of a request line, or null and why not.</summary>
    internal static string? ParseCommand(ReadOnlySpan<byte> line, out int sources, out string? error)
    {
        sources = 10;
        error = null;
        line = line.Trim(" \t\r\n"u8);
        if (line.IsEmpty)
        {
            error = "empty request; send a JSON object like {\"command\":\"stats\"} or a command word";
            return null;
        }
        string? command;
        if (line[0] == (byte)'{')
        {
            try
            {
                using JsonDocument doc = JsonDocument.Parse(line.ToArray(), new JsonDocumentOptions { MaxDepth = 4 });
                if (doc.RootElement.ValueKind != JsonValueKind.Object
                    || !doc.RootElement.TryGetProperty("command", out JsonElement c) || c.ValueKind != JsonValueKind.String)
                {
                    error = "a request object needs a \"command\" string";
                    return null;
                }
                command = c.GetString();
                if (doc.RootElement.TryGetProperty("sources", out JsonElement s))
                {
                    if (s.ValueKind != JsonValueKind.Number || !s.TryGetInt32(out sources) || sources is < 0 or > 100)
                    {
                        error = "\"sources\" must be a whole number in 0..100";
                        return null;
                    }
                }
            }
            catch (JsonException e)
            {
                error = $"not valid JSON: {e.Message}";
                return null;
            }
        }
        else
        {
            command = Encoding.UTF8.GetString(line).ToLowerInvariant();
        }
        if (Array.IndexOf(Commands, command) < 0)
        {
            error = $"unknown command '{Truncate(command)}'; commands: {string.Join(", ", Commands)}";
            return null;
        }
        return command;
    }

    private static string Truncate(string? s) => s is null ? "" : s.Length <= 40 ? s : s[..40] + "...";
}
