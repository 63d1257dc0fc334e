using System.Globalization;
using System.Text.Json;
using Spectre.Console;
using Spectre.Console.Rendering;

namespace CookieProxy.Host.Control;

/// <summary>
/// <c>cookieproxy top</c>: a live view of the running instance, refreshed once a second: totals, per listener SYN/s,
/// valid and invalid ACK/s and flows, drops by reason, and the top source prefixes with their limiter state.
/// It draws on the terminal's alternate screen and gives the terminal back as it was on q, Esc or Ctrl-C.
/// <c>--once</c> prints one frame (after a second, so the rates are real) and exits: for scripts and pipes.
/// </summary>
public static class TopView
{
    public const int Sources = 10;

    public static int Run(string socketPath, bool once, IAnsiConsole console, TextWriter error)
    {
        ControlClient client;
        try
        {
            client = ControlClient.Connect(socketPath, TimeSpan.FromSeconds(3));
        }
        catch (ControlClientException e)
        {
            error.WriteLine($"cookieproxy: top: {e.Message}");
            return 1;
        }
        using (client)
        {
            try
            {
                if (once || Console.IsOutputRedirected || Console.IsInputRedirected)
                {
                    client.Request("top", Sources);    // the server's rates are against its own one-second tick
                    console.Write(Build(client.Request("top", Sources), client.Path));
                    return 0;
                }
                return Live(client, console);
            }
            catch (ControlClientException e)
            {
                error.WriteLine($"cookieproxy: top: {e.Message}");
                return 1;
            }
        }
    }

    private static int Live(ControlClient client, IAnsiConsole console)
    {
        using var quit = new ManualResetEventSlim();
        ConsoleCancelEventHandler onCancel = (_, e) =>
        {
            e.Cancel = true;    // unwind, so the alternate screen and the cursor are restored
            quit.Set();
        };
        Console.CancelKeyPress += onCancel;
        string? failure = null;
        try
        {
            // The alternate screen keeps the shell's screen as it was; a terminal without one gets the view inline.
            Action<Action> screen = console.Profile.Capabilities.AlternateBuffer ? console.AlternateScreen : run => run();
            screen(() =>
            {
                console.Cursor.Hide();
                try
                {
                    console.Live(Build(client.Request("top", Sources), client.Path)).AutoClear(true).Start(ctx =>
                    {
                        while (!quit.IsSet)
                        {
                            long next = Environment.TickCount64 + 1000;
                            while (!quit.IsSet && Environment.TickCount64 < next)
                            {
                                if (Console.KeyAvailable && Console.ReadKey(intercept: true).Key is ConsoleKey.Q or ConsoleKey.Escape)
                                {
                                    quit.Set();
                                }
                                quit.Wait(50);
                            }
                            if (quit.IsSet)
                            {
                                break;
                            }
                            try
                            {
                                ctx.UpdateTarget(Build(client.Request("top", Sources), client.Path));
                            }
                            catch (ControlClientException e)
                            {
                                failure = e.Message;    // the instance went away: leave the screen, then say why
                                quit.Set();
                            }
                            ctx.Refresh();
                        }
                    });
                }
                finally
                {
                    console.Cursor.Show();
                }
            });
        }
        finally
        {
            Console.CancelKeyPress -= onCancel;
        }
        if (failure is not null)
        {
            throw new ControlClientException(failure);
        }
        return 0;
    }

    /// <summary>One frame of the view from a <c>top</c> reply.</summary>
    public static IRenderable Build(JsonElement top, string socketPath)
    {
        var inv = CultureInfo.InvariantCulture;
        JsonElement totals = top.GetProperty("totals");
        var up = TimeSpan.FromSeconds(Math.Floor(Number(top, "uptime_s")));
        var header = new Markup(
            $"[bold]cookieproxy[/] {Markup.Escape(top.GetProperty("version").ToString())}  up {(int)up.TotalDays}d {up:hh\\:mm\\:ss}  "
            + $"{Number(top, "threads"):0} thread(s)  {Markup.Escape(socketPath)}  [grey]{DateTime.Now:HH:mm:ss}  q: quit[/]\n"
            + $"[bold]SYN[/] {Rate(totals, "syn_per_s")}/s   [bold]SYN+ACK[/] {Rate(totals, "synack_per_s")}/s   "
            + $"[bold]valid ACK[/] {Rate(totals, "cookie_valid_per_s")}/s   [bold]invalid ACK[/] {Rate(totals, "cookie_invalid_per_s")}/s   "
            + $"[bold]drops[/] {Rate(totals, "drops_per_s")}/s   [bold]flows[/] {Number(totals, "flows_active").ToString("N0", inv)}"
            + (Number(totals, "capture_dropped") > 0 ? $"   [red]kernel dropped {Number(totals, "capture_dropped").ToString("N0", inv)}[/]" : ""));

        var listeners = new Table().Border(TableBorder.Simple).Title("Listeners");
        listeners.AddColumn("listen");
        listeners.AddColumn("backend");
        foreach (string c in new[] { "SYN/s", "limited/s", "valid ACK/s", "invalid ACK/s", "flows", "created" })
        {
            listeners.AddColumn(new TableColumn(c).RightAligned());
        }
        foreach (JsonElement l in top.GetProperty("listeners").EnumerateArray())
        {
            listeners.AddRow(Cell(l.GetProperty("listen").ToString()), Cell(l.GetProperty("backend").ToString()),
                Cell(Rate(l, "syn_per_s")), Cell(Rate(l, "syn_limited_per_s")), Cell(Rate(l, "cookie_valid_per_s")),
                Cell(Rate(l, "cookie_invalid_per_s")), Cell(Number(l, "flows_active").ToString("N0", inv)),
                Cell(Number(l, "flows_created").ToString("N0", inv)));
        }

        var drops = new Table().Border(TableBorder.Simple).Title("Drops");
        drops.AddColumn("reason");
        drops.AddColumn(new TableColumn("/s").RightAligned());
        drops.AddColumn(new TableColumn("total").RightAligned());
        foreach (JsonElement d in top.GetProperty("drops").EnumerateArray().Take(12))
        {
            drops.AddRow(Cell(d.GetProperty("reason").ToString()), Cell(Rate(d, "per_s")), Cell(Number(d, "total").ToString("N0", inv)));
        }
        if (drops.Rows.Count == 0)
        {
            drops.AddRow(Cell("(none)"), Cell(""), Cell(""));
        }

        JsonElement src = top.GetProperty("sources");
        bool limiter = src.GetProperty("limiter").GetBoolean();
        double window = Number(src, "window_s");
        string title = window > 0
            ? $"Top sources (1 in {Number(src, "sample_every"):0} SYNs sampled, last {window:0.0} s)"
            : "Top sources";
        var sources = new Table().Border(TableBorder.Simple).Title(title);
        sources.AddColumn(new TableColumn("prefix") { Width = 26 });
        sources.AddColumn(new TableColumn("SYN/s").RightAligned());
        sources.AddColumn(new TableColumn("at least").RightAligned());
        if (limiter)
        {
            sources.AddColumn(new TableColumn("conns").RightAligned());
            sources.AddColumn("limiter");
        }
        foreach (JsonElement s in src.GetProperty("top").EnumerateArray())
        {
            var cells = new List<IRenderable> { Cell(s.GetProperty("prefix").ToString()), Cell(Rate(s, "syn_per_s")), Cell(Rate(s, "guaranteed_per_s")) };
            if (limiter)
            {
                string state = s.TryGetProperty("state", out JsonElement st) ? st.ToString() : "";
                cells.Add(Cell(Number(s, "connections").ToString("N0", inv)));
                cells.Add(new Text(state, state is "ok" or "" ? Style.Plain : new Style(Color.Red)));
            }
            sources.AddRow(cells);
        }
        if (sources.Rows.Count == 0)
        {
            sources.AddRow([Cell(src.GetProperty("recent").GetBoolean() ? "(no SYNs)" : "(nothing recent)"), Cell(""), Cell(""), .. limiter ? [Cell(""), Cell("")] : Array.Empty<IRenderable>()]);
        }

        return new Rows(header, listeners, new Columns(drops, sources) { Expand = false });
    }

    private static Text Cell(string text) => new(text);

    private static string Rate(JsonElement e, string name) => Number(e, name).ToString("N1", CultureInfo.InvariantCulture);

    private static double Number(JsonElement e, string name) =>
        e.TryGetProperty(name, out JsonElement v) && v.ValueKind == JsonValueKind.Number ? v.GetDouble() : 0;
}
