using System.Diagnostics;
using System.Net;
using CookieProxy.Io;
using CookieProxy.Platform;
using Xunit.Abstractions;

namespace CookieProxy.Tests.Platform;

/// <summary>
/// The AF_PACKET device opened with the protected endpoints: bare SYNs on their own ring, every other segment on
/// the flow ring (issue 9). Against the real kernel on the platform veth lab. Needs root.
/// </summary>
[Collection(PlatformLabCollection.Name)]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class SeparateSynRingLabTests
{
    private const ushort ProtectedPort = 80;
    private static readonly IPAddress s_addrA6 = IPAddress.Parse("fd00:198:18:200::1");
    private static readonly IPAddress s_addrB6 = IPAddress.Parse("fd00:198:18:200::2");

    private readonly VethLab _lab;
    private readonly ITestOutputHelper _output;

    public SeparateSynRingLabTests(VethLab lab, ITestOutputHelper output)
    {
        _lab = lab;
        _output = output;
    }

    private static IPEndPoint[] Endpoints => [new IPEndPoint(VethLab.AddrA, ProtectedPort), new IPEndPoint(s_addrA6, ProtectedPort)];

    private static AfPacketDevice OpenSplit(int fanoutGroup = -1, PacketDeviceOptions? options = null) =>
        Netns.Run(VethLab.NsA, () => new AfPacketDevice(VethLab.IfA, Endpoints, fanoutGroup, options));

    private static IPacketDevice OpenSender() =>
        Netns.Run(VethLab.NsB, () => PacketDeviceFactory.Open(VethLab.IfB, "", CaptureKind.AfPacket));

    /// <summary>A test frame with other TCP flags (its TCP checksum no longer matches, which no receiver here checks).</summary>
    private static byte[] WithFlags(byte[] frame, byte flags)
    {
        int l2 = frame[12] == 0x81 ? 18 : 14;
        int l3 = frame[l2 - 2] == 0x86 ? 40 : 20;
        frame[l2 + l3 + 13] = flags;
        return frame;
    }

    private static byte[] V4(int index, byte flags, int payload = 16, ushort port = ProtectedPort, ushort? vlan = null) =>
        WithFlags(TestFrames.Tcp(VethLab.AddrB, VethLab.AddrA, (ushort)(42000 + index), port, index, payload, vlan), flags);

    private static byte[] V6(int index, byte flags) =>
        WithFlags(TestFrames.Tcp6(s_addrB6, s_addrA6, (ushort)(42000 + index), ProtectedPort, index), flags);

    private const byte Syn = 0x02;
    private const byte Ack = 0x10;

    [RootFact]
    public void BareSynsAndEveryOtherSegmentArriveOnceEachThroughTheirOwnRings()
    {
        if (!RootOnly.CanRun(_output))
        {
            return;
        }
        _lab.EnsureUp();
        using AfPacketDevice receiver = OpenSplit();
        using IPacketDevice sender = OpenSender();
        Assert.True(receiver.HasSeparateSynRing);
        _output.WriteLine(receiver.Backend);

        byte[][] syns =
        [
            V4(0, Syn), V4(1, Syn, payload: 4), V6(2, Syn), V4(3, Syn, vlan: 0x0064),
            V4(4, Syn, payload: 400),    // a SYN carrying data is still a bare SYN (it arrives truncated to the slot)
        ];
        byte[][] others =
        [
            V4(10, Ack), V4(11, Ack | 0x08), V4(12, Ack | 0x01), V4(13, 0x04), V4(14, Syn | Ack), V4(15, Syn | 0x01),
            V4(16, Syn | 0x04), V6(17, Ack), V6(18, Syn | Ack), V4(19, Ack, vlan: 0x0064),
        ];
        foreach (byte[] f in syns.Concat(others))
        {
            Assert.True(sender.Send(f));
        }
        // Noise neither filter takes: another port.
        sender.Send(V4(30, Syn, port: 81));
        sender.Send(V4(31, Ack, port: 81));
        sender.Flush();

        List<(byte[] Frame, FrameFlags Flags)> received = VethPair.ReceiveAtLeast(receiver, syns.Length + others.Length + 1, timeoutMs: 2000);

        Assert.Equal(syns.Length + others.Length, received.Count);
        foreach (byte[] f in syns.Concat(others))
        {
            Assert.Single(received, r => r.Frame.AsSpan().StartsWith(f.AsSpan(0, Math.Min(f.Length, r.Frame.Length)))
                && TestFrames.SequenceIndexOf(r.Frame) == TestFrames.SequenceIndexOf(f));
        }
        (long synRing, long flowRing) = receiver.PacketsPerRing();
        _output.WriteLine($"SYN ring {synRing} frames, flow ring {flowRing} frames");
        Assert.Equal(syns.Length, synRing);
        Assert.Equal(others.Length, flowRing);
    }

    [RootFact]
    public void AFullSynRingDropsOnlySynsAndEveryOtherSegmentStillArrives()
    {
        if (!RootOnly.CanRun(_output))
        {
            return;
        }
        _lab.EnsureUp();
        // One 128 KiB block of 256-byte slots: room for 512 SYNs.
        using AfPacketDevice receiver = OpenSplit(options: new PacketDeviceOptions { RingBlockCount = 1 });
        using IPacketDevice sender = OpenSender();
        const int Syns = 2000;
        const int Acks = 200;
        // Nobody reads while the flood arrives: the capture thread is busy, as in an overload.
        for (int i = 0; i < Syns; i++)
        {
            sender.Send(V4(i, Syn));
            if (i % 10 == 0)
            {
                sender.Send(V4(i + 100_000, Ack));
            }
            if (i % 32 == 31)
            {
                sender.Flush();
            }
        }
        sender.Flush();
        Thread.Sleep(200);

        List<(byte[] Frame, FrameFlags Flags)> received = VethPair.ReceiveAtLeast(receiver, Syns + Acks, timeoutMs: 1500);

        int acks = received.Count(r => r.Frame[14 + 20 + 13] == Ack);
        int syns = received.Count(r => r.Frame[14 + 20 + 13] == Syn);
        DeviceStats stats = receiver.GetStats();
        _output.WriteLine($"received {syns} SYNs and {acks} ACKs; {stats}");
        Assert.Equal(Acks, acks);
        Assert.InRange(syns, 1, 512);
        Assert.Equal(0, stats.FlowRingDropped);
        Assert.Equal(Syns - syns, stats.KernelDropped);
    }

    [RootFact]
    public void ASynAndTheRestOfItsFlowReachTheSameFanoutMember()
    {
        if (!RootOnly.CanRun(_output))
        {
            return;
        }
        _lab.EnsureUp();
        const int Flows = 32;
        using AfPacketDevice first = OpenSplit(fanoutGroup: 4343);
        using AfPacketDevice second = OpenSplit(fanoutGroup: 4343);
        using IPacketDevice sender = OpenSender();
        for (int i = 0; i < Flows; i++)
        {
            sender.Send(V4(i, Syn));
            sender.Send(V4(i, Ack));
            sender.Send(V4(i, Ack | 0x08));
        }
        sender.Flush();

        var syns = new[] { new HashSet<int>(), new HashSet<int>() };
        var rest = new[] { new List<int>(), new List<int>() };
        var batch = new FrameBatch(64);
        var clock = Stopwatch.StartNew();
        while (syns[0].Count + syns[1].Count + rest[0].Count + rest[1].Count < Flows * 3 && clock.ElapsedMilliseconds < 3000)
        {
            for (int d = 0; d < 2; d++)
            {
                int n = (d == 0 ? first : second).Receive(batch, 20);
                for (int i = 0; i < n; i++)
                {
                    int port = (batch[i][34] << 8) | batch[i][35];
                    (batch[i][14 + 20 + 13] == Syn ? (ICollection<int>)syns[d] : rest[d]).Add(port);
                }
            }
        }

        _output.WriteLine($"member 0: {syns[0].Count} SYNs {rest[0].Count} others; member 1: {syns[1].Count} SYNs {rest[1].Count} others");
        Assert.Equal(Flows, syns[0].Count + syns[1].Count);
        Assert.Equal(Flows * 2, rest[0].Count + rest[1].Count);
        Assert.NotEmpty(syns[0]);
        Assert.NotEmpty(syns[1]);
        for (int d = 0; d < 2; d++)
        {
            Assert.Equal(syns[d].Order(), rest[d].Distinct().Order());
        }
    }

    [RootFact]
    public void FramesLongerThanAFlowRingSlotArriveWhole()
    {
        if (!RootOnly.CanRun(_output))
        {
            return;
        }
        _lab.EnsureUp();
        VethLab.Shell($"ip -n {VethLab.NsA} link set {VethLab.IfA} mtu 9000 && ip -n {VethLab.NsB} link set {VethLab.IfB} mtu 9000");
        try
        {
            using AfPacketDevice receiver = OpenSplit();
            using IPacketDevice sender = Netns.Run(VethLab.NsB, () => PacketDeviceFactory.Open(VethLab.IfB, "", CaptureKind.AfPacket,
                options: new PacketDeviceOptions { SnapLength = 9100 }));
            var sent = new List<byte[]>();
            for (int i = 0; i < 20; i++)
            {
                // Alternating jumbo and small frames: the whole copies must stay in step with the slots.
                byte[] f = V4(i, Ack, payload: i % 2 == 0 ? 8000 - i : 32);
                sent.Add(f);
                Assert.True(sender.Send(f));
            }
            sender.Flush();

            List<(byte[] Frame, FrameFlags Flags)> received = VethPair.ReceiveAtLeast(receiver, sent.Count, timeoutMs: 2000);

            Assert.Equal(sent.Count, received.Count);
            for (int i = 0; i < sent.Count; i++)
            {
                Assert.Equal(sent[i], received[i].Frame);
                Assert.Equal(FrameFlags.None, received[i].Flags);
            }
            Assert.Equal(10, receiver.WholeFrameCopies);
        }
        finally
        {
            VethLab.Shell($"ip -n {VethLab.NsA} link set {VethLab.IfA} mtu 1500; ip -n {VethLab.NsB} link set {VethLab.IfB} mtu 1500; true");
        }
    }

    [RootFact]
    public void AReloadedEndpointListReachesBothRings()
    {
        if (!RootOnly.CanRun(_output))
        {
            return;
        }
        _lab.EnsureUp();
        using AfPacketDevice receiver = OpenSplit();
        using IPacketDevice sender = OpenSender();
        const ushort Added = 8443;
        sender.Send(V4(0, Syn, port: Added));
        sender.Send(V4(1, Ack, port: Added));
        sender.Flush();
        Assert.Empty(VethPair.ReceiveAtLeast(receiver, 1, timeoutMs: 300));

        IPEndPoint[] next = [.. Endpoints, new IPEndPoint(VethLab.AddrA, Added)];
        Assert.True(receiver.TryReplaceFilter(BpfFilter.ForProtectedEndpoints(next), next));
        (long synBefore, long flowBefore) = receiver.PacketsPerRing();
        sender.Send(V4(2, Syn, port: Added));
        sender.Send(V4(3, Ack, port: Added));
        sender.Send(V4(4, Syn));
        sender.Flush();

        Assert.Equal(3, VethPair.ReceiveAtLeast(receiver, 3, timeoutMs: 2000).Count);
        (long syn, long flow) = receiver.PacketsPerRing();
        Assert.Equal(2, syn - synBefore);
        Assert.Equal(1, flow - flowBefore);
    }
}
