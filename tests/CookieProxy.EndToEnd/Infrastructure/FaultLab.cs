using System.Diagnostics;
using System.Globalization;
using Xunit.Abstractions;

namespace CookieProxy.EndToEnd.Infrastructure;

/// <summary>
/// Base of the fault tests (issue 12: slowloris, backend faults, memory held to its caps): small python backends
/// in the server namespace that misbehave on purpose, a client that holds or dribbles thousands of connections,
/// and the proxy's resident memory and descriptor counts. Every python process is bounded in time (it exits by
/// itself) and killed with its test.
/// </summary>
public abstract class FaultTestBase : LabTestBase
{
    /// <summary>Where the python backends listen in the server namespace (Apache has 8080/8081, the banner 2525).</summary>
    protected const int PythonBackendPort = 8090;

    protected static readonly string Listen = $"{LabFixture.ServerIp}:{LabFixture.ProtectedPort}";

    protected static readonly string PythonBackend = $"127.0.0.1:{PythonBackendPort}";

    private readonly List<RunningCommand> _background = [];

    protected FaultTestBase(LabFixture lab, ITestOutputHelper output)
        : base(lab, output)
    {
    }

    /// <summary>
    /// The python backend in one of its modes, on 127.0.0.1:<see cref="PythonBackendPort"/> of the server namespace:
    /// <list type="bullet">
    /// <item><c>http</c>: accepts without limit; answers a request (once its blank line arrives) with a short 200 and
    /// closes; holds idle and dribbling connections open.</item>
    /// <item><c>silent</c>: accepts without limit and never reads or answers.</item>
    /// <item><c>stream</c>: reads one byte of the request (the rest stays unread) and sends a 100 MiB response; killed
    /// with SIGKILL, its kernel resets the connection (unread bytes), as a crashed backend's does.</item>
    /// <item><c>slowread PAUSE</c>: reads nothing for PAUSE seconds, then reads slowly to EOF and answers with the
    /// sha256 and size of what it read.</item>
    /// <item><c>halfclose FILE</c>: reads a line, answers a line, half-closes (FIN) first, then reads what the
    /// client still sends until EOF and writes its sha256 and size to FILE.</item>
    /// </list>
    /// </summary>
    protected RunningCommand StartPythonBackend(string mode, params string[] args)
    {
        RunningCommand backend = CommandRunner.Start("ip",
            ["netns", "exec", LabFixture.ServerNs, "python3", "-c", BackendScript, PythonBackendPort.ToString(CultureInfo.InvariantCulture), mode, .. args]);
        _background.Add(backend);
        Log("started in background: " + backend.CommandLine);
        var clock = Stopwatch.StartNew();
        while (!backend.StdErrSoFar.Contains("listening", StringComparison.Ordinal))
        {
            Assert.False(backend.HasExited, "the python backend exited at start:\n" + backend.StdErrSoFar);
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), "the python backend did not start listening");
            Thread.Sleep(50);
        }

        return backend;
    }

    /// <summary>
    /// Starts the connection holder in the client namespace: <paramref name="perSource"/> connections from each of
    /// <paramref name="sources"/> to the protected port, held for <paramref name="holdSeconds"/> (then reset). In
    /// <c>idle</c> mode they send nothing; in <c>dribble</c> mode each sends one byte of a request every
    /// <paramref name="intervalSeconds"/>, their phases spread over the interval (as unsynchronised attackers are).
    /// It prints a status line (<c>open= reset= eof= failed=</c>) to stderr every second and the last one to stdout.
    /// </summary>
    protected RunningCommand StartHolder(IReadOnlyList<string> sources, int perSource, string mode, double holdSeconds, double intervalSeconds = 5)
    {
        RunningCommand holder = StartInClient("python3", "-c", HolderScript, string.Join(',', sources),
            perSource.ToString(CultureInfo.InvariantCulture), mode,
            holdSeconds.ToString(CultureInfo.InvariantCulture), intervalSeconds.ToString(CultureInfo.InvariantCulture));
        _background.Add(holder);
        return holder;
    }

    /// <summary>Waits until the holder has made every connect attempt and printed a status line.</summary>
    protected HolderStatus WaitForHolder(RunningCommand holder, Func<HolderStatus, bool> condition, TimeSpan timeout, string what)
    {
        var clock = Stopwatch.StartNew();
        HolderStatus? last = null;
        while (clock.Elapsed < timeout)
        {
            last = HolderStatus.Last(holder.StdErrSoFar);
            if (last is not null && condition(last))
            {
                Log("holder: " + last);
                return last;
            }

            Assert.False(holder.HasExited, $"the connection holder exited while waiting for {what}:\n{holder.StdErrSoFar}");
            Thread.Sleep(200);
        }

        Assert.Fail($"waited {timeout.TotalSeconds} s for the holder: {what}; last status: {last?.ToString() ?? "(none)"}\n{holder.StdErrSoFar}");
        return null!;
    }

    /// <summary>One curl GET from <paramref name="source"/> through the proxy; returns its exit code, HTTP code and time.</summary>
    protected (int Exit, string Code, double Seconds) Curl(string source, string path = "/", int maxTimeSeconds = 5)
    {
        CommandResult r = InClient(TimeSpan.FromSeconds(maxTimeSeconds + 10), "curl", "-sS", "-o", "/dev/null", "--interface", source,
            "--max-time", maxTimeSeconds.ToString(CultureInfo.InvariantCulture), "-w", "%{http_code} %{time_total}",
            $"http://{LabFixture.ServerIp}{path}");
        string[] parts = r.StdOut.Trim().Split(' ');
        double seconds = parts.Length > 1 ? double.Parse(parts[1], CultureInfo.InvariantCulture) : double.NaN;
        return (r.ExitCode, parts[0], seconds);
    }

    /// <summary>Open file descriptors of a process (/proc/PID/fd).</summary>
    protected static int FdCount(int pid) => Directory.GetFiles($"/proc/{pid}/fd").Length;

    /// <summary>A field of /proc/PID/status in KiB (VmRSS, VmHWM = the peak RSS since start).</summary>
    protected static long StatusKiB(int pid, string field)
    {
        foreach (string line in File.ReadLines($"/proc/{pid}/status"))
        {
            if (line.StartsWith(field + ":", StringComparison.Ordinal))
            {
                return long.Parse(line[(field.Length + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            }
        }

        throw new InvalidOperationException($"no {field} for pid {pid}");
    }

    /// <summary>Client source addresses from the lab's extra range (198.18.1.first ..).</summary>
    protected static string[] Sources(int first, int count) =>
        Enumerable.Range(first, count).Select(i => "198.18.1." + i.ToString(CultureInfo.InvariantCulture)).ToArray();

    public override void Dispose()
    {
        foreach (RunningCommand command in _background)
        {
            command.Dispose();
        }

        base.Dispose();
    }

    /// <summary>The holder's last status line.</summary>
    protected sealed record HolderStatus(int Open, int Reset, int Eof, int Failed, int Attempted, double Seconds)
    {
        public static HolderStatus? Last(string text)
        {
            string? line = text.Split('\n').LastOrDefault(l => l.StartsWith("status ", StringComparison.Ordinal));
            if (line is null)
            {
                return null;
            }

            var values = line["status ".Length..].Split(' ', StringSplitOptions.RemoveEmptyEntries)
                .Select(kv => kv.Split('=', 2))
                .ToDictionary(kv => kv[0], kv => kv[1], StringComparer.Ordinal);
            return new HolderStatus(int.Parse(values["open"], CultureInfo.InvariantCulture), int.Parse(values["reset"], CultureInfo.InvariantCulture),
                int.Parse(values["eof"], CultureInfo.InvariantCulture), int.Parse(values["failed"], CultureInfo.InvariantCulture),
                int.Parse(values["attempted"], CultureInfo.InvariantCulture), double.Parse(values["t"], CultureInfo.InvariantCulture));
        }

        public override string ToString() => $"open={Open} reset={Reset} eof={Eof} failed={Failed} attempted={Attempted} t={Seconds:F1}";
    }

    private const string BackendScript = """
        import hashlib, resource, selectors, socket, sys, time
        resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
        port, mode, args = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
        end = time.monotonic() + 300  # bounded: never outlives a test run
        ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        ls.bind(("127.0.0.1", port))
        ls.listen(4096)
        print("listening", file=sys.stderr, flush=True)
        RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 30\r\nConnection: close\r\n\r\nhello from the python backend\n"

        def http_or_silent(answer):
            sel = selectors.DefaultSelector()
            sel.register(ls, selectors.EVENT_READ)
            held, bufs, accepted, shown = [], {}, 0, None
            while time.monotonic() < end:
                for key, _ in sel.select(1.0):
                    if key.fileobj is ls:
                        try:
                            c, _ = ls.accept()
                        except OSError:
                            continue
                        accepted += 1
                        if answer:
                            c.setblocking(False)
                            bufs[c] = b""
                            sel.register(c, selectors.EVENT_READ)
                        else:
                            held.append(c)  # never read
                        continue
                    c = key.fileobj
                    try:
                        data = c.recv(65536)
                    except OSError:
                        data = b""
                    if data:
                        bufs[c] += data
                        if b"\r\n\r\n" not in bufs[c]:
                            continue
                        try:
                            c.send(RESPONSE)
                        except OSError:
                            pass
                    sel.unregister(c)
                    del bufs[c]
                    c.close()
                status = (accepted, len(bufs) + len(held))
                if status != shown:
                    shown = status
                    print("accepted=%d open=%d" % status, file=sys.stderr, flush=True)

        def stream():
            c, _ = ls.accept()
            c.recv(1)  # the rest of the request stays unread: a kill resets the connection
            c.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 104857600\r\nConnection: close\r\n\r\n")
            chunk = bytes(range(256)) * 256
            sent = 0
            while sent < 104857600 and time.monotonic() < end:
                c.sendall(chunk)
                sent += len(chunk)
            c.close()

        def slowread(pause):
            c, _ = ls.accept()
            time.sleep(pause)
            print("reading", file=sys.stderr, flush=True)
            h, n = hashlib.sha256(), 0
            while time.monotonic() < end:
                data = c.recv(65536)
                if not data:
                    break
                h.update(data)
                n += len(data)
                time.sleep(0.005)
            c.sendall(("%s %d\n" % (h.hexdigest(), n)).encode())
            c.close()

        def halfclose(result):
            c, _ = ls.accept()
            line = b""
            while not line.endswith(b"\n"):
                data = c.recv(1)
                if not data:
                    break
                line += data
            c.sendall(b"backend speaks first and half-closes\n")
            c.shutdown(socket.SHUT_WR)
            h, n = hashlib.sha256(), 0
            while time.monotonic() < end:
                data = c.recv(65536)
                if not data:
                    break
                h.update(data)
                n += len(data)
            with open(result, "w") as f:
                f.write("%s %d\n" % (h.hexdigest(), n))
            c.close()

        if mode == "http":
            http_or_silent(True)
        elif mode == "silent":
            http_or_silent(False)
        elif mode == "stream":
            stream()
        elif mode == "slowread":
            slowread(float(args[0]))
        elif mode == "halfclose":
            halfclose(args[0])
        else:
            sys.exit("unknown mode " + mode)
        """;

    private const string HolderScript = """
        import errno, resource, selectors, socket, sys, time
        resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
        sources, per, mode = sys.argv[1].split(","), int(sys.argv[2]), sys.argv[3]
        hold, interval = float(sys.argv[4]), float(sys.argv[5])
        REQUEST = b"GET / HTTP/1.1\r\nHost: lab\r\nUser-Agent: dribbler\r\n" + b"X-Pad: " + b"a" * 4000
        t0 = time.monotonic()
        socks, state, sent = [], {}, {}
        counts = {"reset": 0, "eof": 0, "failed": 0}
        sel = selectors.DefaultSelector()
        for src in sources:
            for _ in range(per):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                try:
                    s.bind((src, 0))
                    s.connect_ex(("198.18.0.1", 80))
                except OSError:
                    counts["failed"] += 1
                    s.close()
                    continue
                socks.append(s)
                state[s] = "connecting"
                sent[s] = 0
                sel.register(s, selectors.EVENT_WRITE)
        attempted = len(socks) + counts["failed"]
        n = len(socks)
        phase = {s: (i * interval / max(n, 1)) for i, s in enumerate(socks)}
        nxt = {s: 0.0 for s in socks}
        last = 0.0

        def done(s, how):
            if state[s] in ("connecting", "open"):
                counts[how] += 1
            state[s] = how
            try:
                sel.unregister(s)
            except (KeyError, ValueError):
                pass

        while time.monotonic() - t0 < hold:
            now = time.monotonic() - t0
            for key, ev in sel.select(0.05):
                s = key.fileobj
                if state[s] == "connecting":
                    err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                    if err == 0:
                        state[s] = "open"
                        nxt[s] = now + phase[s]
                        sel.modify(s, selectors.EVENT_READ)
                    else:
                        done(s, "reset" if err == errno.ECONNRESET else "failed")
                    continue
                try:
                    data = s.recv(4096)
                    if not data:
                        done(s, "eof")
                except ConnectionResetError:
                    done(s, "reset")
                except BlockingIOError:
                    pass
                except OSError:
                    done(s, "failed")
            if mode == "dribble":
                for s in socks:
                    if state[s] == "open" and now >= nxt[s] and sent[s] < len(REQUEST):
                        try:
                            s.send(REQUEST[sent[s]:sent[s] + 1])
                            sent[s] += 1
                        except OSError:
                            done(s, "reset")
                        nxt[s] = now + interval
            if now - last >= 1.0:
                last = now
                opened = sum(1 for s in socks if state[s] == "open")
                print("status open=%d reset=%d eof=%d failed=%d attempted=%d t=%.1f" % (opened, counts["reset"], counts["eof"], counts["failed"], attempted, now), file=sys.stderr, flush=True)
        opened = sum(1 for s in socks if state[s] == "open")
        print("status open=%d reset=%d eof=%d failed=%d attempted=%d t=%.1f" % (opened, counts["reset"], counts["eof"], counts["failed"], attempted, time.monotonic() - t0))
        for s in socks:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.close()
        """;
}
