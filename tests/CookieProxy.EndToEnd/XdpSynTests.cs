using System.Globalization;
using CookieProxy.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace CookieProxy.EndToEnd;

/// <summary>
/// The published binary with the XDP SYN path, which is on by default (<c>--xdp-syn auto</c>): the kernel answers
/// the SYNs (XDP_TX) with the same cookies the user-space validator then accepts, so real curl transfers work
/// through it; a bounded hping3 flood is answered one SYN+ACK per SYN without the SYNs reaching user space; a
/// SYN on a live flow still gets the flow's challenge ACK; <c>--syn-rate-per-source</c> is enforced in the
/// program; every way the proxy ends detaches the program. Run alone with <c>--filter Tier=xdpsyn</c>.
/// </summary>
/// <remarks>The lab's client veth runs no XDP program, so <c>auto</c> picks generic XDP there (native XDP_TX would
/// not reach the peer); one test gives the client an XDP program to see auto pick native.</remarks>
[Trait("Tier", "xdpsyn")]
public sealed class XdpSynTests : LabTestBase
{
    public XdpSynTests(LabFixture lab, ITestOutputHelper output)
        : base(lab, output)
    {
    }

    [LabFact]
    public void The_default_command_line_loads_the_xdp_program_and_curl_connects_through_it()
    {
        StartXdpProxy();
        Assert.Contains("SYNs answered in XDP on cp-s0 (generic: veth whose peer runs no native XDP", ProxyLog());
        Assert.Contains("xdpgeneric", ServerLinkDetails());

        AssertDownloadIntact("index.html", tag: "xdpsyn");
        AssertDownloadIntact("1m.bin", tag: "xdpsyn");
        AssertTenMiBUploadIntact();

        // With the default syncache the calm program passes SYNs up (the capture threads remember them and
        // retransmit their SYN+ACKs); it answers them itself once a thread sees a flood (SynCacheTests).
        ProxyStats s = WaitForStats(s => s.CookieValid >= 3 && s["xdp_syn_passed"] >= 3, TimeSpan.FromSeconds(5), "cookie_valid >= 3 from SYNs the program passed up");
        Assert.Equal(0, s["xdp_internal_errors"]);
        Assert.Equal(0, s["xdp_live_flow_update_failed"]);

        StopProxy();
        // A clean exit: the final counters (which read the program's map) were written before it was detached.
        Assert.DoesNotContain("Unhandled exception", ProxyLog());
        Assert.Matches(@"cookieproxy final: .* xdp_passed=\d+", ProxyLog());
        Assert.DoesNotContain("xdpgeneric", ServerLinkDetails());
        Assert.Equal("timeout", TryConnect(timeoutSeconds: 2)); // the lab's hide rule is back in charge
    }

    [LabFact]
    public void With_a_native_xdp_program_on_the_client_veth_auto_picks_native_and_connections_work()
    {
        // A veth's native XDP_TX reaches the peer only while the peer runs native XDP itself (XdpDeviceInfo); an
        // XDP_PASS program on the client's end is the smallest such thing.
        string pass = CompilePassProgram();
        string attach = $"ip -n {LabFixture.ClientNs} link set dev {ClientDev} xdpdrv";
        Assert.True(CommandRunner.Run("sh", ["-c", $"{attach} obj {pass} sec xdp"], ShortTimeout, Log).Succeeded);
        try
        {
            StartAnsweringXdpProxy();
            Assert.Contains("SYNs answered in XDP on cp-s0 (native: veth whose peer runs native XDP", ProxyLog());
            string link = ServerLinkDetails();
            Assert.Matches(@"mtu \d+ xdp ", link);              // driver mode ("xdp"), not "xdpgeneric"
            Assert.DoesNotContain("xdpgeneric", link);
            AssertDownloadIntact("1m.bin", tag: "xdpnative");
            Assert.Equal("connected", TryConnect("198.18.1.78"));
            ProxyStats s = WaitForStats(s => s.CookieValid >= 2 && s["xdp_synack_sent"] >= 2, TimeSpan.FromSeconds(5), "XDP SYN+ACKs validated");
            Assert.Equal(0, s["xdp_internal_errors"]);

            // The peer's program goes while we run: within a few seconds the proxy moves to generic and says so.
            Assert.True(CommandRunner.Run("sh", ["-c", $"{attach} off"], ShortTimeout, Log).Succeeded);
            AssertLogEventuallyContains(Lab.ProxyLogPath, "SYNs now answered in generic XDP");
            Assert.Contains("xdpgeneric", ServerLinkDetails());
            Assert.Equal("connected", TryConnect("198.18.1.79"));
        }
        finally
        {
            CommandRunner.Run("sh", ["-c", $"{attach} off"], ShortTimeout, Log);
        }
    }

    /// <summary>An XDP program that passes everything, built with the clang the build uses (into the lab dir).</summary>
    private string CompilePassProgram()
    {
        string c = Path.Combine(Lab.LabDir, "xdp_pass.c"), o = Path.Combine(Lab.LabDir, "xdp_pass.o");
        File.WriteAllText(c, """
            #include <linux/bpf.h>
            #include <bpf/bpf_helpers.h>
            SEC("xdp")
            int xdp_pass(struct xdp_md *ctx) { return XDP_PASS; }
            char _license[] SEC("license") = "GPL";
            """);
        string multiarch = System.Runtime.InteropServices.RuntimeInformation.OSArchitecture == System.Runtime.InteropServices.Architecture.Arm64
            ? "aarch64-linux-gnu" : "x86_64-linux-gnu";
        CommandResult r = CommandRunner.Run("clang", ["-O2", "-g", "-target", "bpf", $"-I/usr/include/{multiarch}", "-c", c, "-o", o], ShortTimeout, Log);
        Assert.True(r.Succeeded, r.ToString());
        return o;
    }

    [LabFact]
    public void Bounded_flood_is_answered_in_the_kernel_one_synack_per_syn_and_legit_clients_still_get_through()
    {
        StartAnsweringXdpProxy();
        Assert.Equal("connected", TryConnect()); // warm up (JIT, first flow)
        (ProxyStats before, ProxyStats after) = RunBoundedSynFlood(() =>
        {
            AssertDownloadIntact("1m.bin", "198.18.1.77", "xdpsyn");
            Assert.Equal("connected", TryConnect("198.18.1.78"));
        });
        long syns = after.SynReceived - before.SynReceived;
        long synAcks = after.SynAckSent - before.SynAckSent;
        long inKernel = after["xdp_synack_sent"] - before["xdp_synack_sent"];
        long userSyns = syns - inKernel;
        Log($"flood: {syns} SYNs, {synAcks} SYN+ACKs, {inKernel} of them from XDP, {userSyns} SYNs answered in user space");
        Assert.True(syns >= BoundedFloodMinSyns, $"only {syns} SYNs reached the proxy");
        Assert.Equal(syns, synAcks);
        // hping3's bare SYNs are the shape the program answers: all of them in the kernel. (The flood source is a
        // real address of the client namespace, whose stack answers each SYN+ACK with a RST; those do reach
        // user space, as NoFlow drops.)
        Assert.True(userSyns <= 10, $"{userSyns} of {syns} SYNs reached user space");
        Assert.Equal(0, after["xdp_internal_errors"]);
    }

    [LabFact]
    public void A_syn_on_a_live_flow_reaches_the_flow_and_gets_its_challenge_ack()
    {
        StartAnsweringXdpProxy();
        // An established connection, then a SYN of our own on its 4-tuple (RFC 5961 4): the program must pass it
        // up, and the flow answers with an ACK for its own sequence space, not a cookie SYN+ACK.
        const string Script = """
            import socket, struct, sys, time
            def csum(b):
                if len(b) % 2: b += b"\0"
                s = sum(struct.unpack("!%dH" % (len(b) // 2), b))
                while s >> 16: s = (s & 0xffff) + (s >> 16)
                return ~s & 0xffff
            c = socket.create_connection(("198.18.0.1", 80), 3)
            sport = c.getsockname()[1]
            # Our ACK has to reach the proxy's capture thread and make the flow first (slow on a loaded machine).
            import json
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                try:
                    if json.load(open(sys.argv[2])).get("flows_active", 0) >= 1:
                        break
                except (OSError, ValueError):
                    pass
                time.sleep(0.1)
            time.sleep(0.2)
            sniff = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
            sniff.bind((sys.argv[1], 0))
            sniff.settimeout(0.2)
            src, dst = socket.inet_aton("198.18.0.2"), socket.inet_aton("198.18.0.1")
            tcp = struct.pack("!HHIIBBHHH", sport, 80, 123456789, 0, 5 << 4, 0x02, 64240, 0, 0)
            tcp = tcp[:16] + struct.pack("!H", csum(src + dst + struct.pack("!BBH", 0, 6, len(tcp)) + tcp)) + tcp[18:]
            raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
            raw.sendto(tcp, ("198.18.0.1", 0))
            deadline, seen = time.monotonic() + 2, []
            while time.monotonic() < deadline:
                try:
                    frame, addr = sniff.recvfrom(2048)
                except socket.timeout:
                    continue
                if addr[2] == socket.PACKET_OUTGOING or frame[23] != 6:
                    continue
                ihl = (frame[14] & 15) * 4
                sp, dp = struct.unpack("!HH", frame[14 + ihl:18 + ihl])
                if sp == 80 and dp == sport:
                    seen.append(frame[14 + ihl + 13])
            print(" ".join("%02x" % f for f in seen) or "none")
            c.close()
            """;
        CommandResult r = InClient(TimeSpan.FromSeconds(30), "python3", "-c", Script, ClientDev, Lab.StatsPath);
        Assert.True(r.Succeeded, r.ToString());
        string[] flags = r.StdOut.Trim().Split(' ');
        Log($"segments from the proxy after our SYN: {r.StdOut.Trim()}");
        Assert.NotEqual("none", flags[0]);
        Assert.DoesNotContain("12", flags);                     // no SYN+ACK for the live 4-tuple
        Assert.Equal(0x10, int.Parse(flags[0], NumberStyles.HexNumber) & 0x17);   // an ACK, no SYN/RST/FIN
        ProxyStats s = WaitForStats(s => s["xdp_syn_live_flow"] >= 1, TimeSpan.FromSeconds(5), "the program passed the SYN up as a live flow's");
        Assert.Equal(0, s["xdp_live_flow_update_failed"]);
    }

    [LabFact]
    public void With_a_syn_rate_per_source_one_source_over_budget_is_cut_and_others_are_answered()
    {
        StartAnsweringXdpProxy("--syn-rate-per-source", "20", "--source-prefix4", "32");
        Assert.Contains("--syn-rate-per-source 20/s per prefix per CPU", ProxyLog());
        ProxyStats before = WaitForQuietStats(TimeSpan.FromSeconds(6));
        // 600 SYNs in about 0.6 s from one address: 20/s with a burst of 20 lets about 32 through per CPU.
        CommandResult flood = InClient(TimeSpan.FromSeconds(20), "timeout", "5", "hping3", "-q", "-S", "-p", "80", "-i", "u1000",
            "-c", "600", "-a", "198.18.1.9", LabFixture.ServerIp);
        Log(flood.ToString());
        // Other sources are answered (each is its own /32), right after the flood and during its budget's drought.
        Assert.Equal("connected", TryConnect("198.18.1.78"));
        AssertDownloadIntact("index.html", "198.18.1.77", "xdprate");
        ProxyStats after = WaitForQuietStats(TimeSpan.FromSeconds(10));

        long overBudget = after["xdp_syn_over_budget"] - before["xdp_syn_over_budget"];
        long answered = after["xdp_synack_sent"] - before["xdp_synack_sent"];
        Log($"rate: {answered} SYN+ACKs from XDP, {overBudget} SYNs over budget");
        Assert.True(overBudget >= 400, $"only {overBudget} of 600 SYNs were cut");
        Assert.InRange(answered, 20, 2 * 40 + 2 + 10);         // the flood's share on up to two CPUs, plus the legit clients
        Assert.Equal(0, after["xdp_internal_errors"]);
    }

    [LabFact]
    public void A_listener_added_by_a_reload_is_answered_in_the_kernel()
    {
        // The program's endpoint map is the listener set: a reload that adds :81 must put it there, or its SYNs
        // would go to user space (or, hidden, nowhere). Without the syncache the program answers every bare SYN.
        string config = Path.Combine(Lab.LabDir, "xdp-reload.yaml");
        string Listeners(params int[] ports) => string.Concat(ports.Select(p => $"  - listen: {LabFixture.ServerIp}:{p}\n    backend: 127.0.0.1:8080\n"));
        string Config(params int[] ports) =>
            $"interface: {LabFixture.ServerDev}\nsyncache: 0\nhide-port: true\nrun-dir: {Path.Combine(Lab.LabDir, "run")}\nlisteners:\n{Listeners(ports)}";
        File.WriteAllText(config, Config(80));
        StartXdpProxy("--config", config);
        Assert.Equal("connected", TryConnect());

        File.WriteAllText(config, Config(80, 81));
        CommandResult hup = CommandRunner.Run("kill", ["-HUP", ProxyPid.ToString(CultureInfo.InvariantCulture)], ShortTimeout, Log);
        Assert.True(hup.Succeeded, hup.ToString());
        DateTime end = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!ProxyLog().Contains("listener added: 198.18.0.1:81", StringComparison.Ordinal) && DateTime.UtcNow < end)
        {
            Thread.Sleep(100);
        }
        Assert.Contains("listener added: 198.18.0.1:81", ProxyLog());

        ProxyStats before = WaitForQuietStats(TimeSpan.FromSeconds(6));
        // 300 bare SYNs to the new listener, then a real client on it
        CommandResult flood = InClient(TimeSpan.FromSeconds(20), "timeout", "10", "hping3", "-q", "-S", "-p", "81", "-i", "u2000",
            "-c", "300", "-a", "198.18.1.9", LabFixture.ServerIp);
        Log(flood.ToString());
        CommandResult curl = InClient(TimeSpan.FromSeconds(20), "curl", "-fsS", "-o", "/dev/null", "--max-time", "10",
            "--interface", "198.18.1.40", $"http://{LabFixture.ServerIp}:81/index.html");
        Assert.True(curl.Succeeded, curl + "\nproxy log:\n" + ProxyLog());
        ProxyStats after = WaitForQuietStats(TimeSpan.FromSeconds(10));
        long inKernel = after["xdp_synack_sent"] - before["xdp_synack_sent"];
        long syns = after.SynReceived - before.SynReceived;
        Log($"after the reload: {syns} SYNs to :81, {inKernel} answered by the program");
        Assert.True(inKernel >= 290, $"only {inKernel} of ~301 SYNs to the added listener were answered in the kernel");
        Assert.Equal(0, after["xdp_internal_errors"]);
    }

    [LabTheory]
    [InlineData("INT")]
    [InlineData("TERM")]
    [InlineData("KILL")]
    public void Every_way_the_proxy_ends_takes_the_program_off_the_interface(string signal)
    {
        // Started here rather than by lab.sh: a shell's background job starts with SIGINT ignored.
        using RunningCommand proxy = CommandRunner.Start("ip", ["netns", "exec", LabFixture.ServerNs, Lab.BinaryPath, "run",
            "--interface", LabFixture.ServerDev, "--listen", $"{LabFixture.ServerIp}:80", "--backend", "127.0.0.1:8080", "--stats-interval", "1"]);
        Log("started: " + proxy.CommandLine);
        DateTime end = DateTime.UtcNow + TimeSpan.FromSeconds(15);
        while (!ServerLinkDetails().Contains("xdpgeneric", StringComparison.Ordinal) && !proxy.HasExited && DateTime.UtcNow < end)
        {
            Thread.Sleep(200);
        }
        Assert.Contains("xdpgeneric", ServerLinkDetails());
        Assert.Equal("connected", TryConnect());

        proxy.Signal(signal);
        CommandResult done = proxy.WaitForExit(TimeSpan.FromSeconds(15), Log);
        Assert.False(done.TimedOut, $"cookieproxy still running after SIG{signal}");
        // SIGINT/SIGTERM: our own detach, after the final counters; SIGKILL: the kernel closes the process's BPF link.
        Assert.DoesNotContain("xdpgeneric", ServerLinkDetails());
        if (signal != "KILL")
        {
            Assert.Equal(0, done.ExitCode);
            Assert.Matches(@"cookieproxy final: .* xdp_passed=\d+", done.StdOut + done.StdErr);
            Assert.DoesNotContain("Unhandled exception", done.StdOut + done.StdErr);
        }

        // The next start attaches again: nothing stale in the way.
        StartXdpProxy();
        Assert.Contains("SYNs answered in XDP", ProxyLog());
        Assert.DoesNotContain("stale", ProxyLog());
        Assert.Equal("connected", TryConnect());
    }

    private const string ClientDev = "cp-c0";

    /// <summary>The program answering every SYN it can: without the syncache nothing asks it to pass calm SYNs up.</summary>
    private void StartAnsweringXdpProxy(params string[] args) => StartXdpProxy(["--syncache", "0", .. args]);

    /// <summary>StartProxy, then up to 60 s for the start-up line about the SYN path: lab.sh returns after 5 s
    /// even if the proxy is still starting, and on a loaded machine JIT plus the verifier can take longer.</summary>
    private void StartXdpProxy(params string[] args)
    {
        StartProxy(args);
        DateTime end = DateTime.UtcNow + TimeSpan.FromSeconds(60);
        while (!ProxyLog().Contains("SYNs answered in", StringComparison.Ordinal) && DateTime.UtcNow < end)
        {
            Thread.Sleep(200);
        }
        Assert.Contains("SYNs answered in", ProxyLog());
    }

}
