using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using CookieProxy.Io;
using CookieProxy.Platform;
using Xunit.Abstractions;

namespace CookieProxy.Tests.Platform;

[CollectionDefinition(Name, DisableParallelization = true)]
public sealed class PlatformLabCollection : ICollectionFixture<VethLab>
{
    public const string Name = "Platform veth lab";
}

/// <summary>
/// Both backends against a real veth pair (see <see cref="VethLab"/>): frames sent on plat1 by one backend
/// arrive on plat0 through the other, intact, in order, with the right flags. Needs root.
/// </summary>
[Collection(PlatformLabCollection.Name)]
public sealed class PacketDeviceLabTests
{
    private const ushort ProtectedPort = 80;
    private static readonly string s_filter = BpfFilter.ForProtectedEndpoints(new IPEndPoint(VethLab.AddrA, ProtectedPort));

    private readonly VethLab _lab;
    private readonly ITestOutputHelper _output;

    public PacketDeviceLabTests(VethLab lab, ITestOutputHelper output)
    {
        _lab = lab;
        _output = output;
    }

    private static IPacketDevice OpenIn(string ns, string interfaceName, CaptureKind kind, int fanoutGroup = -1, string? filter = null) =>
        Netns.Run(ns, () => PacketDeviceFactory.Open(interfaceName, filter ?? s_filter, kind, fanoutGroup));

    [RootTheory]
    [InlineData(CaptureKind.Pcap)]
    [InlineData(CaptureKind.AfPacket)]
    public void NonexistentInterfaceIsAClearError(CaptureKind kind)
    {
        if (!RootOnly.CanRun(_output))
        {
            return;
        }
        PacketDeviceException error = Assert.Throws<PacketDeviceException>(() => PacketDeviceFactory.Open("plat-nope0", s_filter, kind));
        _output.WriteLine(error.Message);
        Assert.Equal("plat-nope0", error.InterfaceName);
        Assert.Contains("no such interface 'plat-nope0'", error.Message);
    }

    [RootTheory]
    [InlineData(CaptureKind.Pcap)]
    [InlineData(CaptureKind.AfPacket)]
    public void BadFilterIsAClearError(CaptureKind kind)
    {
        if (!RootOnly.CanRun(_output))
        {
            return;
        }
        PacketDeviceException error = Assert.Throws<PacketDeviceException>(() => PacketDeviceFactory.Open("lo", "tcp and (dst port 80", kind));
        _output.WriteLine(error.Message);
        Assert.Contains("'lo'", error.Message);
        Assert.Contains("tcp and (dst port 80", error.Message);
        Assert.Contains("syntax error", error.Message);
    }

    [RootTheory]
    [InlineData(CaptureKind.Pcap, "libpcap: permission denied capturing on 'lo'")]
    [InlineData(CaptureKind.AfPacket, "Operation not permitted (errno 1) (AF_PACKET needs root or CAP_NET_RAW)")]
    public void WithoutCapNetRawOpeningIsAClearPermissionError(CaptureKind kind, string expected)
    {
        if (!RootOnly.CanRun(_output))
        {
            return;
        }
        PacketDeviceException error = Assert.Throws<PacketDeviceException>(
            () => Unprivileged.Run(() => PacketDeviceFactory.Open("lo", s_filter, kind)));
        _output.WriteLine(error.Message);
        Assert.Equal("lo", error.InterfaceName);
        Assert.Contains(expected, error.Message);
    }

    [RootFact]
    public void AutoPicksAfPacketOnLinux()
    {
        if (!RootOnly.CanRun(_output))
        {
            return;
        }
        _lab.EnsureUp();
        using IPacketDevice device = OpenIn(VethLab.NsA, VethLab.IfA, CaptureKind.Auto);
        Assert.Equal("af_packet-v3", device.Backend);
        Assert.Equal(VethLab.IfA, device.Name);
    }

    [RootTheory]
    [InlineData(CaptureKind.Pcap, CaptureKind.AfPacket)]
    [InlineData(CaptureKind.AfPacket, CaptureKind.Pcap)]
    [InlineData(CaptureKind.AfPacket, CaptureKind.AfPacket)]
    public void FramesArriveIntactAndInOrder(CaptureKind receiverKind, CaptureKind senderKind)
    {
        if (!RootOnly.CanRun(_output))
        {
            return;
        }
        _lab.EnsureUp();
        const int Count = 200;
        using IPacketDevice receiver = OpenIn(VethLab.NsA, VethLab.IfA, receiverKind);
        using IPacketDevice sender = OpenIn(VethLab.NsB, VethLab.IfB, senderKind);
        var sent = new List<byte[]>();
        for (int i = 0; i < Count; i++)
        {
            byte[] frame = TestFrames.Tcp(VethLab.AddrB, VethLab.AddrA, 40000, ProtectedPort, i, payloadLength: 16 + i % 1000);
            sent.Add(frame);
            Assert.True(sender.Send(frame));
            if (i % 32 == 31)
            {
                sender.Flush();
            }
        }
        // Noise that the filter must keep out: another port, another destination.
        sender.Send(TestFrames.Tcp(VethLab.AddrB, VethLab.AddrA, 40000, 81, 9999));
        sender.Send(TestFrames.Tcp(VethLab.AddrB, IPAddress.Parse("198.18.200.3"), 40000, ProtectedPort, 9998));
        sender.Flush();

        List<(byte[] Frame, FrameFlags Flags)> received = VethPair.ReceiveAtLeast(receiver, Count + 1, timeoutMs: 3000);

        Assert.Equal(Count, received.Count);
        for (int i = 0; i < Count; i++)
        {
            Assert.Equal(sent[i], received[i].Frame);
            Assert.Equal(FrameFlags.None, received[i].Flags);
        }
        DeviceStats senderStats = sender.GetStats();
        DeviceStats receiverStats = receiver.GetStats();
        _output.WriteLine($"sender {sender.Backend}: {senderStats}; receiver {receiver.Backend}: {receiverStats}");
        Assert.Equal(Count + 2, senderStats.Sent);
        Assert.Equal(0, senderStats.SendFailed);
        Assert.True(receiverStats.Received >= Count, $"receiver counted {receiverStats.Received}");
        Assert.Equal(0, receiverStats.KernelDropped);
    }

    [RootTheory]
    [InlineData(CaptureKind.Pcap)]
    [InlineData(CaptureKind.AfPacket)]
    public void VlanTaggedFramesArriveWithTheirTag(CaptureKind receiverKind)
    {
        if (!RootOnly.CanRun(_output))
        {
            return;
        }
        _lab.EnsureUp();
        using IPacketDevice receiver = OpenIn(VethLab.NsA, VethLab.IfA, receiverKind);
        using IPacketDevice sender = OpenIn(VethLab.NsB, VethLab.IfB, CaptureKind.AfPacket);
        byte[] tagged = TestFrames.Tcp(VethLab.AddrB, VethLab.AddrA, 40001, ProtectedPort, 7, vlanTci: 0x0064);
        sender.Send(tagged);
        sender.Flush();

        List<(byte[] Frame, FrameFlags Flags)> received = VethPair.ReceiveAtLeast(receiver, 1, timeoutMs: 2000);

        Assert.Single(received);
        Assert.Equal(tagged, received[0].Frame);
    }

    [RootTheory]
    [InlineData(CaptureKind.Pcap)]
    [InlineData(CaptureKind.AfPacket)]
    public void WakeUnblocksReceive(CaptureKind kind)
    {
        if (!RootOnly.CanRun(_output))
        {
            return;
        }
        _lab.EnsureUp();
        using IPacketDevice device = OpenIn(VethLab.NsA, VethLab.IfA, kind);
        var batch = new FrameBatch(8);
        var clock = Stopwatch.StartNew();
        int result = -1;
        var capture = new Thread(() => result = device.Receive(batch, 10_000));
        capture.Start();
        Thread.Sleep(200);
        device.Wake();

        Assert.True(capture.Join(3000), "Receive did not return after Wake");
        Assert.Equal(0, result);
        Assert.InRange(clock.ElapsedMilliseconds, 150, 3000);

        // A wake before Receive is not lost, and repeated wakes coalesce into one early return.
        device.Wake();
        device.Wake();
        device.Wake();
        clock.Restart();
        Assert.Equal(0, device.Receive(batch, 10_000));
        Assert.InRange(clock.ElapsedMilliseconds, 0, 1000);
        clock.Restart();
        Assert.Equal(0, device.Receive(batch, 100));
        Assert.InRange(clock.ElapsedMilliseconds, 80, 2000);
    }

    [RootTheory]
    [InlineData(CaptureKind.Pcap)]
    [InlineData(CaptureKind.AfPacket)]
    public void FramesLongerThanTheSnapLengthArriveTruncatedAndFlagged(CaptureKind receiverKind)
    {
        if (!RootOnly.CanRun(_output))
        {
            return;
        }
        _lab.EnsureUp();
        var options = new PacketDeviceOptions { SnapLength = 128 };
        using IPacketDevice receiver = Netns.Run(VethLab.NsA,
            () => PacketDeviceFactory.Open(VethLab.IfA, s_filter, receiverKind, options: options));
        using IPacketDevice sender = OpenIn(VethLab.NsB, VethLab.IfB, CaptureKind.AfPacket);
        byte[] frame = TestFrames.Tcp(VethLab.AddrB, VethLab.AddrA, 40002, ProtectedPort, 3, payloadLength: 900);
        sender.Send(frame);
        sender.Flush();

        List<(byte[] Frame, FrameFlags Flags)> received = VethPair.ReceiveAtLeast(receiver, 1, timeoutMs: 2000);

        Assert.Single(received);
        Assert.Equal(frame[..128], received[0].Frame);
        Assert.Equal(FrameFlags.Truncated, received[0].Flags);
    }

    [RootTheory]
    [InlineData(CaptureKind.Pcap)]
    [InlineData(CaptureKind.AfPacket)]
    public void ReceiveWithZeroTimeoutNeverBlocksAndBadFramesAreCountedNotThrown(CaptureKind kind)
    {
        if (!RootOnly.CanRun(_output))
        {
            return;
        }
        _lab.EnsureUp();
        using IPacketDevice device = OpenIn(VethLab.NsB, VethLab.IfB, kind);
        var batch = new FrameBatch(8);
        var clock = Stopwatch.StartNew();
        Assert.Equal(0, device.Receive(batch, 0));
        Assert.InRange(clock.ElapsedMilliseconds, 0, 500);

        // Shorter than an Ethernet header: the kernel refuses it; we count it and carry on.
        device.Send(new byte[10]);
        device.Flush();
        DeviceStats stats = device.GetStats();
        Assert.Equal(1, stats.SendFailed);
        Assert.Equal(0, stats.Sent);
    }

    [RootFact]
    public void KernelGeneratedFramesWithChecksumOffloadAreFlaggedChecksumNotReady()
    {
        if (!RootOnly.CanRun(_output))
        {
            return;
        }
        _lab.EnsureUp();
        using IPacketDevice receiver = OpenIn(VethLab.NsA, VethLab.IfA, CaptureKind.AfPacket);
        // plat1 keeps TX checksum offload: its kernel's SYN crosses the veth as CHECKSUM_PARTIAL.
        using Socket client = Netns.Run(VethLab.NsB, () => new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp));
        _ = client.ConnectAsync(new IPEndPoint(VethLab.AddrA, ProtectedPort)); // refused by plat-a's kernel: fine

        List<(byte[] Frame, FrameFlags Flags)> received = VethPair.ReceiveAtLeast(receiver, 1, timeoutMs: 2000);

        Assert.NotEmpty(received);
        Assert.Equal(0x02, received[0].Frame[14 + 20 + 13]); // SYN
        Assert.Equal(FrameFlags.ChecksumNotReady, received[0].Flags);
    }

    [RootFact]
    public void FanoutSplitsFlowsBetweenGroupMembersWithoutDuplicates()
    {
        if (!RootOnly.CanRun(_output))
        {
            return;
        }
        _lab.EnsureUp();
        const int Flows = 16;
        const int PerFlow = 4;
        using IPacketDevice first = OpenIn(VethLab.NsA, VethLab.IfA, CaptureKind.AfPacket, fanoutGroup: 4242);
        using IPacketDevice second = OpenIn(VethLab.NsA, VethLab.IfA, CaptureKind.AfPacket, fanoutGroup: 4242);
        using IPacketDevice sender = OpenIn(VethLab.NsB, VethLab.IfB, CaptureKind.AfPacket);
        for (int i = 0; i < Flows * PerFlow; i++)
        {
            sender.Send(TestFrames.Tcp(VethLab.AddrB, VethLab.AddrA, (ushort)(41000 + i % Flows), ProtectedPort, i));
        }
        sender.Flush();

        var portsByDevice = new[] { new List<int>(), new List<int>() };
        var batch = new FrameBatch(64);
        var clock = Stopwatch.StartNew();
        while (portsByDevice[0].Count + portsByDevice[1].Count < Flows * PerFlow && clock.ElapsedMilliseconds < 3000)
        {
            for (int d = 0; d < 2; d++)
            {
                int n = (d == 0 ? first : second).Receive(batch, 20);
                for (int i = 0; i < n; i++)
                {
                    portsByDevice[d].Add((batch[i][34] << 8) | batch[i][35]);
                }
            }
        }

        _output.WriteLine($"member 0: {portsByDevice[0].Count} frames, member 1: {portsByDevice[1].Count} frames");
        Assert.Equal(Flows * PerFlow, portsByDevice[0].Count + portsByDevice[1].Count);
        Assert.Empty(portsByDevice[0].Intersect(portsByDevice[1]));
        Assert.NotEmpty(portsByDevice[0]);
        Assert.NotEmpty(portsByDevice[1]);
    }

    /// <summary>
    /// A TCP super-frame queued with TX offload leaves the veth as the segments we would have sent one by one:
    /// the kernel's GSO cuts it (plat1 has TSO off) and completes each TCP checksum (in software with TX
    /// checksumming off; with it on the segments cross CHECKSUM_PARTIAL and carry the pseudo-header sum).
    /// </summary>
    [RootTheory]
    [InlineData(false)]
    [InlineData(true)]
    public void OffloadedSuperFramesLeaveAsTheSegmentsTheyStandFor(bool txChecksumOffload)
    {
        if (!RootOnly.CanRun(_output))
        {
            return;
        }
        _lab.EnsureUp();
        VethLab.Shell($"ip netns exec {VethLab.NsB} ethtool -K {VethLab.IfB} tx {(txChecksumOffload ? "on" : "off")} >/dev/null");
        try
        {
            using IPacketDevice receiver = OpenIn(VethLab.NsA, VethLab.IfA, CaptureKind.AfPacket);
            using IPacketDevice sender = OpenIn(VethLab.NsB, VethLab.IfB, CaptureKind.AfPacket);
            Assert.True(sender.OffloadMaxFrameBytes >= 65535);

            var tmpl = new CookieProxy.Wire.L2L3Template
            {
                OurMac = 0x0200c612c802UL,
                ClientMac = 0x0200c612c801UL,
                IpVersion = 4,
                OurIp = CookieProxy.Wire.IpAddr.FromBytes(VethLab.AddrB.GetAddressBytes()),
                ClientIp = CookieProxy.Wire.IpAddr.FromBytes(VethLab.AddrA.GetAddressBytes()),
                Ttl = 64,
            };
            const int Size = 1000;
            byte[] data = new byte[(5 * Size) + 300];
            new Random(11).NextBytes(data);
            CookieProxy.Wire.TcpRepr Segment(int index, CookieProxy.Wire.TcpFlags flags)
            {
                CookieProxy.Wire.TcpRepr r = default;
                r.SrcPort = 40000;
                r.DstPort = ProtectedPort;
                r.Seq = new CookieProxy.Tcp.SeqNumber(1_000_000u + (uint)(index * Size));
                r.Ack = new CookieProxy.Tcp.SeqNumber(5);
                r.Flags = flags;
                r.Window = 1000;
                r.Options = CookieProxy.Wire.TcpOptionsRepr.None;
                r.Options.HasTimestamp = true;
                r.Options.TsVal = 42;
                r.Options.TsEcr = 7;
                return r;
            }

            var frame = new CookieProxy.Wire.TcpSuperFrame();
            Assert.True(frame.Start(sender.ReserveOffloaded(sender.OffloadMaxFrameBytes), tmpl,
                Segment(0, CookieProxy.Wire.TcpFlags.Ack), data.AsSpan(0, Size), default));
            for (int i = 1; i <= 5; i++)
            {
                var flags = i == 5 ? CookieProxy.Wire.TcpFlags.Ack | CookieProxy.Wire.TcpFlags.Psh : CookieProxy.Wire.TcpFlags.Ack;
                Assert.True(frame.TryAppend(Segment(i, flags), data.AsSpan(i * Size, Math.Min(Size, data.Length - (i * Size))), default));
            }
            int length = frame.Finish(out TxOffload offload);
            sender.CommitOffloaded(length, offload);
            sender.Flush();

            List<(byte[] Frame, FrameFlags Flags)> received = VethPair.ReceiveAtLeast(receiver, 6, timeoutMs: 3000);
            Assert.Equal(6, received.Count);
            DeviceStats stats = sender.GetStats();
            Assert.Equal(1, stats.Sent);
            Assert.Equal(0, stats.SendFailed);
            for (int i = 0; i <= 5; i++)
            {
                var flags = i == 5 ? CookieProxy.Wire.TcpFlags.Ack | CookieProxy.Wire.TcpFlags.Psh : CookieProxy.Wire.TcpFlags.Ack;
                byte[] expected = new byte[2048];
                int n = CookieProxy.Wire.TcpFrameBuilder.Write(expected, tmpl, Segment(i, flags),
                    data.AsSpan(i * Size, Math.Min(Size, data.Length - (i * Size))), default,
                    checksumOffload: txChecksumOffload);
                byte[] got = received[i].Frame;
                Assert.Equal(n, got.Length);
                // The IP id differs (GSO numbers the segments); the IPv4 header must still verify.
                Assert.True(CookieProxy.Wire.Checksum.VerifyIpv4Header(got.AsSpan(14, 20)));
                Assert.Equal(Convert.ToHexString(expected.AsSpan(34, n - 34)), Convert.ToHexString(got.AsSpan(34)));
                Assert.Equal(txChecksumOffload ? FrameFlags.ChecksumNotReady : FrameFlags.None, received[i].Flags);
            }
        }
        finally
        {
            VethLab.Shell($"ip netns exec {VethLab.NsB} ethtool -K {VethLab.IfB} tx on >/dev/null");
        }
    }

    [RootFact]
    public void SourceFanoutPutsEverySourcePrefixOnTheMemberTheProgramPicks()
    {
        if (!RootOnly.CanRun(_output))
        {
            return;
        }
        _lab.EnsureUp();
        const int Members = 2;
        IPAddress v6Destination = IPAddress.Parse("fd00:198:18:200::1");
        string filter = BpfFilter.ForProtectedEndpoints(new IPEndPoint(VethLab.AddrA, ProtectedPort), new IPEndPoint(v6Destination, ProtectedPort));
        FanoutSteering steering = FanoutSteering.BySourcePrefix(Members, ipv4PrefixLength: 24, ipv6PrefixLength: 64, seed: 0x2545F491);
        var options = new PacketDeviceOptions { Fanout = steering };
        // Join order is member order (__fanout_link appends to f->arr).
        var members = new IPacketDevice[Members];
        using IPacketDevice sender = OpenIn(VethLab.NsB, VethLab.IfB, CaptureKind.AfPacket);
        try
        {
            for (int m = 0; m < Members; m++)
            {
                members[m] = Netns.Run(VethLab.NsA, () => PacketDeviceFactory.Open(VethLab.IfA, filter, CaptureKind.AfPacket, 4343, options));
            }

            // 24 IPv4 /24s and 24 IPv6 /64s, two hosts each, two flows per host, two frames per flow.
            var sent = new List<byte[]>();
            for (int prefix = 0; prefix < 24; prefix++)
            {
                for (int host = 0; host < 2; host++)
                {
                    var v4 = new IPAddress([198, 18, (byte)(100 + prefix), (byte)(10 + host * 100)]);
                    var v6 = IPAddress.Parse($"2001:db8:{prefix:x}:{prefix * 7:x}:{host}::{host + 1}");
                    for (int flow = 0; flow < 4; flow++)
                    {
                        ushort port = (ushort)(42000 + prefix * 16 + host * 4 + flow / 2);
                        sent.Add(TestFrames.Tcp(v4, VethLab.AddrA, port, ProtectedPort, sent.Count));
                        sent.Add(TestFrames.Tcp6(v6, v6Destination, port, ProtectedPort, sent.Count));
                    }
                }
            }
            foreach (byte[] frame in sent)
            {
                sender.Send(frame);
            }
            sender.Flush();

            var received = new List<(int Member, byte[] Frame)>();
            var batch = new FrameBatch(64);
            var clock = Stopwatch.StartNew();
            while (received.Count < sent.Count && clock.ElapsedMilliseconds < 3000)
            {
                for (int m = 0; m < Members; m++)
                {
                    int n = members[m].Receive(batch, 20);
                    for (int i = 0; i < n; i++)
                    {
                        received.Add((m, batch[i].ToArray()));
                    }
                }
            }

            Interop.Pcap.bpf_insn[] program = FanoutProgram.Build(steering);
            int[] perMember = new int[Members];
            foreach ((int member, byte[] frame) in received)
            {
                perMember[member]++;
                uint expected = ClassicBpf.Run(program, frame.AsSpan(14)) % Members;
                Assert.True(expected == (uint)member, $"frame {TestFrames.SequenceIndexOf(frame)} reached member {member}, the program says {expected}");
            }
            _output.WriteLine($"frames per member: {string.Join(' ', perMember)}");
            Assert.Equal(sent.Count, received.Count);
            Assert.Equal(sent.Count, received.Select(r => TestFrames.SequenceIndexOf(r.Frame)).Distinct().Count());
            Assert.All(perMember, n => Assert.True(n > 0, "a member got nothing: " + string.Join(' ', perMember)));
        }
        finally
        {
            foreach (IPacketDevice? member in members)
            {
                member?.Dispose();
            }
        }
    }

    [RootFact]
    public void MembersOfOneGroupMustAgreeOnTheSteering()
    {
        if (!RootOnly.CanRun(_output))
        {
            return;
        }
        _lab.EnsureUp();
        var bySource = new PacketDeviceOptions { Fanout = FanoutSteering.BySourcePrefix(2, 32, 64, 1) };
        using IPacketDevice first = Netns.Run(VethLab.NsA, () => PacketDeviceFactory.Open(VethLab.IfA, s_filter, CaptureKind.AfPacket, 4344, bySource));
        PacketDeviceException error = Assert.Throws<PacketDeviceException>(
            () => Netns.Run(VethLab.NsA, () => PacketDeviceFactory.Open(VethLab.IfA, s_filter, CaptureKind.AfPacket, 4344)));
        _output.WriteLine(error.Message);
        Assert.Contains("PACKET_FANOUT_HASH, group 4344", error.Message);
    }
}
