using System.Net;
using CookieProxy.EndToEnd.Infrastructure;
using Xunit.Abstractions;

namespace CookieProxy.EndToEnd;

/// <summary>The lab itself, without CookieProxy: if these fail, no other end-to-end result means anything.</summary>
[Trait("Tier", "lab")]
public sealed class LabTests : LabTestBase
{
    public LabTests(LabFixture lab, ITestOutputHelper output)
        : base(lab, output)
    {
    }

    [LabTheory]
    [InlineData("index.html")]
    [InlineData("1m.bin")]
    public void Backend_serves_the_test_files_directly_on_port_8080(string name)
    {
        string file = Path.Combine(Lab.LabDir, "direct-" + name);
        CommandResult r = InClient(ShortTimeout, "curl", "-fsS", "--max-time", "10", "-o", file, $"http://{LabFixture.ServerIp}:8080/{name}");
        Assert.True(r.Succeeded, r.ToString());
        Assert.Equal(Lab.ExpectedSha256(name), Hashing.Sha256OfFile(file));
    }

    [LabFact]
    public void Extra_client_addresses_reach_the_server()
    {
        CommandResult r = InClient(ShortTimeout, "curl", "-fsS", "--max-time", "5", "--interface", "198.18.1.254",
            "-o", "/dev/null", $"http://{LabFixture.ServerIp}:8080/index.html");
        Assert.True(r.Succeeded, r.ToString());
        AssertLogEventuallyContains(Lab.AccessLogPath, "198.18.1.254 198.18.1.254 ");
    }

    [LabFact]
    public void Upload_target_stores_the_body_and_answers_its_sha256()
    {
        string source = Path.Combine(Lab.CacheDir, "10m.bin");
        CommandResult r = InClient(ShortTimeout, "curl", "-fsS", "--max-time", "15", "--data-binary", "@" + source,
            "-H", "Content-Type: application/octet-stream", $"http://{LabFixture.ServerIp}:8080/cgi-bin/upload");
        Assert.True(r.Succeeded, r.ToString());
        Assert.Equal($"{Lab.ExpectedSha256("10m.bin")} 10485760", r.StdOut.Trim());
    }

    [LabTheory]
    [InlineData(1, "198.18.1.91")]
    [InlineData(2, "198.18.1.92")]
    public void Remoteip_port_logs_the_address_from_a_proxy_protocol_header(int version, string claimed)
    {
        // A hand-made PROXY header (haproxy's proxy-protocol.txt) proves the backend side of the
        // --proxy-protocol tests works before CookieProxy is involved.
        const string Script = """
            import socket, struct, sys
            version, claimed = int(sys.argv[1]), sys.argv[2]
            s = socket.create_connection(("198.18.0.1", 8081), 5)
            if version == 1:
                header = ("PROXY TCP4 %s 198.18.0.1 40000 8081\r\n" % claimed).encode()
            else:
                body = socket.inet_aton(claimed) + socket.inet_aton("198.18.0.1") + struct.pack("!HH", 40000, 8081)
                header = b"\r\n\r\n\x00\r\nQUIT\n" + bytes([0x21, 0x11]) + struct.pack("!H", len(body)) + body
            s.sendall(header + b"GET /index.html HTTP/1.0\r\n\r\n")
            print(s.recv(64).split(b"\r\n")[0].decode())
            """;
        CommandResult r = InClient(ShortTimeout, "python3", "-c", Script, version.ToString(), claimed);
        Assert.True(r.Succeeded, r.ToString());
        Assert.Equal("HTTP/1.1 200 OK", r.StdOut.Trim());
        AssertLogEventuallyContains(Lab.RemoteIpLogPath, claimed + " " + LabFixture.ClientIp + " ");
    }

    [LabTheory]
    [InlineData(true)]
    [InlineData(false)]
    public void Checksum_and_segmentation_offloads_are_off(bool server)
    {
        (string ns, string dev) = server ? (LabFixture.ServerNs, LabFixture.ServerDev) : (LabFixture.ClientNs, LabFixture.ClientDev);
        CommandResult r = CommandRunner.Run("ip", ["netns", "exec", ns, "ethtool", "-k", dev], ShortTimeout, Log);
        Assert.True(r.Succeeded, r.ToString());
        Assert.Contains("tx-checksumming: off", r.StdOut);
        Assert.Contains("generic-receive-offload: off", r.StdOut);
        Assert.Contains("tcp-segmentation-offload: off", r.StdOut);
    }

    [LabFact]
    public void Pcap_reader_sees_correct_checksums_on_a_kernel_handshake()
    {
        string pcap = Path.Combine(Lab.LabDir, "kernel-handshake.pcap");
        using (RunningCommand dump = StartInClient("tcpdump", "--immediate-mode", "-i", LabFixture.ClientDev, "-n", "-s", "2048", "-Z", "root", "-w", pcap,
            $"tcp and host {LabFixture.ServerIp} and port 8080"))
        {
            Capture.WaitUntilListening(dump);
            CommandResult r = InClient(ShortTimeout, "curl", "-fsS", "--max-time", "5", "-o", "/dev/null", $"http://{LabFixture.ServerIp}:8080/1k.bin");
            Assert.True(r.Succeeded, r.ToString());
            Capture.Stop(dump, Log);
        }

        List<CapturedTcp> packets = PcapFile.ReadTcp(pcap);
        Assert.Contains(packets, p => p.IsSynOnly && p.Source.Equals(IPAddress.Parse(LabFixture.ClientIp)));
        Assert.Contains(packets, p => p.IsSynAck && p.Source.Equals(IPAddress.Parse(LabFixture.ServerIp)));
        Assert.Contains(packets, p => p.PayloadLength >= 1024);
        Assert.All(packets, p =>
        {
            Assert.True(p.IpChecksumOk, $"bad IPv4 checksum: {p}");
            Assert.True(p.TcpChecksumOk == true, $"bad TCP checksum: {p}");
        });
    }

    [LabFact]
    public void Down_leaves_nothing_behind_and_up_rebuilds_the_lab()
    {
        LabSh("impair-on", "--both");
        string apachePid = File.ReadAllText(Path.Combine(Lab.LabDir, "apache", "apache.pid")).Trim();

        CommandResult down = LabSh("down");
        Assert.True(down.Succeeded, down.ToString());
        CommandResult namespaces = CommandRunner.Run("ip", ["netns", "list"], ShortTimeout, Log);
        Assert.DoesNotContain(LabFixture.ServerNs, namespaces.StdOut);
        Assert.DoesNotContain(LabFixture.ClientNs, namespaces.StdOut);
        Assert.False(Directory.Exists(Lab.LabDir), Lab.LabDir + " still exists");
        Assert.False(Capture.IsAlive(int.Parse(apachePid)), $"apache {apachePid} still running");
        CommandResult links = CommandRunner.Run("ip", ["-br", "link"], ShortTimeout, Log);
        Assert.DoesNotContain("cp-s0", links.StdOut);
        Assert.DoesNotContain("cp-c0", links.StdOut);
        CommandResult tables = CommandRunner.Run("nft", ["list", "tables"], ShortTimeout, Log);
        Assert.DoesNotContain("cookieproxy", tables.StdOut);

        Assert.True(LabSh("down").Succeeded, "down must be idempotent");
        CommandResult up = LabSh("up");
        Assert.True(up.Succeeded, up.ToString());
        CommandResult status = LabSh("status");
        Assert.True(status.Succeeded, status.ToString());
    }
}
