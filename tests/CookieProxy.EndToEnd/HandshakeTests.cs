using System.Net;
using CookieProxy.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace CookieProxy.EndToEnd;

/// <summary>
/// Issue 2: CookieProxy answers SYNs to the hidden port with cookie SYN+ACKs and completes the
/// handshake on the returning ACK. The kernel of cp-srv never sees port 80 (lab nft table).
/// </summary>
[Trait("Tier", "handshake")]
public sealed class HandshakeTests : LabTestBase
{
    private const string FloodSource = "198.18.1.7";
    private const int FloodSeconds = 6;
    private const int FloodMaxCount = 50000;
    private const int FloodMinCount = 1000;

    public HandshakeTests(LabFixture lab, ITestOutputHelper output)
        : base(lab, output)
    {
    }

    [LabFact]
    public void Client_connect_completes_through_cookieproxy()
    {
        StartProxy();
        string pcap = Path.Combine(Lab.LabDir, "handshake.pcap");
        using (RunningCommand dump = StartInClient("tcpdump", "--immediate-mode", "-i", LabFixture.ClientDev, "-n", "-s", "256", "-Z", "root",
            "-w", pcap, $"tcp and host {LabFixture.ServerIp} and port 80"))
        {
            Capture.WaitUntilListening(dump);
            Assert.Equal("connected", TryConnect());
            Thread.Sleep(300);
            Capture.Stop(dump, Log);
        }

        WaitForStats(s => s.CookieValid >= 1, TimeSpan.FromSeconds(5), "cookie_valid >= 1");
        Capture.KeepForCorpus(pcap, "handshake", Log);

        // The wire view of the same handshake: SYN, one cookie SYN+ACK, ACK of the cookie.
        List<CapturedTcp> packets = PcapFile.ReadTcp(pcap);
        CapturedTcp syn = Assert.Single(packets, p => p.IsSynOnly);
        CapturedTcp synAck = Assert.Single(packets, p => p.IsSynAck);
        Assert.True(synAck.IpChecksumOk && synAck.TcpChecksumOk == true, "SYN+ACK checksum: " + synAck);
        Assert.Equal(syn.Seq + 1, synAck.Ack);
        Assert.True(synAck.OptionsLength >= 4, "SYN+ACK carries no MSS option: " + synAck);
        Assert.Contains(packets, p => p.Flags == CapturedTcp.AckFlag && p.SourcePort == syn.SourcePort && p.Ack == synAck.Seq + 1);
    }

    [LabFact]
    public void Max_conn_per_source_refuses_the_third_held_connection_and_spares_other_sources()
    {
        StartProxy("--max-conn-per-source", "2");
        // Three keep-alive HTTP connections held open at once from one source, then one from another source.
        const string Script = """
            import socket, sys
            def open_and_get(src):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.settimeout(3)
                s.bind((src, 0))
                try:
                    # The refusal can land while connect() is still finishing, so it sits inside the try.
                    s.connect(("198.18.0.1", 80))
                    s.sendall(b"GET /index.html HTTP/1.1\r\nHost: lab\r\n\r\n")
                    data = s.recv(4096)
                    return s, ("ok" if data.startswith(b"HTTP/1.1 200") else "empty" if not data else "other")
                except (ConnectionResetError, ConnectionRefusedError):
                    return s, "reset"
                except socket.timeout:
                    return s, "timeout"
            held = []
            results = []
            for src in ["198.18.1.60", "198.18.1.60", "198.18.1.60", "198.18.1.61"]:
                s, r = open_and_get(src)
                held.append(s)
                results.append(r)
            print(" ".join(results))
            """;
        CommandResult r = InClient(TimeSpan.FromSeconds(30), "python3", "-c", Script);
        Assert.True(r.Succeeded, r.ToString());
        Assert.Equal("ok ok reset ok", r.StdOut.Trim());
        WaitForStats(s => s.Drops.GetValueOrDefault("RateLimited") >= 1, TimeSpan.FromSeconds(5), "a RateLimited drop");
    }

    [LabFact]
    public void First_data_timeout_resets_a_silent_connection_but_not_a_talking_one()
    {
        StartProxy("--first-data-timeout", "1");
        const string Script = """
            import socket, time
            def probe(talk):
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.settimeout(5)
                s.connect(("198.18.0.1", 80))
                if talk:
                    s.sendall(b"GET /index.html HTTP/1.1\r\nHost: lab\r\n\r\n")
                t0 = time.monotonic()
                try:
                    data = s.recv(4096)
                    return ("ok" if data.startswith(b"HTTP/1.1 200") else "eof") + " %.1f" % (time.monotonic() - t0)
                except ConnectionResetError:
                    return "reset %.1f" % (time.monotonic() - t0)
                except socket.timeout:
                    return "timeout"
            print(probe(False), "|", probe(True))
            """;
        CommandResult r = InClient(TimeSpan.FromSeconds(30), "python3", "-c", Script);
        Assert.True(r.Succeeded, r.ToString());
        string[] parts = r.StdOut.Trim().Split('|', StringSplitOptions.TrimEntries);
        Assert.StartsWith("reset", parts[0]);
        Assert.StartsWith("ok", parts[1]);
    }

    [LabFact]
    public void Connects_from_twenty_fresh_source_addresses_all_complete()
    {
        StartProxy();
        for (int i = 20; i < 40; i++)
        {
            Assert.Equal("connected", TryConnect($"198.18.1.{i}"));
        }

        WaitForStats(s => s.CookieValid >= 20, TimeSpan.FromSeconds(5), "cookie_valid >= 20");
    }

    [LabFact]
    public void Acks_with_forged_cookies_are_counted_invalid_and_create_no_flow()
    {
        StartProxy();
        Assert.Equal("connected", TryConnect()); // One good flow first, so the counters exist and are warm.
        ProxyStats before = WaitForQuietStats(TimeSpan.FromSeconds(6));

        // Bare ACKs whose acknowledgment number cannot be a cookie we issued (no SYN was ever sent).
        CommandResult acks = InClient(TimeSpan.FromSeconds(20), "timeout", "10", "hping3", "-q", "-A", "-p", "80", "-i", "u10000",
            "-c", "20", "-M", "12345", "-L", "424242", "-a", "198.18.1.8", LabFixture.ServerIp);
        Assert.False(acks.TimedOut, acks.ToString());

        ProxyStats after = WaitForStats(s => s.CookieInvalid - before.CookieInvalid >= 20, TimeSpan.FromSeconds(5), "cookie_invalid to grow by 20");
        Assert.Equal(before.FlowsCreated, after.FlowsCreated);
        Assert.Equal(before.CookieValid, after.CookieValid);
    }

    [LabFact]
    public void Without_cookieproxy_the_hidden_port_does_not_answer()
    {
        // A timeout, not "refused": the kernel neither answers nor resets port 80.
        Assert.Equal("timeout", TryConnect(timeoutSeconds: 2));
    }

    [LabFact]
    public void After_cookieproxy_stops_the_hidden_port_goes_silent_again()
    {
        StartProxy();
        StopProxy();
        Assert.Equal("timeout", TryConnect(timeoutSeconds: 2));
    }

    [LabFact]
    public void Stats_file_has_the_contract_counters_and_stderr_gets_a_line_per_interval()
    {
        StartProxy();
        Assert.Equal("connected", TryConnect());
        ProxyStats stats = WaitForStats(s => s.CookieValid >= 1, TimeSpan.FromSeconds(5), "cookie_valid >= 1");
        foreach (string name in ProxyStats.RequiredCounters)
        {
            Assert.True(stats.Counters.ContainsKey(name), $"stats file lacks '{name}': {stats.Json}");
        }

        Assert.True(stats.HasDropsObject, "stats file lacks the 'drops' object: " + stats.Json);
        Assert.True(stats.SynReceived >= 1 && stats.SynAckSent >= 1 && stats.FlowsCreated >= 1, stats.Json);

        Thread.Sleep(3000);
        int lines = ProxyLog().Split('\n', StringSplitOptions.RemoveEmptyEntries).Length;
        Assert.True(lines >= 2, "expected a counter line on stderr every second, got:\n" + ProxyLog());

        // Written once more on exit.
        File.Delete(Lab.StatsPath);
        StopProxy();
        Assert.NotNull(ProxyStats.TryRead(Lab.StatsPath));
    }

    [LabFact]
    public void Hide_port_option_hides_the_port_itself()
    {
        try
        {
            CommandResult up = LabSh("up", "--no-hide");
            Assert.True(up.Succeeded, up.ToString());

            // Without hiding, cp-srv's kernel resets SYNs to the closed port 80.
            Assert.Equal("refused", TryConnect(timeoutSeconds: 2));

            StartProxy("--hide-port");
            Assert.Equal("connected", TryConnect());
            WaitForStats(s => s.CookieValid >= 1, TimeSpan.FromSeconds(5), "cookie_valid >= 1");

            // On exit the proxy removes its table again: the port must not stay a silent black hole.
            StopProxy();
            Assert.Equal("refused", TryConnect(timeoutSeconds: 2));
        }
        finally
        {
            StopProxy();
            LabSh("up");
        }
    }

    [LabFact]
    public void Flood_gets_exactly_one_valid_synack_per_syn_and_memory_stays_flat()
    {
        int pid = StartProxy();
        Assert.Equal("connected", TryConnect()); // Warm up (JIT, first flow) before measuring.
        ProxyStats before = WaitForQuietStats(TimeSpan.FromSeconds(6));
        long rssBefore = RssKiB(pid);

        string pcap = Path.Combine(Lab.LabDir, "flood.pcap");
        long dropped;
        CommandResult flood;
        using (RunningCommand dump = StartInClient("tcpdump", "-i", LabFixture.ClientDev, "-n", "-s", "128", "-B", "65536", "-Z", "root",
            "-w", pcap, $"tcp and host {FloodSource} and host {LabFixture.ServerIp} and port 80"))
        {
            Capture.WaitUntilListening(dump);

            // Bounded in time and count, <= 10 kpps, from one of our own addresses (never --rand-source).
            flood = InClient(TimeSpan.FromSeconds(30), "timeout", FloodSeconds.ToString(), "hping3", "-q", "-S", "-p", "80", "-i", "u100",
                "-c", FloodMaxCount.ToString(), "-a", FloodSource, LabFixture.ServerIp);
            Thread.Sleep(2000); // Last SYN+ACKs, and tcpdump's 1 s ring block timeout.
            dropped = Capture.Stop(dump, Log);
        }

        Assert.False(flood.TimedOut, flood.ToString());
        Assert.True(dropped == 0, $"tcpdump lost {dropped} packets: the count below would be meaningless");

        List<CapturedTcp> packets = PcapFile.ReadTcp(pcap);
        IPAddress client = IPAddress.Parse(FloodSource);
        IPAddress server = IPAddress.Parse(LabFixture.ServerIp);
        List<CapturedTcp> syns = packets.Where(p => p.IsSynOnly && p.Source.Equals(client) && p.DestinationPort == 80).ToList();
        List<CapturedTcp> synAcks = packets.Where(p => p.IsSynAck && p.Source.Equals(server) && p.SourcePort == 80 && p.Destination.Equals(client)).ToList();
        Log($"captured {packets.Count} packets: {syns.Count} SYNs out, {synAcks.Count} SYN+ACKs in");

        Assert.True(syns.Count >= FloodMinCount, $"hping3 sent only {syns.Count} SYNs");
        Assert.Equal(syns.Count, syns.Select(s => s.SourcePort).Distinct().Count());

        var synByPort = syns.ToDictionary(s => s.SourcePort);
        var answered = new Dictionary<ushort, int>();
        var problems = new List<string>();
        foreach (CapturedTcp sa in synAcks)
        {
            if (!sa.IpChecksumOk || sa.TcpChecksumOk != true)
            {
                problems.Add($"bad checksum: {sa}");
            }
            else if (!synByPort.TryGetValue(sa.DestinationPort, out CapturedTcp syn))
            {
                problems.Add($"SYN+ACK for a port we never sent from: {sa}");
            }
            else if (sa.Ack != syn.Seq + 1)
            {
                problems.Add($"ack {sa.Ack} != seq+1 {syn.Seq + 1}: {sa}");
            }
            else if (sa.Window == 0)
            {
                problems.Add($"zero window: {sa}");
            }

            answered[sa.DestinationPort] = answered.GetValueOrDefault(sa.DestinationPort) + 1;
        }

        int unanswered = syns.Count(s => !answered.ContainsKey(s.SourcePort));
        int duplicated = answered.Count(kv => kv.Value > 1);
        Assert.True(problems.Count == 0, $"{problems.Count} malformed SYN+ACKs, first: {string.Join('\n', problems.Take(5))}");
        Assert.True(unanswered == 0 && duplicated == 0,
            $"{syns.Count} SYNs: {unanswered} got no SYN+ACK, {duplicated} got more than one");

        ProxyStats after = WaitForQuietStats(TimeSpan.FromSeconds(10));
        Assert.Equal(syns.Count, after.SynReceived - before.SynReceived);
        Assert.Equal(syns.Count, after.SynAckSent - before.SynAckSent);

        long rssAfter = RssKiB(pid);
        Log($"VmRSS before {rssBefore} KiB, after {rssAfter} KiB");
        Assert.True(rssAfter - rssBefore < 20 * 1024, $"RSS grew by {(rssAfter - rssBefore) / 1024} MiB during a {syns.Count}-SYN flood");
    }
}
