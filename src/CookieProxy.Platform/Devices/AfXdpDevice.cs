using System.Globalization;
using System.Net;
using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using CookieProxy.Io;

namespace CookieProxy.Platform;

/// <summary>
/// Linux AF_XDP backend: an XDP program (native/xdp_redirect.c) attached to the interface redirects the protected
/// endpoints' TCP frames into an AF_XDP socket, so they skip the IP stack (no routing, no netfilter, no
/// AF_PACKET tap) and land in a UMEM we share with the kernel; everything else goes to the stack as before.
/// Transmit writes frames into the same UMEM and kicks the socket once per <see cref="Flush"/>.
/// </summary>
/// <remarks>
/// <para>Copy mode (XDP_COPY) and generic XDP by default: they work on every device, veth included (which has
/// no zero-copy). On veth, driver-mode XDP would run on the sending peer's CPU, see <see cref="XdpAttachMode.Native"/>.</para>
/// <para>One socket on rx queue 0: enough for veth and single-queue NICs. A multi-queue NIC would need one
/// socket per queue (XSKMAP slot per queue) and one capture thread each; PACKET_FANOUT has no equivalent
/// here, so asking for a fanout group is an error.</para>
/// <para>The XDP program does the filtering, so the pcap filter text is not used. The kernel reports no
/// checksum state through AF_XDP: frames arrive with <see cref="FrameFlags.None"/> and the responder verifies.
/// A frame longer than a UMEM chunk minus the kernel's headroom (1792 bytes) is dropped by the kernel and
/// counted in rx_dropped: GRO/LRO must be off on the interface, as in the lab.</para>
/// </remarks>
[SupportedOSPlatform("linux")]
public sealed partial class AfXdpDevice : IPacketDevice
{
    private readonly SafeFdHandle _socket;
    private readonly WakePipe _wake;
    private readonly XdpRedirect _redirect;
    private readonly Lock _statsLock = new();
    private readonly long _interfaceDropBaseline;
    private long _received;
    private long _sent;
    private long _sendFailed;
    private bool _disposed;

    /// <param name="interfaceName">Interface to capture on and send from.</param>
    /// <param name="protectedEndpoints">The ip:port pairs whose TCP frames the XDP program redirects to us.</param>
    /// <param name="mode">Where the XDP program runs; generic (SKB) mode unless measured otherwise.</param>
    /// <param name="queueId">The rx queue to bind to (0 on veth).</param>
    /// <param name="rxFrames">UMEM chunks for receive, a power of two: see <see cref="DefaultRxFrames"/>.</param>
    public AfXdpDevice(string interfaceName, IEnumerable<IPEndPoint> protectedEndpoints, XdpAttachMode mode = XdpAttachMode.Generic,
        int queueId = 0, int rxFrames = DefaultRxFrames)
    {
        ArgumentNullException.ThrowIfNull(interfaceName);
        ArgumentNullException.ThrowIfNull(protectedEndpoints);
        ArgumentOutOfRangeException.ThrowIfNegative(queueId);
        if (rxFrames < 64 || !int.IsPow2(rxFrames))
        {
            throw new ArgumentOutOfRangeException(nameof(rxFrames), "The RX chunk count is a power of two, at least 64 (ring sizes are powers of two).");
        }
        Name = interfaceName;
        QueueId = queueId;
        Mode = mode;
        RxFrames = rxFrames;

        int ifindex = (int)Interop.PacketSocket.if_nametoindex(interfaceName);
        if (ifindex == 0)
        {
            throw new PacketDeviceException(interfaceName, $"af_xdp: no such interface '{interfaceName}'", Interop.PacketSocket.ENODEV);
        }
        IfIndex = ifindex;

        // Program and map first (the clearest permission error), then the socket, then the attachment:
        // the program only starts redirecting once our socket is in its map.
        _redirect = XdpRedirect.Load(interfaceName, protectedEndpoints, queues: queueId + 1);
        try
        {
            _socket = OpenSocket(interfaceName);
            try
            {
                Configure();
                _redirect.InsertSocket(queueId, _socket.Fd);
                _redirect.Attach(ifindex, mode);
                _wake = new WakePipe(interfaceName);
                _interfaceDropBaseline = ReadInterfaceCounter("rx_dropped");
            }
            catch
            {
                ReleaseMemory();
                _socket.Dispose();
                throw;
            }
        }
        catch
        {
            _redirect.Dispose();
            throw;
        }
    }

    public string Name { get; }

    public string Backend => Mode == XdpAttachMode.Native ? "af_xdp-copy-native" : "af_xdp-copy-generic";

    public int IfIndex { get; }

    public int QueueId { get; }

    public XdpAttachMode Mode { get; }

    /// <summary>UMEM chunks lent to the kernel for receive (fill and RX ring size).</summary>
    public int RxFrames { get; }

    public void Wake() => _wake.Wake();

    public bool TrySetAuxiliaryWaitFd(int fd)
    {
        _wake.AuxiliaryFd = fd;
        return true;
    }

    /// <summary>Runs the attached program over one frame without the interface (BPF_PROG_TEST_RUN): its XDP action.</summary>
    internal int TestRunProgram(ReadOnlySpan<byte> frame) => _redirect.TestRun(frame);

    public DeviceStats GetStats()
    {
        lock (_statsLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            XdpSocketStats s = ReadSocketStatistics();
            long interfaceDropped = Math.Max(0, ReadInterfaceCounter("rx_dropped") - _interfaceDropBaseline);
            return new DeviceStats(Volatile.Read(ref _received), s.RxDropped + s.RxRingFull, interfaceDropped,
                Volatile.Read(ref _sent), Volatile.Read(ref _sendFailed));
        }
    }

    /// <summary>XDP_STATISTICS (cumulative since the socket was created).</summary>
    public XdpSocketStats GetSocketStats()
    {
        lock (_statsLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            return ReadSocketStatistics();
        }
    }

    private long ReadInterfaceCounter(string counter) => PacketDeviceException.ReadInterfaceCounter(Name, counter);

    private static PacketDeviceException Failure(string interfaceName, string operation, int errno) =>
        PacketDeviceException.FromErrno("af_xdp", interfaceName, operation, errno, errno switch
        {
            Interop.PacketSocket.EAFNOSUPPORT => " (kernel built without AF_XDP: CONFIG_XDP_SOCKETS)",
            Interop.PacketSocket.EINVAL when operation.StartsWith("bind", StringComparison.Ordinal)
                => " (no such rx queue on this interface?)",
            Interop.Bpf.ENOMEM or Interop.PacketSocket.ENOBUFS when operation.Contains("UMEM", StringComparison.Ordinal)
                => " (locked-memory limit too low? see ulimit -l)",
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
        // Detach first so the stack gets the port back before the socket goes; then the socket, then its memory
        // (the kernel holds the UMEM pages pinned until the socket is closed).
        _redirect.Dispose();
        _socket.Dispose();
        ReleaseMemory();
        _wake.Dispose();
    }
}

/// <summary>struct xdp_statistics of one AF_XDP socket.</summary>
public readonly record struct XdpSocketStats(long RxDropped, long RxInvalidDescs, long TxInvalidDescs, long RxRingFull,
    long RxFillRingEmptyDescs, long TxRingEmptyDescs);
