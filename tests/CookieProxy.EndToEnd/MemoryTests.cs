using System.Globalization;
using System.Diagnostics;
using CookieProxy.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace CookieProxy.EndToEnd;

/// <summary>
/// Issue 4: memory stays flat under load. Legitimate connections reuse their buffers (the flow table's ring
/// buffer pool) while a SYN flood runs. Issue 12 (5): --idle-timeout frees the slot and the backend socket, and
/// waves of clients pushing into a backend that never reads are held to --max-buffer-mb and give the memory back.
/// Run alone with <c>--filter Tier=memory</c>.
/// </summary>
[Trait("Tier", "memory")]
public sealed class MemoryTests : FaultTestBase
{
    private const string FloodSource = "198.18.1.9";
    private const int Requests = 300;

    /// <summary>
    /// RSS growth allowed over the 300 requests and the flood, after warm-up. Measured on the 2-core lab host:
    /// +4.4 and +5.1 MiB with the ring pool (the flows' other objects, gen0 garbage not yet collected);
    /// +36.7 and +31.9 MiB for the binary before it, whose flows each allocated two 256 KiB rings on the
    /// Large Object Heap and held them through TIME-WAIT. 16 MiB sits about 3x from both.
    /// </summary>
    private const long MaxGrowthKiB = 16 * 1024;

    public MemoryTests(LabFixture lab, ITestOutputHelper output)
        : base(lab, output)
    {
    }

    [LabFact]
    public void Short_connections_during_a_flood_reuse_their_ring_buffers_and_rss_stays_flat()
    {
        int pid = StartProxy();

        // Warm up (JIT, thread pool, the first ring arrays), then wait until every flow has left TIME-WAIT.
        Assert.Equal(50, RunRequests(50));
        ProxyStats warm = WaitForStats(s => s.FlowsCreated == 50 && s["flows_active"] == 0, TimeSpan.FromSeconds(15),
            "50 flows created and none active after warm-up");
        long rssBefore = RssKiB(pid);

        // HTTP/1.0: Apache closes first, so each connection ends in TIME-WAIT on the proxy (like the flood
        // benchmark's prober). The flood is bounded in count and time, from one of our own addresses.
        int ok;
        CommandResult flood;
        using (RunningCommand flooding = StartInClient("timeout", "10", "hping3", "-q", "-S", "-p", "80", "-i", "u100",
            "-c", "40000", "-a", FloodSource, LabFixture.ServerIp))
        {
            ok = RunRequests(Requests);
            flood = flooding.WaitForExit(TimeSpan.FromSeconds(20), Log);
        }

        Assert.False(flood.TimedOut, flood.ToString());
        Assert.Equal(Requests, ok);
        ProxyStats after = WaitForStats(s => s.FlowsCreated >= warm.FlowsCreated + Requests && s["flows_active"] == 0,
            TimeSpan.FromSeconds(15), "every flow created and gone after the run");
        long rssAfter = RssKiB(pid);
        long created = after["ring_buffers_created"];
        Log($"VmRSS before {rssBefore} KiB, after {rssAfter} KiB (+{rssAfter - rssBefore} KiB); "
            + $"{after.FlowsCreated - warm.FlowsCreated} flows, {after.SynReceived - warm.SynReceived} SYNs, "
            + $"ring buffers created {created}, pooled {after["ring_buffers_pooled"]}");

        Assert.Equal(Requests, after.FlowsCreated - warm.FlowsCreated);
        Assert.True(after.SynReceived - warm.SynReceived > Requests + 1000, "the flood did not reach the proxy");
        // Two arrays per flow open at once on each thread: sequential requests need a handful, not 2 per request.
        Assert.True(created <= 8 * after["threads"], $"{created} ring buffers created for {after.FlowsCreated} flows");
        Assert.Equal(0, after["ring_buffers_in_use"]);
        Assert.True(rssAfter - rssBefore < MaxGrowthKiB,
            $"RSS grew by {(rssAfter - rssBefore) / 1024} MiB over {Requests} connections and a SYN flood");
    }

    [LabFact]
    public void Idle_timeout_frees_the_flow_slots_and_the_backend_sockets()
    {
        RunningCommand backend = StartPythonBackend("http");
        int pid = StartProxy("--listen", Listen, "--backend", PythonBackend, "--idle-timeout", "3");
        Assert.Equal(0, Curl("198.18.1.40").Exit);
        WaitForStats(s => s["flows_active"] == 0, TimeSpan.FromSeconds(15), "the warm-up flow gone");
        int fdsBefore = FdCount(pid);

        // 500 silent connections (five sources of 100) to a backend that never closes them either.
        RunningCommand holder = StartHolder(Sources(130, 5), 100, "idle", holdSeconds: 30);
        ProxyStats held = WaitForStats(s => s["flows_active"] >= 500, TimeSpan.FromSeconds(15), "500 flows");
        int fdsHeld = FdCount(pid);
        var clock = Stopwatch.StartNew();
        ProxyStats idle = WaitForStats(s => s["flows_active"] == 0, TimeSpan.FromSeconds(15), "every idle flow closed");
        double closedAfter = clock.Elapsed.TotalSeconds;
        int fdsAfter = FdCount(pid);
        for (int i = 0; i < 25 && fdsAfter > fdsBefore; i++)
        {
            Thread.Sleep(200);
            fdsAfter = FdCount(pid);
        }

        HolderStatus clients = WaitForHolder(holder, h => h.Reset >= 500, TimeSpan.FromSeconds(5), "the 500 clients reset");
        string backendSide = backend.StdErrSoFar.Trim().Split('\n')[^1];
        Log($"--idle-timeout 3: flows_active {held["flows_active"]} -> {idle["flows_active"]} ({closedAfter:F1} s after all were open), "
            + $"proxy fds {fdsBefore} -> {fdsHeld} -> {fdsAfter}; clients {clients}; backend '{backendSide}'");

        // A backend socket each (a few may still be connecting, or closing, as the count is taken).
        Assert.True(fdsHeld >= fdsBefore + 490, $"{fdsHeld - fdsBefore} new fds for 500 flows (a backend socket each)");
        // Back to the baseline (one below it is a transient descriptor of the baseline moment, e.g. the stats file being written).
        Assert.True(fdsAfter <= fdsBefore, $"the proxy holds {fdsAfter} fds after the idle timeout, {fdsBefore} before the 500 flows");
        Assert.EndsWith("open=0", backendSide);
        Assert.Equal(0, idle["ring_buffers_in_use"]);

        // The slots are free again: a new client is served at once.
        var next = Curl("198.18.1.140");
        Assert.Equal((0, "200"), (next.Exit, next.Code));
    }

    /// <summary>
    /// Two waves of clients each pushing 1 MiB into a backend that never reads. The issue's acceptance run is 5,000
    /// clients per wave at the default --max-buffer-mb 1024 (CP_FAULTS_WAVE_CLIENTS=5000
    /// CP_FAULTS_WAVE_MAX_BUFFER_MB=1024, about a minute per wave, run once for the closing note); CI runs 400
    /// clients into a 64 MiB cap, which the waves overrun six times over all the same.
    /// </summary>
    [LabFact]
    public void Two_waves_pushing_into_a_backend_that_never_reads_stay_under_the_buffer_cap_and_reuse_their_rings()
    {
        int clients = EnvInt("CP_FAULTS_WAVE_CLIENTS", 400);
        int capMb = EnvInt("CP_FAULTS_WAVE_MAX_BUFFER_MB", 64);
        StartPythonBackend("silent");
        // --idle-timeout 10: the backstop for a client RST the capture ring dropped (5,000 pushing clients overrun it;
        // an RST is never retransmitted, and these flows have nothing to send that would find the client gone).
        int pid = StartProxy("--listen", Listen, "--backend", PythonBackend, "--max-buffer-mb", capMb.ToString(CultureInfo.InvariantCulture),
            "--idle-timeout", "10");

        // Warm-up: a small wave (JIT, the first rings), then the baseline.
        long warmFlows = RunWave(20, "warm-up").FlowsCreated;
        Thread.Sleep(2000);
        long rssBaseline = StatusKiB(pid, "VmRSS");

        (ProxyStats first, long peakFirst) = (RunWave(clients, "wave 1"), StatusKiB(pid, "VmHWM"));
        long rssAfterFirst = StatusKiB(pid, "VmRSS");
        ProxyStats second = RunWave(clients, "wave 2");
        long peak = StatusKiB(pid, "VmHWM");
        long rssAfter = SettledRss(pid, rssBaseline);
        long created1 = first["ring_buffers_created"];
        long created2 = second["ring_buffers_created"];
        Log($"{clients} clients per wave, --max-buffer-mb {capMb}: VmRSS baseline {rssBaseline / 1024} MiB, peak (VmHWM) after wave 1 "
            + $"{peakFirst / 1024} MiB, after wave 2 {peak / 1024} MiB; VmRSS after wave 1 {rssAfterFirst / 1024} MiB, after both {rssAfter / 1024} MiB "
            + $"({(rssAfter - rssBaseline) / 1024:+0;-0} MiB); ring_buffers_created {created1} after wave 1, {created2} after wave 2 "
            + $"(pooled {second["ring_buffers_pooled"]}, decommitted {second["ring_buffers_decommitted"]}); BufferLimit drops "
            + $"{second.Drops.GetValueOrDefault("BufferLimit")}, flows_evicted {second["flows_evicted"]}");

        Assert.True(peak <= (capMb + 256L) * 1024, $"peak RSS {peak / 1024} MiB above --max-buffer-mb {capMb} + 256 MiB");
        Assert.True(rssAfter - rssBaseline <= 64 * 1024, $"RSS {rssAfter / 1024} MiB after the waves, {(rssAfter - rssBaseline) / 1024} MiB above the baseline");
        // The second wave reuses the first wave's rings: no new ones beyond two per flow it had more than the first.
        long moreFlows = Math.Max(0, (second.FlowsCreated - first.FlowsCreated) - (first.FlowsCreated - warmFlows));
        Assert.True(created2 - created1 <= 2 * moreFlows, $"the second wave created {created2 - created1} ring buffers ({moreFlows} flows more than the first)");
        Assert.Equal(0, second["ring_buffers_in_use"]);
    }

    /// <summary>One wave: <paramref name="clients"/> connections (500 per source address) each sending 1 MiB for up to
    /// 8 s, then reset. Returns the stats once every flow has left the table.</summary>
    private ProxyStats RunWave(int clients, string name)
    {
        const string Script = """
            import resource, selectors, socket, sys, time
            resource.setrlimit(resource.RLIMIT_NOFILE, (20000, 20000))
            n, first = int(sys.argv[1]), int(sys.argv[2])
            payload = memoryview(b"\xa5" * (1 << 20))
            sel = selectors.DefaultSelector()
            socks, sent, refused = [], {}, 0
            for i in range(n):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.setblocking(False)
                s.bind(("198.18.1.%d" % (first + i // 500), 0))
                s.connect_ex(("198.18.0.1", 80))
                socks.append(s)
                sent[s] = 0
            # Every connection up before the push starts (bounded), so two waves hold the same number of flows.
            wait = selectors.DefaultSelector()
            for s in socks:
                wait.register(s, selectors.EVENT_WRITE)
            t0 = time.monotonic()
            while wait.get_map() and time.monotonic() - t0 < 30:
                for key, _ in wait.select(0.2):
                    wait.unregister(key.fileobj)
            connect_s = time.monotonic() - t0
            for s in socks:
                sel.register(s, selectors.EVENT_WRITE)
            t0 = time.monotonic()
            while sel.get_map() and time.monotonic() - t0 < 8:
                for key, _ in sel.select(0.2):
                    s = key.fileobj
                    try:
                        k = s.send(payload[sent[s]:])
                        sent[s] += k
                        done = sent[s] >= len(payload)
                    except BlockingIOError:
                        done = False
                    except OSError:
                        refused += 1
                        done = True
                    if done:
                        sel.unregister(s)
            while time.monotonic() - t0 < 8:
                time.sleep(0.2)
            print("connected in %.1f s, pushed %d bytes, %d of %d complete, %d failed, %.1f s" % (connect_s, sum(sent.values()), sum(1 for v in sent.values() if v >= len(payload)), n, refused, time.monotonic() - t0))
            for s in socks:
                s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                s.close()
            """;
        CommandResult r = InClient(TimeSpan.FromSeconds(90), "python3", "-c", Script, clients.ToString(CultureInfo.InvariantCulture), "150");
        Assert.True(r.Succeeded, r.ToString());
        ProxyStats stats = WaitForStats(s => s["flows_active"] == 0, TimeSpan.FromSeconds(45), $"every flow of the {name} gone");
        Log($"{name}: {r.StdOut.Trim()}; flows_created {stats.FlowsCreated}, flow_buffer_bytes {stats["flow_buffer_bytes"]}");
        return stats;
    }

    /// <summary>VmRSS once the reclaimer has had its chance: polled for up to 40 s until within 64 MiB of the baseline.</summary>
    private static long SettledRss(int pid, long baselineKiB)
    {
        long rss = StatusKiB(pid, "VmRSS");
        var clock = Stopwatch.StartNew();
        while (rss - baselineKiB > 64 * 1024 && clock.Elapsed < TimeSpan.FromSeconds(40))
        {
            Thread.Sleep(1000);
            rss = StatusKiB(pid, "VmRSS");
        }

        return rss;
    }

    private static int EnvInt(string name, int fallback) =>
        int.TryParse(Environment.GetEnvironmentVariable(name), NumberStyles.None, CultureInfo.InvariantCulture, out int v) && v > 0 ? v : fallback;

    /// <summary>Sequential HTTP/1.0 requests from the client namespace; returns how many got a 200.</summary>
    private int RunRequests(int count)
    {
        const string Script = """
            ok=0
            for _ in $(seq "$1"); do
              code=$(curl --http1.0 -s -o /dev/null -w '%{http_code}' --max-time 5 "$2") || true
              [ "$code" = 200 ] && ok=$((ok + 1))
            done
            echo "$ok"
            """;
        CommandResult r = InClient(TimeSpan.FromSeconds(10 + (count / 5)), "bash", "-c", Script, "bash",
            count.ToString(CultureInfo.InvariantCulture), $"http://{LabFixture.ServerIp}/index.html");
        Assert.True(r.Succeeded, r.ToString());
        return int.Parse(r.StdOut.Trim(), CultureInfo.InvariantCulture);
    }
}
