using System.Net;
using System.Runtime.Versioning;
using CookieProxy.Io;

namespace CookieProxy.Platform;

/// <summary>
/// Linux fast path: AF_PACKET sockets with memory-mapped receive rings, the capture filter attached in the kernel
/// (SO_ATTACH_FILTER), our own transmissions ignored (PACKET_IGNORE_OUTGOING), and batched transmit with one
/// sendmmsg(2) per <see cref="Flush"/> straight to the driver (PACKET_QDISC_BYPASS).
/// Flow data leaves through a further socket with PACKET_VNET_HDR: TCP super-frames the kernel (GSO) or the
/// NIC (TSO) cuts into segments, with the TCP checksum left to them too.
/// With a fanout group, N devices on N threads share the load by flow hash (PACKET_FANOUT_HASH) or by source
/// prefix (PACKET_FANOUT_CBPF, see <see cref="FanoutProgram"/>).
/// </summary>
/// <remarks>
/// <para>
/// Opened with the protected endpoints (what the host does), the device receives on two sockets, each with its
/// own classic BPF filter (<see cref="BpfFilter.ForProtectedEndpoints(IEnumerable{IPEndPoint}, SegmentClass)"/>):
/// bare SYNs on the SYN ring, every other segment of the protected endpoints (the cookie ACKs, data, FIN and RST
/// of live flows) on the flow ring. <see cref="Receive"/> drains the flow ring first. When a SYN flood outruns
/// the capture thread, only the SYN ring overflows: the kernel drops SYNs, never the ACKs and data of the
/// connections already made (issue 9). Both rings are TPACKET_V2 by default: a slot per frame, handed over and
/// woken per frame, so no frame waits for a block retire timer (TPACKET_V3 hands over a block when it is full or
/// after tp_retire_blk_tov, at least 1 ms: that timer was most of the added latency of a short request, see
/// docs/latency.md). Flow-ring slots hold an MTU-sized frame; a longer one (GRO) is also queued whole on the
/// socket (PACKET_COPY_THRESH) and taken from there. SYN-ring slots are 256 bytes, any bare SYN fits.
/// </para>
/// <para>
/// Opened with only a filter text, the device has one TPACKET_V3 ring for every frame (the original layout).
/// </para>
/// <para>
/// TX uses sendmmsg rather than a PACKET_TX_RING: it is the simpler correct choice (no second ring to
/// size and walk, no TP_STATUS_WRONG_FORMAT handling) and still costs one syscall per batch.
/// </para>
/// </remarks>
[SupportedOSPlatform("linux")]
public sealed partial class AfPacketDevice : IPacketDevice
{
    private readonly PacketRxSocket _rx;
    private readonly PacketRxSocket? _flowRx;
    private readonly WakePipe _wake;
    private readonly PacketTxQueue _tx;
    private readonly SafeFdHandle? _offloadSocket;
    private readonly PacketTxQueue? _offloadTx;
    private readonly Lock _statsLock = new();
    private readonly long _interfaceDropBaseline;
    private long _rejected;
    private bool _disposed;

    /// <param name="interfaceName">Interface to capture on and send from.</param>
    /// <param name="filter">pcap filter text (see <see cref="BpfFilter"/>); null or empty captures everything.
    /// One TPACKET_V3 ring receives every frame.</param>
    /// <param name="fanoutGroupId">0..65535 to join that PACKET_FANOUT group; -1 for none.</param>
    public AfPacketDevice(string interfaceName, string? filter, int fanoutGroupId = -1, PacketDeviceOptions? options = null)
        : this(interfaceName, filter, null, fanoutGroupId, options)
    {
    }

    /// <summary>
    /// Captures the TCP segments to <paramref name="protectedEndpoints"/>: by default (<see cref="ReceiveRings.Separate"/>)
    /// bare SYNs on their own ring and every other segment on the flow ring, drained first; with
    /// <see cref="ReceiveRings.Single"/> one ring as with a filter text.
    /// </summary>
    /// <param name="fanoutGroupId">0..65535: the SYN sockets join this group, the flow sockets group
    /// <see cref="FlowFanoutGroup"/>(id). Both groups get the same members in the same order (thread i is member i
    /// of both) and the same steering, so a flow's SYNs and its other segments reach the same thread.</param>
    public AfPacketDevice(string interfaceName, IReadOnlyList<IPEndPoint> protectedEndpoints, int fanoutGroupId = -1,
        PacketDeviceOptions? options = null)
        : this(interfaceName, null, protectedEndpoints ?? throw new ArgumentNullException(nameof(protectedEndpoints)), fanoutGroupId, options)
    {
    }

    private AfPacketDevice(string interfaceName, string? filter, IReadOnlyList<IPEndPoint>? endpoints, int fanoutGroupId,
        PacketDeviceOptions? options)
    {
        ArgumentNullException.ThrowIfNull(interfaceName);
        if (fanoutGroupId is < -1 or > 0xFFFF)
        {
            throw new ArgumentOutOfRangeException(nameof(fanoutGroupId), "A fanout group id is 0..65535, or -1 for none.");
        }
        options ??= PacketDeviceOptions.Default;
        Name = interfaceName;
        FanoutGroupId = fanoutGroupId;

        int ifindex = (int)Interop.PacketSocket.if_nametoindex(interfaceName);
        if (ifindex == 0)
        {
            throw new PacketDeviceException(interfaceName, $"af_packet: no such interface '{interfaceName}'", Interop.PacketSocket.ENODEV);
        }
        IfIndex = ifindex;

        bool split = endpoints is not null && options.Rings != ReceiveRings.Single;
        if (endpoints is not null && !split)
        {
            filter = BpfFilter.ForProtectedEndpoints(endpoints);
        }
        try
        {
            if (split)
            {
                // The flow ring first: from its bind on, the segments of live flows have a place to go.
                _flowRx = PacketRxSocket.Open(interfaceName, ifindex, BpfFilter.ForProtectedEndpoints(endpoints!, SegmentClass.AllButSyn),
                    FlowRingShape(options), options, fanoutGroupId < 0 ? -1 : FlowFanoutGroup(fanoutGroupId));
                _rx = PacketRxSocket.Open(interfaceName, ifindex, BpfFilter.ForProtectedEndpoints(endpoints!, SegmentClass.Syn),
                    SynRingShape(options), options, fanoutGroupId);
                Backend = options.Rings == ReceiveRings.SeparateSynBlocks
                    ? "af_packet-v2, SYNs on their own v3 ring"
                    : "af_packet-v2, SYNs on their own ring";
            }
            else
            {
                _rx = PacketRxSocket.Open(interfaceName, ifindex, filter, SingleRingShape(options), options, fanoutGroupId);
                Backend = "af_packet-v3";
            }
            if (options.QdiscBypass)
            {
                int one = 1;
                unsafe
                {
                    _rx.SetOption(Interop.PacketSocket.SOL_PACKET, Interop.PacketSocket.PACKET_QDISC_BYPASS, &one, sizeof(int),
                        "setsockopt(PACKET_QDISC_BYPASS)");
                }
            }
            _wake = new WakePipe(interfaceName);
            _tx = new PacketTxQueue(TxSlots(options), Math.Max(options.SnapLength, 1518), 0, vnetHeaders: false);
            if (options.SegmentationOffload)
            {
                _offloadSocket = TryOpenOffloadSocket(ifindex);
                if (_offloadSocket is not null)
                {
                    _offloadTx = new PacketTxQueue(TxSlots(options), OffloadFrameBytes, options.OffloadTxBufferBytes, vnetHeaders: true);
                }
            }
            _interfaceDropBaseline = ReadInterfaceCounter("rx_dropped");
        }
        catch
        {
            _offloadSocket?.Dispose();
            _rx?.Dispose();
            _flowRx?.Dispose();
            throw;
        }
    }

    public string Name { get; }

    public string Backend { get; }

    public int IfIndex { get; }

    public int FanoutGroupId { get; }

    /// <summary>True when SYNs and the other segments arrive on separate rings (the flow ring drained first).</summary>
    public bool HasSeparateSynRing => _flowRx is not null;

    /// <summary>The fanout group of the flow sockets whose SYN sockets are in group <paramref name="synGroup"/>.</summary>
    public static int FlowFanoutGroup(int synGroup) => synGroup ^ 0x8000;

    /// <summary>A 64 KiB IP datagram plus Ethernet and two VLAN tags: the largest GSO frame.</summary>
    private const int OffloadFrameBytes = ushort.MaxValue + 14 + 8;

    public int OffloadMaxFrameBytes => _offloadTx is null ? 0 : OffloadFrameBytes;

    /// <summary>Frames skipped in user space because they were our own (only without PACKET_IGNORE_OUTGOING).</summary>
    public long SkippedOutgoing => _rx.SkippedOutgoing + (_flowRx?.SkippedOutgoing ?? 0);

    /// <summary>Frames longer than a flow-ring slot, taken whole from the socket's receive queue.</summary>
    public long WholeFrameCopies => _flowRx?.WholeCopies ?? 0;

    public void Wake() => _wake.Wake();

    public bool TrySetAuxiliaryWaitFd(int fd)
    {
        _wake.AuxiliaryFd = fd;
        return true;
    }

    public DeviceStats GetStats()
    {
        lock (_statsLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            (long received, long dropped) = _rx.ReadStatistics();
            (long flowReceived, long flowDropped) = _flowRx?.ReadStatistics() ?? (0, 0);
            long interfaceDropped = Math.Max(0, ReadInterfaceCounter("rx_dropped") - _interfaceDropBaseline);
            return new DeviceStats(received + flowReceived, dropped + flowDropped, interfaceDropped,
                _tx.Sent + (_offloadTx?.Sent ?? 0), _tx.SendFailed + (_offloadTx?.SendFailed ?? 0) + Volatile.Read(ref _rejected),
                flowDropped);
        }
    }

    /// <summary>
    /// A reload that adds or removes protected endpoints: every ring gets its filter rebuilt, the flow ring first (a
    /// live flow's segments are never refused on the way). Each swap is atomic (sk_attach_filter). With separate rings
    /// the filters come from <paramref name="endpoints"/>; with one ring from <paramref name="filter"/>.
    /// </summary>
    public bool TryReplaceFilter(string filter, IReadOnlyList<IPEndPoint> endpoints)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_flowRx is null)
        {
            _rx.AttachFilter(filter);
            return true;
        }
        _flowRx.AttachFilter(BpfFilter.ForProtectedEndpoints(endpoints, SegmentClass.AllButSyn));
        _rx.AttachFilter(BpfFilter.ForProtectedEndpoints(endpoints, SegmentClass.Syn));
        return true;
    }

    /// <summary>Frames each ring's filter let through since the device opened (PACKET_STATISTICS tp_packets, drops
    /// included): the SYN ring (or the single ring) and the flow ring.</summary>
    internal (long SynRing, long FlowRing) PacketsPerRing()
    {
        lock (_statsLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return (_rx.ReadStatistics().Received, _flowRx?.ReadStatistics().Received ?? 0);
        }
    }

    private long ReadInterfaceCounter(string counter) => PacketDeviceException.ReadInterfaceCounter(Name, counter);

    internal static PacketDeviceException Failure(string interfaceName, string operation, int errno) =>
        PacketDeviceException.FromErrno("af_packet", interfaceName, operation, errno, errno switch
        {
            Interop.PacketSocket.EAFNOSUPPORT => " (kernel built without CONFIG_PACKET)",
            Interop.PacketSocket.ENOPROTOOPT or Interop.PacketSocket.EINVAL when operation.Contains("PACKET_", StringComparison.Ordinal)
                => " (kernel too old for this option?)",
            _ => null,
        });

    public void Dispose()
    {
        lock (_statsLock)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
        }
        // The owner stops its capture thread (Wake, join) before disposing: the rings go away here.
        _rx.Dispose();
        _flowRx?.Dispose();
        _offloadSocket?.Dispose();
        _wake.Dispose();
    }
}
