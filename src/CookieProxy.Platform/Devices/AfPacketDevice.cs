using System.Globalization;
using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using CookieProxy.Io;

namespace CookieProxy.Platform;

/// <summary>
/// Linux fast path: an AF_PACKET socket with a memory-mapped TPACKET_V3 receive ring, the capture filter
/// attached in the kernel (SO_ATTACH_FILTER), our own transmissions ignored (PACKET_IGNORE_OUTGOING), and
/// batched transmit with one sendmmsg(2) per <see cref="Flush"/> straight to the driver (PACKET_QDISC_BYPASS).
/// Flow data leaves through a second socket with PACKET_VNET_HDR: TCP super-frames the kernel (GSO) or the
/// NIC (TSO) cuts into segments, with the TCP checksum left to them too.
/// With a fanout group, N devices on N threads share the load by flow hash (PACKET_FANOUT_HASH) or by source
/// prefix (PACKET_FANOUT_CBPF, see <see cref="FanoutProgram"/>).
/// </summary>
/// <remarks>
/// TX uses sendmmsg rather than a PACKET_TX_RING: it is the simpler correct choice (no second ring to
/// size and walk, no TP_STATUS_WRONG_FORMAT handling) and still costs one syscall per batch.
/// </remarks>
[SupportedOSPlatform("linux")]
public sealed partial class AfPacketDevice : IPacketDevice
{
    private readonly SafeFdHandle _socket;
    private readonly WakePipe _wake;
    private readonly PacketTxQueue _tx;
    private readonly SafeFdHandle? _offloadSocket;
    private readonly PacketTxQueue? _offloadTx;
    private readonly Lock _statsLock = new();
    private readonly long _interfaceDropBaseline;
    private TPacketV3Ring _ring;
    private SafeRingMapping? _ringMapping;
    private long _rejected;
    private long _kernelReceived;
    private long _kernelDropped;
    private bool _disposed;

    /// <param name="interfaceName">Interface to capture on and send from.</param>
    /// <param name="filter">pcap filter text (see <see cref="BpfFilter"/>); null or empty captures everything.</param>
    /// <param name="fanoutGroupId">0..65535 to join that PACKET_FANOUT group; -1 for none.</param>
    public AfPacketDevice(string interfaceName, string? filter, int fanoutGroupId = -1, PacketDeviceOptions? options = null)
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

        _socket = OpenSocket(interfaceName);
        try
        {
            Configure(filter, options);
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
            ReleaseRing();
            _offloadSocket?.Dispose();
            _socket.Dispose();
            throw;
        }
    }

    public string Name { get; }

    public string Backend => "af_packet-v3";

    public int IfIndex { get; }

    public int FanoutGroupId { get; }

    /// <summary>A 64 KiB IP datagram plus Ethernet and two VLAN tags: the largest GSO frame.</summary>
    private const int OffloadFrameBytes = ushort.MaxValue + 14 + 8;

    public int OffloadMaxFrameBytes => _offloadTx is null ? 0 : OffloadFrameBytes;

    /// <summary>Frames skipped in user space because they were our own (only without PACKET_IGNORE_OUTGOING).</summary>
    public long SkippedOutgoing => _ring.SkippedOutgoing;

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
            // PACKET_STATISTICS resets the kernel counters on every read: accumulate.
            (uint packets, uint drops) = ReadKernelStatistics();
            _kernelReceived += packets;
            _kernelDropped += drops;
            long interfaceDropped = Math.Max(0, ReadInterfaceCounter("rx_dropped") - _interfaceDropBaseline);
            return new DeviceStats(_kernelReceived, _kernelDropped, interfaceDropped,
                _tx.Sent + (_offloadTx?.Sent ?? 0), _tx.SendFailed + (_offloadTx?.SendFailed ?? 0) + Volatile.Read(ref _rejected));
        }
    }

    private long ReadInterfaceCounter(string counter) => PacketDeviceException.ReadInterfaceCounter(Name, counter);

    private static PacketDeviceException Failure(string interfaceName, string operation, int errno) =>
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
        // The owner stops its capture thread (Wake, join) before disposing: the ring goes away here.
        ReleaseRing();
        _offloadSocket?.Dispose();
        _socket.Dispose();
        _wake.Dispose();
    }
}
