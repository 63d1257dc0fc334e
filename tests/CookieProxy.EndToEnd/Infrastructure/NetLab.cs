using System.Globalization;
using System.Text.RegularExpressions;
using Xunit.Abstractions;

namespace CookieProxy.EndToEnd.Infrastructure;

/// <summary>
/// The lab's optional IPv6 and VLAN parts (scripts/lab.sh lab_ipv6_up, lab_vlan_up; constants as in
/// scripts/lib/common.sh) and the server-speaks-first banner backend.
/// </summary>
public static class NetLab
{
    public const string ServerIp6 = "2001:db8:18::1";
    public const string ClientIp6 = "2001:db8:18::2";

    public const int VlanId = 100;
    public const string ServerVlanDev = "cp-s0.100";
    public const string ServerIpVlan = "198.18.2.1";
    public const string ClientIpVlan = "198.18.2.2";
    public const string ServerIp6Vlan = "2001:db8:18:2::1";
    public const string ClientIp6Vlan = "2001:db8:18:2::2";

    public const int BannerPort = 2525;
    public const string BannerPrefix = "220 cp-srv.lab ESMTP";

    /// <summary>2001:db8:18:1::N, one of the 32 "fresh source" /128s on cp-c0 (N in 1..32).</summary>
    public static string ExtraIp6(int n) => "2001:db8:18:1::" + n.ToString("x", CultureInfo.InvariantCulture);

    /// <summary>ADDR:PORT for --listen/--backend: IPv6 in brackets.</summary>
    public static string Endpoint(string address, int port) =>
        address.Contains(':', StringComparison.Ordinal) ? $"[{address}]:{port}" : $"{address}:{port}";

    public static string Url(string address, string path) =>
        address.Contains(':', StringComparison.Ordinal) ? $"http://[{address}]/{path}" : $"http://{address}/{path}";

    /// <summary>Whether this kernel can create 802.1Q sub-interfaces (CONFIG_VLAN_8021Q); without it the lab has the
    /// tagged trunk but no cp-s0.100.</summary>
    public static bool KernelHasVlanDevices
    {
        get
        {
            if (Directory.Exists("/proc/net/vlan") || Directory.Exists("/sys/module/8021q"))
            {
                return true;
            }
            try
            {
                using var config = new System.IO.Compression.GZipStream(File.OpenRead("/proc/config.gz"), System.IO.Compression.CompressionMode.Decompress);
                using var reader = new StreamReader(config);
                string text = reader.ReadToEnd();
                return text.Contains("CONFIG_VLAN_8021Q=y", StringComparison.Ordinal) || text.Contains("CONFIG_VLAN_8021Q=m", StringComparison.Ordinal);
            }
            catch (IOException)
            {
                return true; // no config to read: assume a distribution kernel (they all have it) and let the lab say
            }
            catch (UnauthorizedAccessException)
            {
                return true;
            }
        }
    }
}

/// <summary>A lab fact that needs 802.1Q sub-interfaces: skipped, visibly and with the reason, on kernels without them.</summary>
public sealed class VlanDeviceFactAttribute : FactAttribute
{
    public VlanDeviceFactAttribute()
    {
        if (LabFixture.SkipRequested)
        {
            Skip = LabFixture.SkipReason;
        }
        else if (!NetLab.KernelHasVlanDevices)
        {
            Skip = "this kernel has no 802.1Q VLAN devices (CONFIG_VLAN_8021Q is not set): the lab cannot build cp-s0.100; "
                + "the tagged-trunk tests (proxy on the parent) still run";
        }
    }
}

/// <summary>Helpers for the IPv6, VLAN and syncache tests: downloads and connects to any lab address, the
/// XDP mode under test, bounded floods counted by nftables in the client namespace.</summary>
public abstract class NetLabTestBase : LabTestBase
{
    protected NetLabTestBase(LabFixture lab, ITestOutputHelper output)
        : base(lab, output)
    {
    }

    /// <summary>
    /// The proxy arguments for an XDP mode under test: "off" (user space answers every SYN) or "generic" (the XDP
    /// program answers them in the kernel). "off" is the explicit <c>--xdp-syn off</c> (auto is the default).
    /// </summary>
    protected static string[] XdpArgs(string mode) => mode switch
    {
        "off" => ["--xdp-syn", "off"], // auto is the default
        "generic" => ["--xdp-syn", "generic"],
        _ => throw new ArgumentOutOfRangeException(nameof(mode), mode, "off or generic"),
    };

    /// <summary>
    /// <see cref="LabTestBase.StartProxy"/>, then waits until the proxy wrote its first stats file: lab.sh gives up
    /// waiting after 5 s, and on a loaded machine the verifier alone (--xdp-syn) can take longer than that.
    /// </summary>
    protected int StartReadyProxy(params string[] args)
    {
        int pid = StartProxy(args);
        WaitForStats(_ => true, TimeSpan.FromSeconds(60), "the proxy's first stats file (capture and XDP set up)");
        return pid;
    }

    /// <summary>The XDP program must really be on the interface when the test asked for it.</summary>
    protected void AssertXdpMode(string mode)
    {
        if (mode == "generic")
        {
            Assert.Contains("xdpgeneric", ServerLinkDetails());
        }
        else
        {
            // an attachment shows as "xdp"/"xdpgeneric"/... and "prog/xdp" words; the peer's namespace name (which
            // carries CP_LAB_ID) may contain "xdp" too, so match whole words
            Assert.DoesNotMatch(@"(^|\s)(xdp|xdpgeneric|xdpdrv|xdpoffload|prog/xdp)(\s|$)", ServerLinkDetails());
        }
    }

    /// <summary>curl GET of a lab file from any lab address (optionally from a given source), sha256-checked.</summary>
    protected void AssertDownloadIntactFrom(string server, string name, string? source = null, string tag = "net", int maxSeconds = 60)
    {
        string file = Path.Combine(Lab.LabDir, $"{tag}-{name}");
        File.Delete(file);
        string[] from = source is null ? [] : ["--interface", source];
        CommandResult r = InClient(TimeSpan.FromSeconds(maxSeconds + 30),
            ["curl", "-fsS", "--max-time", maxSeconds.ToString(CultureInfo.InvariantCulture), .. from, "-o", file, NetLab.Url(server, name)]);
        Assert.True(r.Succeeded, r.ToString() + "\nproxy log:\n" + ProxyLog());
        Assert.Equal(Lab.ExpectedSha256(name), Hashing.Sha256OfFile(file));
        File.Delete(file);
    }

    /// <summary>curl POST of the lab's 10 MiB file to the upload CGI through any lab address.</summary>
    protected void AssertTenMiBUploadIntactTo(string server, string? source = null)
    {
        string file = Path.Combine(Lab.CacheDir, "10m.bin");
        string[] from = source is null ? [] : ["--interface", source];
        CommandResult up = InClient(TimeSpan.FromSeconds(90), ["curl", "-fsS", "--max-time", "60", .. from, "--data-binary", "@" + file,
            "-H", "Content-Type: application/octet-stream", NetLab.Url(server, "cgi-bin/upload")]);
        Assert.True(up.Succeeded, up.ToString() + "\nproxy log:\n" + ProxyLog());
        Assert.Equal($"{Lab.ExpectedSha256("10m.bin")} 10485760", up.StdOut.Trim());
    }

    /// <summary>A TCP connect() from the client namespace to any lab address: "connected", "timeout", "refused" or "error ...".</summary>
    protected string TryConnectTo(string server, int port = 80, string? source = null, double timeoutSeconds = 3)
    {
        const string Script = """
            import socket, sys
            dst, port, src, timeout = sys.argv[1], int(sys.argv[2]), sys.argv[3], float(sys.argv[4])
            s = socket.socket(socket.AF_INET6 if ":" in dst else socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(timeout)
            if src:
                s.bind((src, 0))
            try:
                s.connect((dst, port))
                print("connected")
            except socket.timeout:
                print("timeout")
            except ConnectionRefusedError:
                print("refused")
            except OSError as e:
                print("error %s" % e)
            finally:
                s.close()
            """;
        CommandResult r = InClient(TimeSpan.FromSeconds(timeoutSeconds + 10), "python3", "-c", Script, server,
            port.ToString(CultureInfo.InvariantCulture), source ?? "", timeoutSeconds.ToString(CultureInfo.InvariantCulture));
        Assert.True(r.Succeeded, "connect helper failed:\n" + r);
        return r.StdOut.Trim();
    }

    /// <summary>Loads an nft ruleset in the client namespace (from stdin).</summary>
    protected void ClientNft(string ruleset)
    {
        string file = Path.Combine(Lab.LabDir, $"nft-{Guid.NewGuid():N}.nft");
        File.WriteAllText(file, ruleset);
        try
        {
            CommandResult r = InClient(ShortTimeout, "nft", "-f", file);
            Assert.True(r.Succeeded, "nft refused:\n" + ruleset + "\n" + r);
        }
        finally
        {
            File.Delete(file);
        }
    }

    /// <summary>The packet count of named counter <paramref name="counter"/> in table <paramref name="family"/> <paramref name="table"/> of cp-cli.</summary>
    protected long ClientNftCounter(string family, string table, string counter)
    {
        CommandResult r = InClient(ShortTimeout, "nft", "list", "counter", family, table, counter);
        Assert.True(r.Succeeded, r.ToString());
        Match m = Regex.Match(r.StdOut, @"packets (\d+)");
        Assert.True(m.Success, "no packet count in: " + r.StdOut);
        return long.Parse(m.Groups[1].Value, CultureInfo.InvariantCulture);
    }

    /// <summary>
    /// A bounded flood was answered, and each SYN once. On the wire: never more SYN+ACKs than SYNs (the flood source's
    /// stack resets each one, which ends any syncache retransmission), and at least 99% of the SYNs answered once the
    /// SYNs the capture ring dropped are told apart: on a loaded box (other builds on both CPUs) the kernel drops
    /// frames before the capture thread reads them, counted in capture_dropped (which also counts the RSTs and
    /// other frames lost with them, so it bounds the SYNs lost there from above). In the proxy: every SYN that
    /// reached it got one first SYN+ACK, never two (99%: a send can fail on a loaded box, counted as tx_failed). <paramref name="before"/> and <paramref name="after"/> are the
    /// proxy's quiet stats around the flood.
    /// </summary>
    protected void AssertFloodAnsweredOnce(string what, long syns, long synAcks, ProxyStats before, ProxyStats after)
    {
        long ringDropped = after["capture_dropped"] - before["capture_dropped"];
        long proxySyns = after.SynReceived - before.SynReceived;
        long firstSynAcks = after.SynAckSent - before.SynAckSent - (after["syncache_retransmits"] - before["syncache_retransmits"]);
        Log($"{what}: {syns} SYNs out of cp-c0, {synAcks} SYN+ACKs back; proxy: {proxySyns} SYNs, {firstSynAcks} first SYN+ACKs, "
            + $"capture_dropped {ringDropped}");
        Assert.True(syns >= BoundedFloodMinSyns, $"{what}: the flood sent only {syns} SYNs");
        Assert.True(syns - ringDropped >= BoundedFloodMinSyns,
            $"{what}: the capture ring dropped {ringDropped} frames of {syns} SYNs: too loaded a box to say anything");
        Assert.True(synAcks <= syns, $"{what}: {synAcks} SYN+ACKs for {syns} SYNs: some were sent twice");
        Assert.True(synAcks + ringDropped >= syns * 99 / 100,
            $"{what}: {synAcks} SYN+ACKs for {syns} SYNs, {ringDropped} frames dropped by the capture ring: below 99% of what reached the proxy");
        Assert.True(firstSynAcks <= proxySyns && firstSynAcks >= proxySyns * 99 / 100,
            $"{what}: the proxy saw {proxySyns} SYNs and sent {firstSynAcks} first SYN+ACKs: " + after.Json);
    }

    /// <summary>Bounds of every flood here: at most 10 kpps and 50,000 SYNs, for at most 6 s.</summary>
    protected const int FloodSeconds = 6;
    protected const int FloodMaxSyns = 50_000;

    /// <summary>
    /// A bounded SYN flood from <paramref name="source"/> (one of cp-cli's own addresses, so its stack resets the
    /// SYN+ACKs) to <paramref name="server"/>:80: hping3 for IPv4, trafgen for IPv6 (hping3 has no IPv6). The SYNs
    /// leaving cp-c0 and the SYN+ACKs coming back are counted by nftables in cp-cli (netdev egress/ingress hooks),
    /// not by the proxy. <paramref name="duringFlood"/> runs a second in. Returns (SYNs sent, SYN+ACKs received).
    /// </summary>
    protected (long Syns, long SynAcks) CountedSynFlood(string source, string server, Action duringFlood)
    {
        bool v6 = server.Contains(':', StringComparison.Ordinal);
        string ip = v6 ? "ip6" : "ip";
        string table = "cp_flood_count";
        InClient(ShortTimeout, "nft", "delete", "table", "netdev", table);
        ClientNft($$"""
            table netdev {{table}} {
                counter syns { }
                counter synacks { }
                chain out {
                    type filter hook egress device "{{LabFixture.ClientDev}}" priority 0; policy accept;
                    {{ip}} saddr {{source}} {{ip}} daddr {{server}} tcp dport 80 tcp flags & (fin|syn|rst|ack) == syn counter name syns
                }
                chain in {
                    type filter hook ingress device "{{LabFixture.ClientDev}}" priority 0; policy accept;
                    {{ip}} saddr {{server}} {{ip}} daddr {{source}} tcp sport 80 tcp flags & (fin|syn|rst|ack) == syn|ack counter name synacks
                }
            }
            """);
        try
        {
            string[] command;
            if (v6)
            {
                string config = Path.Combine(Lab.LabDir, "trafgen-syn6.cfg");
                CommandResult mac = InServer(ShortTimeout, "cat", $"/sys/class/net/{LabFixture.ServerDev}/address");
                Assert.True(mac.Succeeded, mac.ToString());
                string serverMac = mac.StdOut.Trim();
                // Incrementing source ports (one SYN per port), random ISNs; trafgen fills in lengths and checksums.
                File.WriteAllText(config, $$"""
                    {
                      eth(da={{serverMac}}),
                      ipv6(sa={{source}}, da={{server}}, hl=64),
                      tcp(sp=dinc(1024, 65535), dp=80, syn, seq=drnd(), win=64240)
                    }
                    """);
                command = ["timeout", FloodSeconds.ToString(CultureInfo.InvariantCulture), "trafgen", "-o", LabFixture.ClientDev, "-i", config,
                    "-P", "1", "-Q", "--no-sock-mem", "-C", "-n", FloodMaxSyns.ToString(CultureInfo.InvariantCulture), "-b", "10000pps"];
            }
            else
            {
                command = ["timeout", FloodSeconds.ToString(CultureInfo.InvariantCulture), "hping3", "-q", "-S", "-p", "80", "-i", "u100",
                    "-c", FloodMaxSyns.ToString(CultureInfo.InvariantCulture), "-a", source, server];
            }
            using (RunningCommand flood = StartInClient(command))
            {
                Thread.Sleep(1000);
                duringFlood();
                CommandResult done = flood.WaitForExit(TimeSpan.FromSeconds(FloodSeconds + 10), Log);
                Assert.False(done.TimedOut, done.ToString());
            }
            Thread.Sleep(1500); // the last SYN+ACKs
            return (ClientNftCounter("netdev", table, "syns"), ClientNftCounter("netdev", table, "synacks"));
        }
        finally
        {
            InClient(ShortTimeout, "nft", "delete", "table", "netdev", table);
        }
    }
}
