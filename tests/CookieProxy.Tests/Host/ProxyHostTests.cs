using System.Net.Sockets;
using System.Text;
using CookieProxy.Host;
using CookieProxy.Host.Diagnostics.Logging;
using CookieProxy.Host.Os;
using CookieProxy.Host.Services;
using Microsoft.Extensions.Logging;

namespace CookieProxy.Tests.Host;

public sealed class ProxyHostTests
{
    private sealed class Recorder : IHostService, IDrainingService
    {
        private readonly List<string> _log;

        public Recorder(string name, List<string> log)
        {
            Name = name;
            _log = log;
        }

        public string Name { get; }

        public Action? OnOpen { get; init; }

        public long Outstanding { get; set; }

        public void Open()
        {
            _log.Add($"open {Name}");
            OnOpen?.Invoke();
        }

        public void Start() => _log.Add($"start {Name}");

        public void Stop() => _log.Add($"stop {Name}");

        public void Close() => _log.Add($"close {Name}");

        public void BeginDrain() => _log.Add($"drain {Name}");
    }

    /// <summary>A host over <paramref name="services"/>; Log() writes out the queued log lines and returns them.</summary>
    private static (ProxyHost Host, HostLifetime Lifetime, Func<string> Log) Host(IReadOnlyList<IHostService> services, double durationSeconds = 0, double drainSeconds = 10)
    {
        var text = new StringWriter();
        var logs = new ConsoleLogProvider(text, LogFormat.Plain, LogLevel.Information);
        var lifetime = new HostLifetime(logs.CreateLogger("host"));
        var host = new ProxyHost(services, lifetime, new SystemdNotifier(notifySocket: null), logs.CreateLogger("host"))
        {
            Duration = TimeSpan.FromSeconds(durationSeconds),
            DrainTimeout = () => TimeSpan.FromSeconds(drainSeconds),
            Flush = logs.Dispose,
        };
        return (host, lifetime, () =>
        {
            logs.Dispose();
            return text.ToString();
        });
    }

    [Fact]
    public void ServicesOpenAndStartInOrderAndStopAndCloseInReverse()
    {
        var log = new List<string>();
        var (host, _, _) = Host([new Recorder("a", log), new Recorder("b", log)], durationSeconds: 0.05);
        Assert.Equal(0, host.Run());
        Assert.Equal(["open a", "open b", "start a", "start b", "drain a", "drain b", "stop b", "stop a", "close b", "close a"], log);
    }

    [Fact]
    public void AFailedOpenClosesWhatWasOpenedAndEndsWithItsExitCodeAndMessage()
    {
        var log = new List<string>();
        var (host, _, text) = Host([
            new Recorder("a", log),
            new Recorder("b", log) { OnOpen = () => throw new HostStartException("--key-file k: no such file", ExitCodes.Usage) },
            new Recorder("c", log),
        ]);
        Assert.Equal(ExitCodes.Usage, host.Run());
        Assert.Equal(["open a", "open b", "close b", "close a"], log);
        Assert.Contains("--key-file k: no such file", text());
    }

    [Fact]
    public void ABugInAServiceIsLoggedWithItsStackAndStillClosesEverything()
    {
        var log = new List<string>();
        var (host, _, text) = Host([
            new Recorder("a", log),
            new Recorder("b", log) { OnOpen = () => throw new InvalidOperationException("boom") },
        ]);
        Assert.Equal(ExitCodes.RuntimeError, host.Run());
        Assert.Equal(["open a", "open b", "close b", "close a"], log);
        Assert.Contains("bug", text());
        Assert.Contains("boom", text());
    }

    private static Task<int> RunOnItsOwnThread(ProxyHost host)
    {
        var done = new TaskCompletionSource<int>(TaskCreationOptions.RunContinuationsAsynchronously);
        new Thread(() => done.SetResult(host.Run())) { IsBackground = true }.Start();
        return done.Task;
    }

    private static async Task<bool> Ends(Task task, double seconds) => await Task.WhenAny(task, Task.Delay(TimeSpan.FromSeconds(seconds))) == task;

    [Fact]
    public async Task TheDrainWaitsForTheOutstandingFlowsAndASecondStopEndsIt()
    {
        var log = new List<string>();
        var flows = new Recorder("capture", log) { Outstanding = 3 };
        var (host, lifetime, text) = Host([flows], drainSeconds: 30);
        Task<int> run = RunOnItsOwnThread(host);
        SpinWait.SpinUntil(() => log.Contains("start capture"), TimeSpan.FromSeconds(5));
        lifetime.RequestStop("SIGTERM");
        SpinWait.SpinUntil(() => log.Contains("drain capture"), TimeSpan.FromSeconds(5));
        Assert.False(await Ends(run, 0.3), "the host must wait for the flows");
        flows.Outstanding = 0;
        Assert.True(await Ends(run, 5));
        Assert.Equal(0, await run);
        Assert.Contains("drained", text());

        log.Clear();
        flows.Outstanding = 5;
        var (host2, lifetime2, text2) = Host([flows], drainSeconds: 30);
        run = RunOnItsOwnThread(host2);
        SpinWait.SpinUntil(() => log.Contains("start capture"), TimeSpan.FromSeconds(5));
        lifetime2.RequestStop("SIGTERM");
        SpinWait.SpinUntil(() => log.Contains("drain capture"), TimeSpan.FromSeconds(5));
        lifetime2.RequestStop("SIGTERM");
        Assert.True(await Ends(run, 5));
        Assert.Contains("a second stop signal", text2());
    }

    [Fact]
    public async Task TheDrainTimeoutCutsTheWaitAndAFaultSkipsTheDrain()
    {
        var log = new List<string>();
        var flows = new Recorder("capture", log) { Outstanding = 1 };
        var (host, lifetime, text) = Host([flows], drainSeconds: 0.2);
        Task<int> run = RunOnItsOwnThread(host);
        SpinWait.SpinUntil(() => log.Contains("start capture"), TimeSpan.FromSeconds(5));
        lifetime.RequestStop("SIGINT");
        Assert.True(await Ends(run, 5));
        Assert.Equal(0, await run);
        Assert.Contains("--drain-timeout", text());

        log.Clear();
        var (host2, lifetime2, _) = Host([flows], drainSeconds: 30);
        run = RunOnItsOwnThread(host2);
        SpinWait.SpinUntil(() => log.Contains("start capture"), TimeSpan.FromSeconds(5));
        lifetime2.RequestStop("capture thread 0 failed", ExitCodes.RuntimeError, immediate: true);
        Assert.True(await Ends(run, 5));
        Assert.Equal(ExitCodes.RuntimeError, await run);
        Assert.DoesNotContain("drain capture", log);
        Assert.Equal("close capture", log[^1]);
    }

    [Fact]
    public async Task ReloadsRunOnTheHostThreadAndWithoutAHandlerSayThereIsNothingToReload()
    {
        var log = new List<string>();
        var (host, lifetime, _) = Host([new Recorder("a", log)]);
        Task<int> run = RunOnItsOwnThread(host);
        SpinWait.SpinUntil(() => log.Contains("start a"), TimeSpan.FromSeconds(5));
        ReloadOutcome nothing = await lifetime.RequestReload("test").WaitAsync(TimeSpan.FromSeconds(5));
        Assert.False(nothing.Applied);
        int? thread = null;
        lifetime.ReloadHandler = _ =>
        {
            thread = Environment.CurrentManagedThreadId;
            return ReloadOutcome.Done("max-flows 1 -> 2");
        };
        ReloadOutcome done = await lifetime.RequestReload("test").WaitAsync(TimeSpan.FromSeconds(5));
        Assert.True(done.Applied);
        Assert.NotNull(thread);
        Assert.NotEqual(Environment.CurrentManagedThreadId, thread);
        lifetime.RequestStop("test");
        Assert.True(await Ends(run, 5));
    }

    [Fact]
    public void SystemdHearsReadyAndStoppingOnItsNotifySocket()
    {
        string path = Path.Combine(Path.GetTempPath(), $"cp-notify-{Guid.NewGuid():N}.sock");
        using var listener = new Socket(AddressFamily.Unix, SocketType.Dgram, ProtocolType.Unspecified);
        listener.Bind(new UnixDomainSocketEndPoint(path));
        try
        {
            using var notifier = new SystemdNotifier(path);
            Assert.True(notifier.Enabled);
            notifier.Ready("protecting 1 endpoint(s)");
            notifier.Reloading();
            notifier.Stopping("draining");
            var buffer = new byte[512];
            string ready = Encoding.UTF8.GetString(buffer, 0, listener.Receive(buffer));
            string reloading = Encoding.UTF8.GetString(buffer, 0, listener.Receive(buffer));
            string stopping = Encoding.UTF8.GetString(buffer, 0, listener.Receive(buffer));
            Assert.StartsWith("READY=1\n", ready);
            Assert.Contains($"MAINPID={Environment.ProcessId}", ready);
            Assert.Matches("^RELOADING=1\nMONOTONIC_USEC=[0-9]+$", reloading);
            Assert.StartsWith("STOPPING=1\n", stopping);
        }
        finally
        {
            File.Delete(path);
        }
        Assert.False(new SystemdNotifier(notifySocket: null).Send("READY=1"));
    }
}
