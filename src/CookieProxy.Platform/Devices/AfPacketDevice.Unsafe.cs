using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using CookieProxy.Io;
using static CookieProxy.Platform.Interop.PacketSocket;

namespace CookieProxy.Platform;

public sealed unsafe partial class AfPacketDevice
{
    private const int MaxSendmmsgBatch = 1024;

    private int _snapLength = 65535;

    private static SafeFdHandle OpenSocket(string interfaceName)
    {
        // Protocol 0: the socket receives nothing until bind() below, so no unfiltered frame slips in
        // between socket() and SO_ATTACH_FILTER.
        int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
        if (fd < 0)
        {
            throw Failure(interfaceName, "socket(AF_PACKET, SOCK_RAW)", Marshal.GetLastPInvokeError());
        }
        return new SafeFdHandle(fd);
    }

    /// <summary>SO_ATTACH_FILTER again: the kernel swaps the socket's filter in one step (sk_attach_filter), so no
    /// frame is judged by half a filter. For a reload that adds or removes protected endpoints.</summary>
    public bool TryReplaceFilter(string filter)
    {
        using BpfProgram program = BpfProgram.Compile(filter, _snapLength, Name);
        var fprog = new sock_fprog { len = checked((ushort)program.InstructionCount), filter = program.Instructions };
        SetOption(SOL_SOCKET, SO_ATTACH_FILTER, &fprog, (uint)sizeof(sock_fprog), "setsockopt(SO_ATTACH_FILTER)");
        return true;
    }

    private void Configure(string? filter, PacketDeviceOptions options)
    {
        _snapLength = options.SnapLength;
        if (!string.IsNullOrEmpty(filter))
        {
            using BpfProgram program = BpfProgram.Compile(filter, options.SnapLength, Name);
            var fprog = new sock_fprog { len = checked((ushort)program.InstructionCount), filter = program.Instructions };
            SetOption(SOL_SOCKET, SO_ATTACH_FILTER, &fprog, (uint)sizeof(sock_fprog), "setsockopt(SO_ATTACH_FILTER)");
        }

        int version = TPACKET_V3;
        SetOption(SOL_PACKET, PACKET_VERSION, &version, sizeof(int), "setsockopt(PACKET_VERSION, TPACKET_V3)");

        // Since Linux 4.20. Without it the ring walker drops PACKET_OUTGOING frames itself.
        int one = 1;
        _ = setsockopt(_socket, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(int));
        if (options.QdiscBypass)
        {
            SetOption(SOL_PACKET, PACKET_QDISC_BYPASS, &one, sizeof(int), "setsockopt(PACKET_QDISC_BYPASS)");
        }

        if (options.RingBlockSize <= 0 || options.RingBlockSize % Environment.SystemPageSize != 0
            || options.RingBlockCount <= 0 || options.RingFrameSize <= 0 || options.RingBlockSize % options.RingFrameSize != 0)
        {
            throw new ArgumentException("The ring block size must be a multiple of the page size and of the frame size.", nameof(options));
        }
        var request = new tpacket_req3
        {
            tp_block_size = (uint)options.RingBlockSize,
            tp_block_nr = (uint)options.RingBlockCount,
            tp_frame_size = (uint)options.RingFrameSize,
            tp_frame_nr = (uint)(options.RingBlockSize / options.RingFrameSize * options.RingBlockCount),
            tp_retire_blk_tov = (uint)options.RingRetireTimeoutMs,
        };
        SetOption(SOL_PACKET, PACKET_RX_RING, &request, (uint)sizeof(tpacket_req3), "setsockopt(PACKET_RX_RING)");

        nuint ringBytes = (nuint)options.RingBlockSize * (nuint)options.RingBlockCount;
        IntPtr memory = mmap(IntPtr.Zero, ringBytes, PROT_READ | PROT_WRITE, MAP_SHARED, _socket, 0);
        if (memory == MAP_FAILED)
        {
            throw Failure(Name, $"mmap of the {ringBytes >> 20} MiB receive ring", Marshal.GetLastPInvokeError());
        }
        _ringMapping = new SafeRingMapping(memory, ringBytes);
        _ring = new TPacketV3Ring((byte*)memory, options.RingBlockSize, options.RingBlockCount);

        if (options.Promiscuous)
        {
            var membership = new packet_mreq { mr_ifindex = IfIndex, mr_type = PACKET_MR_PROMISC };
            SetOption(SOL_PACKET, PACKET_ADD_MEMBERSHIP, &membership, (uint)sizeof(packet_mreq), "setsockopt(PACKET_ADD_MEMBERSHIP, PACKET_MR_PROMISC)");
        }

        var address = new sockaddr_ll
        {
            sll_family = AF_PACKET,
            sll_protocol = HostToNetwork(ETH_P_ALL),
            sll_ifindex = IfIndex,
        };
        if (bind(_socket, &address, (uint)sizeof(sockaddr_ll)) != 0)
        {
            throw Failure(Name, "bind", Marshal.GetLastPInvokeError());
        }

        if (FanoutGroupId >= 0)
        {
            JoinFanout(options.Fanout); // after bind: fanout needs a bound socket
        }
    }

    /// <summary>The TX queue and the sendmmsg vectors have the same number of slots.</summary>
    private static int TxSlots(PacketDeviceOptions options) => Math.Clamp(options.TxBatchFrames, 1, MaxSendmmsgBatch);

    private void SetOption(int level, int name, void* value, uint length, string operation)
    {
        if (setsockopt(_socket, level, name, value, length) != 0)
        {
            throw Failure(Name, operation, Marshal.GetLastPInvokeError());
        }
    }

    private static ushort HostToNetwork(ushort value) => BitConverter.IsLittleEndian ? (ushort)((value >> 8) | (value << 8)) : value;

    public int Receive(FrameBatch batch, int timeoutMs)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        batch.Clear();
        _ring.Drain(batch);
        if (batch.Count == 0 && timeoutMs != 0)
        {
            WakePipe.Ready ready = _wake.Poll(_socket.Fd, timeoutMs);
            if ((ready & WakePipe.Ready.DeviceError) != 0)
            {
                ThrowIfSocketError();
            }
            if ((ready & WakePipe.Ready.Device) != 0)
            {
                _ring.Drain(batch);
            }
        }
        return batch.Count;
    }

    /// <summary>POLLERR: fetch (and clear) the pending error. A vanished interface ends the capture loop.</summary>
    private void ThrowIfSocketError()
    {
        const int SO_ERROR = 4;
        int error = 0;
        uint length = sizeof(int);
        _ = getsockopt(_socket, SOL_SOCKET, SO_ERROR, &error, &length);
        if (error is ENETDOWN or ENODEV or ENXIO)
        {
            throw Failure(Name, "receive (interface went down)", error);
        }
    }

    public bool Send(ReadOnlySpan<byte> frame)
    {
        if (frame.Length < 14 || frame.Length > _tx.MaxFrameBytes)
        {
            _rejected++;
            return false;
        }
        _tx.Add(_socket.Fd, frame);
        return true;
    }

    public Span<byte> ReserveOffloaded(int maxLength)
    {
        if (_offloadTx is null)
        {
            throw new NotSupportedException($"{Name}: no TX offload (PACKET_VNET_HDR unavailable or disabled)");
        }
        return _offloadTx.Reserve(_offloadSocket!.Fd, maxLength);
    }

    public void CommitOffloaded(int length, in TxOffload offload) => _offloadTx!.Commit(length, offload);

    public void Flush()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _tx.Flush(_socket.Fd);
        _offloadTx?.Flush(_offloadSocket!.Fd);
    }

    /// <summary>
    /// The offload socket: PACKET_VNET_HDR, bound with protocol 0 so it receives nothing. Not QDISC_BYPASS:
    /// __dev_direct_xmit drops a GSO skb that validate_xmit_skb had to segment in software (a NIC without
    /// TSO), while the normal path segments it. Null when the kernel refuses (then flows send plain frames).
    /// </summary>
    private static SafeFdHandle? TryOpenOffloadSocket(int ifindex)
    {
        int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
        if (fd < 0)
        {
            return null;
        }
        var handle = new SafeFdHandle(fd);
        int one = 1;
        var address = new sockaddr_ll { sll_family = AF_PACKET, sll_protocol = 0, sll_ifindex = ifindex };
        if (setsockopt(handle, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(int)) != 0
            || bind(handle, &address, (uint)sizeof(sockaddr_ll)) != 0)
        {
            handle.Dispose();
            return null;
        }
        return handle;
    }

    private void ReleaseRing()
    {
        _ring = default;
        _ringMapping?.Dispose();
        _ringMapping = null;
    }

    private (uint Packets, uint Drops) ReadKernelStatistics()
    {
        tpacket_stats_v3 stats;
        uint length = (uint)sizeof(tpacket_stats_v3);
        if (getsockopt(_socket, SOL_PACKET, PACKET_STATISTICS, &stats, &length) != 0)
        {
            return (0, 0);
        }
        return (stats.tp_packets, stats.tp_drops);
    }
}
