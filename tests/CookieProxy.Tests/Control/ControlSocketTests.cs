using System.Diagnostics;
using System.Net.Sockets;
using System.Text;
using CookieProxy.Diagnostics;
using CookieProxy.Host.Control;
using CookieProxy.Host.Services;

namespace CookieProxy.Tests.Control;

/// <summary>The control socket itself: a Unix socket on its own thread, served to <see cref="ControlClient"/>.</summary>
public sealed class ControlSocketTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("cp-ctl-").FullName;
    private readonly FakeProxy _proxy = new();
    private readonly List<string> _log = [];

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    private string SocketPath => Path.Combine(_dir, "run", "cookieproxy.sock");

    private ControlServer Start(Func<ReloadOutcome>? reload = null) =>
        ControlServer.Start(SocketPath, new ControlHandler(_proxy.View, reload), _log.Add);

    [Fact]
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    public void StatsOverTheSocketMatchTheCountersAndTheSocketIsMode0660()
    {
        _proxy.Syns(0, 1234);
        using ControlServer server = Start();

        using ControlClient client = ControlClient.Connect(SocketPath, TimeSpan.FromSeconds(2));
        Assert.Equal(1234, client.Request("stats").GetProperty("syn_received").GetInt64());
        _proxy.Syns(1, 10);
        Assert.Equal(1244, client.Request("stats").GetProperty("syn_received").GetInt64());    // the same connection again

        Assert.Equal(UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.GroupRead | UnixFileMode.GroupWrite,
            File.GetUnixFileMode(SocketPath));
    }

    [Fact]
    public void SeveralClientsAreServedAtOnceAndAnIdleOneDoesNotHoldTheOthers()
    {
        using ControlServer server = Start();
        using var idle = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        idle.Connect(new UnixDomainSocketEndPoint(SocketPath));
        idle.Send("sta"u8);    // half a request, never finished

        var clock = Stopwatch.StartNew();
        for (int i = 0; i < 5; i++)
        {
            using ControlClient client = ControlClient.Connect(SocketPath, TimeSpan.FromSeconds(2));
            Assert.Equal(ProxyView.Version, client.Request("version").GetProperty("version").GetString());
        }
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(2), $"{clock.Elapsed}");
    }

    [Fact]
    public void TwoRequestsInOneWriteGetTwoRepliesInOrder()
    {
        using ControlServer server = Start();
        using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        s.ReceiveTimeout = 2000;
        s.Connect(new UnixDomainSocketEndPoint(SocketPath));
        s.Send("version\nhelp\n"u8);

        var text = new StringBuilder();
        var buffer = new byte[65536];
        while (text.ToString().Count(c => c == '\n') < 2)
        {
            int n = s.Receive(buffer);
            Assert.True(n > 0);
            text.Append(Encoding.UTF8.GetString(buffer, 0, n));
        }
        string[] lines = text.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Contains("\"command\":\"version\"", lines[0]);
        Assert.Contains("\"command\":\"help\"", lines[1]);
    }

    [Fact]
    public void AnOverlongRequestLineIsRefusedAndTheConnectionClosed()
    {
        using ControlServer server = Start();
        using var s = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        s.ReceiveTimeout = 2000;
        s.Connect(new UnixDomainSocketEndPoint(SocketPath));
        s.Send(new byte[ControlHandler.MaxRequestBytes + 10]);

        var buffer = new byte[4096];
        int n = s.Receive(buffer);
        Assert.Contains("too long", Encoding.UTF8.GetString(buffer, 0, n));
        // Closed: an orderly end, or a reset because the rest of the line was never read.
        try
        {
            Assert.Equal(0, s.Receive(buffer));
        }
        catch (SocketException e) when (e.SocketErrorCode == SocketError.ConnectionReset)
        {
        }
    }

    [Fact]
    public void ASocketLeftByAKilledInstanceIsReplacedButALiveOneIsNot()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(SocketPath)!);
        // A bound socket nobody listens on any more: what SIGKILL leaves.
        var dead = new Socket(AddressFamily.Unix, SocketType.Stream, ProtocolType.Unspecified);
        dead.Bind(new UnixDomainSocketEndPoint(SocketPath));
        dead.Close(0);
        if (!File.Exists(SocketPath))
        {
            // The runtime unlinked it on close; leave an empty file in its place, which is what remains on disk.
            File.WriteAllBytes(SocketPath, []);
        }

        using (ControlServer server = Start())
        {
            var e = Assert.Throws<ControlSocketException>(() => Start());
            Assert.Contains("in use", e.Message);
            using ControlClient client = ControlClient.Connect(SocketPath, TimeSpan.FromSeconds(2));
            client.Request("version");
        }
        Assert.False(File.Exists(SocketPath), "the socket goes with the server");
    }

    [Fact]
    public void AFileThatIsNotASocketIsNeverDeleted()
    {
        Directory.CreateDirectory(Path.GetDirectoryName(SocketPath)!);
        File.WriteAllText(SocketPath, "precious");
        var e = Assert.Throws<ControlSocketException>(() => Start());
        Assert.Contains("not a socket", e.Message);
        Assert.Equal("precious", File.ReadAllText(SocketPath));
    }

    [Fact]
    public void AClientOfAMissingSocketSaysWhatToCheck()
    {
        var e = Assert.Throws<ControlClientException>(() => ControlClient.Connect(SocketPath, TimeSpan.FromSeconds(1)));
        Assert.Contains(SocketPath, e.Message);
        Assert.Contains("is cookieproxy running", e.Message);
    }

    [Fact]
    public void AnErrorReplyBecomesAClientException()
    {
        using ControlServer server = Start();
        using ControlClient client = ControlClient.Connect(SocketPath, TimeSpan.FromSeconds(2));
        var e = Assert.Throws<ControlClientException>(() => client.Request("reload"));
        Assert.Contains("reload", e.Message);
    }

    [Fact]
    public void ReloadOverTheSocketRunsOnTheControlThreadNotTheCaller()
    {
        int? thread = null;
        using ControlServer server = Start(() =>
        {
            thread = Environment.CurrentManagedThreadId;
            return new ReloadOutcome(true, ["listeners: +198.18.0.1:8443"]);
        });
        using ControlClient client = ControlClient.Connect(SocketPath, TimeSpan.FromSeconds(2));
        Assert.True(client.Request("reload").GetProperty("applied").GetBoolean());
        Assert.NotEqual(Environment.CurrentManagedThreadId, thread);
    }

    [Fact]
    public void StatsAreAnsweredQuicklyWhileOtherThreadsKeepCounting()
    {
        // Two threads increment their counters flat out (as capture threads do under a flood): reading is
        // lock-free, so the control thread's answer does not wait for them. Bounded loose on purpose: this is
        // not a speed test, it catches a reader that blocks on the writers.
        using ControlServer server = Start();
        using var stop = new ManualResetEventSlim();
        Thread[] writers = [.. Enumerable.Range(0, 2).Select(t => new Thread(() =>
        {
            ProxyCounters c = _proxy.Counters[t];
            while (!stop.IsSet)
            {
                for (int i = 0; i < 10_000; i++)
                {
                    c[Counter.SynReceived]++;
                }
            }
        }))];
        foreach (Thread w in writers)
        {
            w.Start();
        }
        try
        {
            using ControlClient client = ControlClient.Connect(SocketPath, TimeSpan.FromSeconds(5));
            long last = 0;
            for (int i = 0; i < 5; i++)
            {
                long syn = client.Request("stats").GetProperty("syn_received").GetInt64();
                Assert.True(syn >= last);
                last = syn;
            }
            Assert.True(last > 0);
        }
        finally
        {
            stop.Set();
            foreach (Thread w in writers)
            {
                w.Join();
            }
        }
    }

    [Fact]
    public void ReloadCommandSaysNothingChangedWhenAnAppliedReloadChangedNothing()
    {
        using ControlServer server = Start(() => new ReloadOutcome(true, []));
        var output = new StringWriter();
        var error = new StringWriter();
        Assert.Equal(ExitCodes.Ok, SocketControlClient.Reload(SocketPath, output, error));
        Assert.Equal("cookieproxy: reload applied: nothing changed", output.ToString().Trim());
        Assert.Equal("", error.ToString());
    }

    [Fact]
    public void ReloadCommandListsWhatChanged()
    {
        using ControlServer server = Start(() => new ReloadOutcome(true, ["max-conn-per-source: 0 -> 10"]));
        var output = new StringWriter();
        Assert.Equal(ExitCodes.Ok, SocketControlClient.Reload(SocketPath, output, new StringWriter()));
        Assert.Equal(["cookieproxy: reload applied", "  max-conn-per-source: 0 -> 10"], output.ToString().TrimEnd().Split(Environment.NewLine));
    }

    [Fact]
    public void ReloadCommandPrintsARefusalWithItsReasonsOnStderrAndExits1()
    {
        using ControlServer server = Start(() => new ReloadOutcome(false, ["proxy.yaml:3: threads: cannot change live"]));
        var output = new StringWriter();
        var error = new StringWriter();
        Assert.Equal(ExitCodes.RuntimeError, SocketControlClient.Reload(SocketPath, output, error));
        Assert.Equal("", output.ToString());
        Assert.Contains("reload refused; nothing changed", error.ToString());
        Assert.Contains("  proxy.yaml:3: threads: cannot change live", error.ToString());
    }
}
