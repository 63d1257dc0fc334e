using System.Buffers.Binary;
using System.Diagnostics;
using System.Net;
using System.Runtime.Versioning;
using CookieProxy.Io;
using CookieProxy.Platform;
using Xunit.Abstractions;

namespace CookieProxy.Tests.Platform;

/// <summary>
/// A veth pair of its own for the AF_XDP tests (names prefixed xd-, so it never meets the plat- lab):
/// <code>
///   netns xd-a: xd0 02:00:c6:12:c8:01 198.18.201.1/24  &lt;--veth--&gt;  netns xd-b: xd1 02:00:c6:12:c8:02 198.18.201.2/24
/// </code>
/// Offloads off on both ends (no GRO/TSO: every frame fits a UMEM chunk). Deleting the namespaces removes the
/// veth and, with it, anything still attached.
/// </summary>
public sealed class XdpVethLab : VethPair
{
    public static readonly string NsA = "xd-a" + VethPair.LabSuffix;
    public static readonly string NsB = "xd-b" + VethPair.LabSuffix;
    public const string IfA = "xd0";
    public const string IfB = "xd1";
    public static readonly IPAddress AddrA = IPAddress.Parse("198.18.201.1");
    public static readonly IPAddress AddrB = IPAddress.Parse("198.18.201.2");

    public XdpVethLab()
        : base(NsA, IfA, AddrA, NsB, IfB, AddrB, peerKeepsTxChecksumOffload: false)
    {
    }

    public static string LinkShow() => VethLab.Shell($"ip -n {NsA} -d link show {IfA}");
}

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class XdpLabCollection : ICollectionFixture<XdpVethLab>
{
    public const string Name = "AF_XDP veth lab";
}

/// <summary>
/// The AF_XDP backend against a real veth pair: the XDP program passes the verifier, redirects exactly the
/// protected endpoint's TCP frames (BPF_PROG_TEST_RUN and real traffic), leaves everything else to the
/// stack, and frames go out through the UMEM TX path. Needs root.
/// </summary>
[Collection(XdpLabCollection.Name)]
[SupportedOSPlatform("linux")]
public sealed class AfXdpLabTests
{
    private const ushort ProtectedPort = 80;
    private static readonly IPEndPoint[] s_protected = [new IPEndPoint(XdpVethLab.AddrA, ProtectedPort)];

    private readonly XdpVethLab _lab;
    private readonly ITestOutputHelper _output;

    public AfXdpLabTests(XdpVethLab lab, ITestOutputHelper output)
    {
        _lab = lab;
        _output = output;
    }

    private static AfXdpDevice OpenXdp(IPEndPoint[]? endpoints = null) =>
        Netns.Run(XdpVethLab.NsA, () => new AfXdpDevice(XdpVethLab.IfA, endpoints ?? s_protected));

    /// <summary>The peer's side: an AF_PACKET device on xd1 that sees frames addressed to it on port 40000.</summary>
    private static IPacketDevice OpenPeer() =>
        Netns.Run(XdpVethLab.NsB, () => PacketDeviceFactory.Open(XdpVethLab.IfB,
            BpfFilter.ForProtectedEndpoints(new IPEndPoint(XdpVethLab.AddrB, 40000)), CaptureKind.AfPacket));

    private static List<byte[]> ReceiveAtLeast(IPacketDevice device, int count, int timeoutMs = 5000) =>
        VethPair.ReceiveAtLeast(device, count, timeoutMs).ConvertAll(r => r.Frame);

    private static byte[] Frame(IPAddress source, IPAddress destination, ushort sourcePort, ushort destinationPort, int index, int payload = 16) =>
        TestFrames.Tcp(source, destination, sourcePort, destinationPort, index, payload);

    [RootFact]
    public void Program_passes_the_verifier_and_redirects_only_protected_tcp()
    {
        RootOnly.CanRun(_output);
        _lab.EnsureUp();
        IPEndPoint[] endpoints =
        [
            new IPEndPoint(XdpVethLab.AddrA, ProtectedPort),
            new IPEndPoint(IPAddress.Any, 8443),
            new IPEndPoint(IPAddress.Parse("fd00::1"), 443),
        ];
        using AfXdpDevice device = OpenXdp(endpoints);
        _output.WriteLine(device.Backend);
        const int Redirect = Interop.Bpf.XDP_REDIRECT;
        const int Pass = Interop.Bpf.XDP_PASS;

        byte[] protectedTcp = Frame(XdpVethLab.AddrB, XdpVethLab.AddrA, 40000, ProtectedPort, 1);
        Assert.Equal(Redirect, device.TestRunProgram(protectedTcp));
        Assert.Equal(Redirect, device.TestRunProgram(TestFrames.Tcp(XdpVethLab.AddrB, XdpVethLab.AddrA, 40000, ProtectedPort, 1, vlanTci: 5)));
        Assert.Equal(Redirect, device.TestRunProgram(Frame(XdpVethLab.AddrB, IPAddress.Parse("198.18.201.77"), 1, 8443, 1)));
        Assert.Equal(Pass, device.TestRunProgram(Frame(XdpVethLab.AddrB, XdpVethLab.AddrA, 40000, 81, 1)));
        Assert.Equal(Pass, device.TestRunProgram(Frame(XdpVethLab.AddrB, IPAddress.Parse("198.18.201.3"), 40000, ProtectedPort, 1)));
        // The source port is not the destination port: our own connections from port 80 elsewhere are not ours.
        Assert.Equal(Pass, device.TestRunProgram(Frame(XdpVethLab.AddrA, XdpVethLab.AddrB, ProtectedPort, 40000, 1)));

        // IPv4 with options (IHL 6): the TCP header moves by 4 bytes.
        Assert.Equal(Redirect, device.TestRunProgram(WithIpOption(protectedTcp)));
        // Not TCP (UDP to the same port), a later fragment, a truncated header, ARP.
        byte[] udp = (byte[])protectedTcp.Clone();
        udp[14 + 9] = 17;
        Assert.Equal(Pass, device.TestRunProgram(udp));
        byte[] fragment = (byte[])protectedTcp.Clone();
        BinaryPrimitives.WriteUInt16BigEndian(fragment.AsSpan(14 + 6), 0x0010);
        Assert.Equal(Pass, device.TestRunProgram(fragment));
        Assert.Equal(Pass, device.TestRunProgram(protectedTcp.AsSpan(0, 14 + 20 + 2)));
        Assert.Equal(Pass, device.TestRunProgram(Arp()));

        // IPv6: the protected address and port, another address, another port.
        Assert.Equal(Redirect, device.TestRunProgram(Ipv6Tcp(IPAddress.Parse("fd00::1"), 443)));
        Assert.Equal(Pass, device.TestRunProgram(Ipv6Tcp(IPAddress.Parse("fd00::2"), 443)));
        Assert.Equal(Pass, device.TestRunProgram(Ipv6Tcp(IPAddress.Parse("fd00::1"), 444)));
    }

    [RootFact]
    public void A_syn_from_the_peer_reaches_the_socket_and_never_the_stack_and_a_reply_reaches_the_peer()
    {
        RootOnly.CanRun(_output);
        _lab.EnsureUp();
        using AfXdpDevice device = OpenXdp();
        using IPacketDevice peer = OpenPeer();
        Assert.Contains("xdpgeneric", XdpVethLab.LinkShow());

        // A real connect() from the peer's kernel: no listener on xd-a:80, so if the stack saw the SYN it would
        // answer RST ("refused"). Redirected to us, nothing answers: "timeout".
        var connect = Task.Run(() => VethLab.Shell($"""
            ip netns exec {XdpVethLab.NsB} python3 -c '
            import socket
            s = socket.socket(); s.settimeout(1.5); s.bind(("198.18.201.2", 40000))
            try:
                s.connect(("198.18.201.1", 80)); print("connected")
            except socket.timeout:
                print("timeout")
            except ConnectionRefusedError:
                print("refused")'
            """));
        List<byte[]> received = ReceiveAtLeast(device, 1, timeoutMs: 3000);
        Assert.Equal("timeout", connect.Result.Trim());

        byte[] syn = Assert.Single(received, f => f.Length >= 54 && (f[14 + 20 + 13] & 0x12) == 0x02);
        Assert.Equal(ProtectedPort, BinaryPrimitives.ReadUInt16BigEndian(syn.AsSpan(14 + 20 + 2)));
        Assert.Equal(XdpVethLab.AddrB.GetAddressBytes(), syn.AsSpan(14 + 12, 4).ToArray());

        // And back: a frame from the UMEM TX path arrives at the peer intact.
        byte[] reply = Frame(XdpVethLab.AddrA, XdpVethLab.AddrB, ProtectedPort, 40000, 3);
        Array.Copy(syn, 6, reply, 0, 6);    // to the peer's MAC
        Array.Copy(syn, 0, reply, 6, 6);    // from ours
        Assert.True(device.Send(reply));
        device.Flush();
        List<byte[]> atPeer = ReceiveAtLeast(peer, 1, timeoutMs: 3000);
        Assert.Contains(atPeer, f => f.AsSpan().SequenceEqual(reply));

        DeviceStats stats = device.GetStats();
        _output.WriteLine($"{device.Backend}: {stats}; {device.GetSocketStats()}");
        Assert.True(stats.Received >= 1);
        Assert.Equal(0, stats.KernelDropped);
    }

    [RootFact]
    public void Many_frames_arrive_intact_in_order_both_ways()
    {
        RootOnly.CanRun(_output);
        _lab.EnsureUp();
        const int Count = 1000;
        using AfXdpDevice device = OpenXdp();
        using IPacketDevice peer = OpenPeer();

        var toUs = new List<byte[]>();
        for (int i = 0; i < Count; i++)
        {
            byte[] frame = Frame(XdpVethLab.AddrB, XdpVethLab.AddrA, 40000, ProtectedPort, i, payload: 16 + i % 1400);
            toUs.Add(frame);
            Assert.True(peer.Send(frame));
            if (i % 32 == 31)
            {
                peer.Flush();
                Thread.Sleep(1); // the peer's backlog holds 1000 frames; stay well below it
            }
        }
        peer.Send(Frame(XdpVethLab.AddrB, XdpVethLab.AddrA, 40000, 81, 9999));   // not ours: the stack gets it
        peer.Flush();
        List<byte[]> received = ReceiveAtLeast(device, Count + 1, timeoutMs: 3000);
        foreach (byte[] extra in received.Where(r => !toUs.Any(t => t.AsSpan().SequenceEqual(r))))
        {
            _output.WriteLine("unexpected frame: " + Convert.ToHexString(extra.AsSpan(0, Math.Min(80, extra.Length))));
        }
        Assert.Equal(Count, received.Count);
        for (int i = 0; i < Count; i++)
        {
            Assert.Equal(toUs[i], received[i]);
        }

        // More than the kernel's 32-descriptor TX batch per kick, and more than one FrameBatch.
        var toPeer = new List<byte[]>();
        for (int i = 0; i < Count; i++)
        {
            byte[] frame = Frame(XdpVethLab.AddrA, XdpVethLab.AddrB, ProtectedPort, 40000, i, payload: 16 + i % 1400);
            toPeer.Add(frame);
            Assert.True(device.Send(frame));
            if (i % 64 == 63)
            {
                device.Flush();
                Thread.Sleep(1);
            }
        }
        device.Flush();
        // The peer also sees xd-a's kernel answer the port-81 frame with a RST from port 81: not ours.
        List<byte[]> atPeer = ReceiveAtLeast(peer, Count + 1, timeoutMs: 3000)
            .Where(f => BinaryPrimitives.ReadUInt16BigEndian(f.AsSpan(14 + 20)) == ProtectedPort).ToList();
        Assert.Equal(Count, atPeer.Count);
        for (int i = 0; i < Count; i++)
        {
            Assert.Equal(toPeer[i], atPeer[i]);
        }
        Thread.Sleep(100);
        device.Flush();
        DeviceStats stats = device.GetStats();
        _output.WriteLine($"{stats}; {device.GetSocketStats()}");
        Assert.Equal(Count, stats.Received);
        Assert.Equal(Count, stats.Sent);
        Assert.Equal(0, stats.SendFailed);
        Assert.Equal(0, stats.KernelDropped);
    }

    [RootFact]
    public void Other_traffic_keeps_working_while_attached_and_dispose_detaches()
    {
        RootOnly.CanRun(_output);
        _lab.EnsureUp();
        using (AfXdpDevice device = OpenXdp())
        {
            Assert.Contains("xdpgeneric", XdpVethLab.LinkShow());
            // ARP + ICMP in both directions.
            VethLab.Shell($"ip netns exec {XdpVethLab.NsB} ip neigh flush dev {XdpVethLab.IfB}; ip netns exec {XdpVethLab.NsB} ping -c 2 -i 0.2 -W 1 198.18.201.1 >/dev/null");
            VethLab.Shell($"ip netns exec {XdpVethLab.NsA} ping -c 2 -i 0.2 -W 1 198.18.201.2 >/dev/null");
            // TCP to a port that is not protected, served by the host stack in xd-a.
            string served = VethLab.Shell($"""
                ip netns exec {XdpVethLab.NsA} timeout 10 python3 -c '
                import socket
                l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); l.bind(("198.18.201.1", 8080)); l.listen(1); l.settimeout(5)
                c, _ = l.accept(); print(c.recv(10).decode())' &
                sleep 0.5
                ip netns exec {XdpVethLab.NsB} timeout 10 python3 -c '
                import socket
                s = socket.create_connection(("198.18.201.1", 8080), 3); s.sendall(b"hello")'
                wait
                """);
            Assert.Equal("hello", served.Trim());
            Assert.Equal(0, device.GetStats().Received);
        }
        Assert.DoesNotContain("xdpgeneric", XdpVethLab.LinkShow());   // not "xdp": CP_LAB_ID may be part of the netns name
    }

    [RootFact]
    public void A_missing_interface_is_a_clear_error()
    {
        RootOnly.CanRun(_output);
        PacketDeviceException error = Assert.Throws<PacketDeviceException>(
            () => PacketDeviceFactory.Open("xd-nope0", "", CaptureKind.AfXdp, protectedEndpoints: s_protected));
        _output.WriteLine(error.Message);
        Assert.Equal("xd-nope0", error.InterfaceName);
        Assert.Contains("no such interface 'xd-nope0'", error.Message);
    }

    [RootFact]
    public void Without_privileges_opening_is_a_clear_permission_error()
    {
        RootOnly.CanRun(_output);
        PacketDeviceException error = Assert.Throws<PacketDeviceException>(
            () => Unprivileged.Run(() => PacketDeviceFactory.Open("lo", "", CaptureKind.AfXdp, protectedEndpoints: s_protected)));
        _output.WriteLine(error.Message);
        Assert.Contains("Operation not permitted (errno 1) (BPF needs root", error.Message);
    }

    [RootFact]
    public void A_fanout_group_is_refused_with_a_clear_message()
    {
        RootOnly.CanRun(_output);
        PacketDeviceException error = Assert.Throws<PacketDeviceException>(
            () => PacketDeviceFactory.Open("lo", "", CaptureKind.AfXdp, fanoutGroup: 7, protectedEndpoints: s_protected));
        Assert.Contains("AF_XDP capture supports one capture thread", error.Message);
    }

    [RootFact]
    public void A_second_attachment_to_the_same_interface_is_a_clear_error()
    {
        RootOnly.CanRun(_output);
        _lab.EnsureUp();
        using AfXdpDevice first = OpenXdp();
        PacketDeviceException error = Assert.Throws<PacketDeviceException>(() => OpenXdp());
        _output.WriteLine(error.Message);
        Assert.Contains("another AF_XDP socket holds rx queue 0 of 'xd0'", error.Message);
    }

    [RootFact]
    public void A_verifier_rejection_carries_the_verifier_log()
    {
        RootOnly.CanRun(_output);
        // Reads the packet without the bounds check the verifier insists on.
        byte[] elf = BpfTestPrograms.Compile("""
            #include <linux/bpf.h>
            #include <bpf/bpf_helpers.h>
            SEC("xdp")
            int cp_unchecked(struct xdp_md *ctx)
            {
                void *data = (void *)(long)ctx->data;
                return *(unsigned short *)(data + 12);
            }
            char _license[] SEC("license") = "GPL";
            """);
        using BpfObject obj = BpfObject.Open(elf, "unchecked");
        obj.Program("cp_unchecked");
        BpfException error = Assert.Throws<BpfException>(obj.Load);
        _output.WriteLine(error.Message);
        Assert.Contains("could not load the BPF object unchecked", error.Message);
        Assert.Contains("invalid access to packet", error.Message);
    }

    private static byte[] WithIpOption(byte[] frame)
    {
        // Insert 4 bytes of NOP options after the 20-byte IPv4 header; fix IHL and total length (the checksum
        // does not matter to the program).
        var longer = new byte[frame.Length + 4];
        frame.AsSpan(0, 34).CopyTo(longer);
        longer.AsSpan(34, 4).Fill(1);
        frame.AsSpan(34).CopyTo(longer.AsSpan(38));
        longer[14] = 0x46;
        BinaryPrimitives.WriteUInt16BigEndian(longer.AsSpan(16), (ushort)(BinaryPrimitives.ReadUInt16BigEndian(frame.AsSpan(16)) + 4));
        return longer;
    }

    private static byte[] Arp()
    {
        var frame = new byte[42];
        frame.AsSpan(0, 6).Fill(0xff);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), 0x0806);
        return frame;
    }

    private static byte[] Ipv6Tcp(IPAddress destination, ushort port)
    {
        var frame = new byte[14 + 40 + 20];
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(12), 0x86dd);
        frame[14] = 0x60;
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(18), 20);
        frame[20] = 6;
        frame[21] = 64;
        IPAddress.Parse("fd00::9").GetAddressBytes().CopyTo(frame, 22);
        destination.GetAddressBytes().CopyTo(frame, 38);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(54), 40000);
        BinaryPrimitives.WriteUInt16BigEndian(frame.AsSpan(56), port);
        frame[54 + 12] = 5 << 4;
        frame[54 + 13] = 0x02;
        return frame;
    }
}

/// <summary>Test-only BPF objects, compiled with the clang the build uses for native/*.c.</summary>
internal static class BpfTestPrograms
{
    public static byte[] Compile(string source)
    {
        string dir = Directory.CreateTempSubdirectory("cp-bpf-test-").FullName;
        try
        {
            string c = Path.Combine(dir, "prog.c"), o = Path.Combine(dir, "prog.o");
            File.WriteAllText(c, source);
            string multiarch = System.Runtime.InteropServices.RuntimeInformation.OSArchitecture == System.Runtime.InteropServices.Architecture.Arm64
                ? "aarch64-linux-gnu" : "x86_64-linux-gnu";
            VethLab.Shell($"clang -O2 -g -target bpf -I/usr/include/{multiarch} -c {c} -o {o}");
            return File.ReadAllBytes(o);
        }
        finally
        {
            Directory.Delete(dir, recursive: true);
        }
    }
}
