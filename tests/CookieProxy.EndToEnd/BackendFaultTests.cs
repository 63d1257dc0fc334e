using System.Diagnostics;
using System.Globalization;
using CookieProxy.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace CookieProxy.EndToEnd;

/// <summary>
/// Issue 12 (4): what the client sees when the backend fails. A refused or reset backend is an RST to the client
/// (never a FIN: an abortive end must not look like a complete response), a silent one is reset at the first-data
/// timeout, a slow reader holds the client back without losing a byte, and each direction can half-close.
/// Run alone with <c>--filter Tier=backendfault</c>.
/// </summary>
[Trait("Tier", "backendfault")]
public sealed class BackendFaultTests : FaultTestBase
{
    /// <summary>Issue 12's acceptance line: a refused backend gives the client an RST within 1.5 s.</summary>
    private static readonly TimeSpan s_refusedRstWithin = TimeSpan.FromSeconds(1.5);

    public BackendFaultTests(LabFixture lab, ITestOutputHelper output)
        : base(lab, output)
    {
    }

    [LabFact]
    public void A_refused_backend_gives_the_client_an_rst_within_one_and_a_half_seconds()
    {
        // Nothing listens on the python backend's port now.
        StartProxy("--listen", Listen, "--backend", PythonBackend);
        const string Script = """
            import socket, sys, time
            results = []
            for i in range(5):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.bind(("198.18.1.%d" % (110 + i), 0))
                s.settimeout(5)
                t0 = time.monotonic()  # from the SYN: the RST may come before connect() returns
                try:
                    s.connect(("198.18.0.1", 80))
                    s.sendall(b"GET / HTTP/1.1\r\nHost: lab\r\n\r\n")
                    data = s.recv(4096)
                    results.append(("eof" if not data else "data") + " %.3f" % (time.monotonic() - t0))
                except ConnectionResetError:
                    results.append("reset %.3f" % (time.monotonic() - t0))
                except socket.timeout:
                    results.append("timeout %.3f" % (time.monotonic() - t0))
                s.close()
            print(",".join(results))
            """;
        CommandResult r = InClient(TimeSpan.FromSeconds(60), "python3", "-c", Script);
        Assert.True(r.Succeeded, r.ToString());
        string[] results = r.StdOut.Trim().Split(',');
        ProxyStats stats = WaitForStats(s => s["backend_connect_failed"] >= 5, TimeSpan.FromSeconds(5), "five connect failures");
        Log($"refused backend, time from the client's SYN to its RST: {string.Join(", ", results)}; "
            + $"backend_connect_failed {stats["backend_connect_failed"]}, rst_sent {stats["rst_sent"]}");

        foreach (string result in results)
        {
            string[] parts = result.Split(' ');
            Assert.Equal("reset", parts[0]);
            Assert.True(double.Parse(parts[1], CultureInfo.InvariantCulture) < s_refusedRstWithin.TotalSeconds, $"RST after {parts[1]} s");
        }

        Assert.Equal(0, stats["backend_resets"]);
    }

    [LabFact]
    public void A_backend_killed_mid_stream_gives_the_client_an_rst_not_a_clean_fin()
    {
        RunningCommand backend = StartPythonBackend("stream");
        StartProxy("--listen", Listen, "--backend", PythonBackend);
        string file = Path.Combine(Lab.LabDir, "killed-stream.bin");
        File.Delete(file);
        using RunningCommand curl = StartInClient("curl", "-sS", "--max-time", "60", "--limit-rate", "10M", "-o", file, $"http://{LabFixture.ServerIp}/");
        var clock = Stopwatch.StartNew();
        while (!(File.Exists(file) && new FileInfo(file).Length > 1 << 20))
        {
            Assert.False(curl.HasExited, "curl ended before the backend was killed: " + curl.StdErrSoFar);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(15), "the download never started");
            Thread.Sleep(50);
        }

        backend.Kill();    // SIGKILL, with the rest of the request unread: the backend's kernel resets the connection
        var sinceKill = Stopwatch.StartNew();
        CommandResult r = curl.WaitForExit(TimeSpan.FromSeconds(30), Log);
        double seconds = sinceKill.Elapsed.TotalSeconds;
        ProxyStats stats = WaitForStats(s => s["backend_resets"] >= 1, TimeSpan.FromSeconds(5), "a backend reset counted");
        Log($"backend killed: curl exit {r.ExitCode} {seconds:F2} s after the kill with {new FileInfo(file).Length} bytes; "
            + $"backend_resets {stats["backend_resets"]}, rst_sent {stats["rst_sent"]}");

        Assert.False(r.TimedOut, "the client hung after the backend died");
        Assert.Equal(56, r.ExitCode);    // CURLE_RECV_ERROR: "Connection reset by peer", not 18 (a short body ended by FIN)
        Assert.Contains("reset", r.StdErr, StringComparison.OrdinalIgnoreCase);
        Assert.True(seconds < 3, $"curl took {seconds:F1} s to notice");
        Assert.Equal(1, stats["backend_resets"]);
        Assert.Equal(0, stats["backend_connect_failed"]);
    }

    [LabFact]
    public void A_backend_that_accepts_and_never_answers_is_reset_at_the_first_data_timeout()
    {
        StartPythonBackend("silent");
        StartProxy("--listen", Listen, "--backend", PythonBackend, "--first-data-timeout", "2");
        const string Script = """
            import socket, time
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(10)
            s.connect(("198.18.0.1", 80))
            s.sendall(b"GET / HTTP/1.1\r\nHost: lab\r\n\r\n")
            t0 = time.monotonic()
            try:
                data = s.recv(4096)
                print(("eof" if not data else "data"), "%.3f" % (time.monotonic() - t0))
            except ConnectionResetError:
                print("reset %.3f" % (time.monotonic() - t0))
            except socket.timeout:
                print("timeout %.3f" % (time.monotonic() - t0))
            """;
        CommandResult r = InClient(TimeSpan.FromSeconds(30), "python3", "-c", Script);
        Assert.True(r.Succeeded, r.ToString());
        string[] parts = r.StdOut.Trim().Split(' ');
        ProxyStats stats = WaitForStats(s => s["backend_timeouts"] >= 1 && s["flows_active"] == 0, TimeSpan.FromSeconds(5),
            "the backend timeout counted and the flow gone");
        Log($"silent backend, --first-data-timeout 2: the client saw '{r.StdOut.Trim()}' after its request; backend_timeouts {stats["backend_timeouts"]}");

        Assert.Equal("reset", parts[0]);
        Assert.InRange(double.Parse(parts[1], CultureInfo.InvariantCulture), 1.9, 4.0);
        Assert.Equal(1, stats["backend_timeouts"]);
    }

    [LabFact]
    public void A_slow_reading_backend_holds_the_client_back_and_receives_every_byte()
    {
        int pid = StartProxy("--listen", Listen, "--backend", PythonBackend);
        StartPythonBackend("slowread", "4");
        long rssBefore = StatusKiB(pid, "VmRSS");
        string source = Path.Combine(Lab.CacheDir, "10m.bin");
        // The client pushes 10 MiB as fast as the proxy lets it; the backend reads nothing for 4 s.
        const string Script = """
            import socket, sys, threading, time
            data = open(sys.argv[1], "rb").read()
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(60)
            s.connect(("198.18.0.1", 80))
            sent = [0]
            def push():
                view = memoryview(data)
                while sent[0] < len(data):
                    sent[0] += s.send(view[sent[0]:sent[0] + 65536])
                s.shutdown(socket.SHUT_WR)
            t = threading.Thread(target=push)
            t.start()
            time.sleep(3)
            print("at3s", sent[0], flush=True)
            t.join(60)
            answer = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                answer += chunk
            print("answer", answer.decode().strip())
            """;
        using RunningCommand client = StartInClient("python3", "-c", Script, source);
        Thread.Sleep(3500);
        ProxyStats paused = ReadStats();
        long rssPaused = StatusKiB(pid, "VmRSS");
        CommandResult r = client.WaitForExit(TimeSpan.FromSeconds(60), Log);
        Assert.True(r.Succeeded, r.ToString());
        string[] lines = r.StdOut.Trim().Split('\n');
        long pushedAtPause = long.Parse(lines[0].Split(' ')[1], CultureInfo.InvariantCulture);
        string answer = lines[1]["answer ".Length..];
        Log($"slow reader (nothing read for 4 s, then 64 KiB per 5 ms): the client had pushed {pushedAtPause} of 10485760 bytes after 3 s; "
            + $"proxy bytes_to_backend {paused["bytes_to_backend"]}, flow_buffer_bytes {paused["flow_buffer_bytes"]} then; "
            + $"VmRSS {rssBefore} -> {rssPaused} KiB; the backend read '{answer}'");

        Assert.Equal($"{Lab.ExpectedSha256("10m.bin")} 10485760", answer);
        // Backpressure: with the backend not reading, the client could put only the proxy's and the kernels' buffers
        // in flight (a few MiB), not the whole file.
        Assert.True(pushedAtPause < 8L << 20, $"the client pushed {pushedAtPause} bytes into a backend that did not read");
        Assert.True(paused["flow_buffer_bytes"] <= 2L << 20, $"the flow held {paused["flow_buffer_bytes"]} bytes");
        Assert.True(rssPaused - rssBefore < 32 * 1024, $"RSS grew by {(rssPaused - rssBefore) / 1024} MiB");
    }

    [LabFact]
    public void A_client_that_half_closes_still_reads_the_whole_response()
    {
        StartProxy();
        // HTTP/1.0 request, then shutdown(SHUT_WR): Apache sees our FIN after the request and still answers.
        const string Script = """
            import hashlib, socket
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(20)
            s.connect(("198.18.0.1", 80))
            s.sendall(b"GET /1m.bin HTTP/1.0\r\nHost: lab\r\n\r\n")
            s.shutdown(socket.SHUT_WR)
            data = b""
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                data += chunk
            head, _, body = data.partition(b"\r\n\r\n")
            print(head.split(b"\r\n")[0].decode(), hashlib.sha256(body).hexdigest(), len(body))
            """;
        CommandResult r = InClient(TimeSpan.FromSeconds(40), "python3", "-c", Script);
        Assert.True(r.Succeeded, r.ToString());
        Assert.Equal($"HTTP/1.1 200 OK {Lab.ExpectedSha256("1m.bin")} 1048576", r.StdOut.Trim());
        ProxyStats stats = WaitForStats(s => s["flows_active"] == 0, TimeSpan.FromSeconds(15), "the flow closed");
        Assert.Equal(0, stats["rst_sent"]);
    }

    [LabFact]
    public void A_backend_that_half_closes_first_still_receives_what_the_client_sends_after()
    {
        string result = Path.Combine(Lab.LabDir, "halfclose-result.txt");
        File.Delete(result);
        StartPythonBackend("halfclose", result);
        StartProxy("--listen", Listen, "--backend", PythonBackend);
        // The client reads the backend's line and its FIN, then sends 1 MiB more and closes its side.
        const string Script = """
            import hashlib, socket, sys
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(20)
            s.connect(("198.18.0.1", 80))
            s.sendall(b"hello backend\n")
            got = b""
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                got += chunk
            data = open(sys.argv[1], "rb").read()
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
            s.settimeout(10)
            tail = s.recv(1)
            print(got.decode().strip(), "|", "eof" if not tail else "data")
            """;
        CommandResult r = InClient(TimeSpan.FromSeconds(40), "python3", "-c", Script, Path.Combine(Lab.CacheDir, "1m.bin"));
        Assert.True(r.Succeeded, r.ToString());
        Assert.Equal("backend speaks first and half-closes | eof", r.StdOut.Trim());
        var clock = Stopwatch.StartNew();
        while (!File.Exists(result) || File.ReadAllText(result).Length == 0)
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), "the backend never saw the client's FIN");
            Thread.Sleep(100);
        }

        Assert.Equal($"{Lab.ExpectedSha256("1m.bin")} 1048576", File.ReadAllText(result).Trim());
        ProxyStats stats = WaitForStats(s => s["flows_active"] == 0, TimeSpan.FromSeconds(15), "the flow closed");
        Assert.Equal(0, stats["rst_sent"]);
    }
}
