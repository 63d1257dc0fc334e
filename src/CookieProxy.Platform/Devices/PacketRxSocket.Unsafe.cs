using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using CookieProxy.Io;
using static CookieProxy.Platform.Interop.PacketSocket;

namespace CookieProxy.Platform;

/// <summary>The shape of one AF_PACKET receive ring.</summary>
/// <param name="Version">TPACKET_V2 (a slot per frame, handed over and woken per frame) or TPACKET_V3 (frames
/// packed in blocks, handed over when a block is full or its retire timer fires).</param>
/// <param name="FrameSize">V2: the slot size, header included (frames longer than a slot are truncated, or taken
/// whole from the receive queue with <paramref name="CopyLongFrames"/>). V3: only the ring's geometry.</param>
/// <param name="RetireTimeoutMs">V3 only: tp_retire_blk_tov.</param>
/// <param name="CopyLongFrames">V2 only: PACKET_COPY_THRESH, so a frame longer than its slot also reaches us whole.</param>
internal readonly record struct RxRingShape(int Version, int BlockSize, int BlockCount, int FrameSize, int RetireTimeoutMs = 1,
    bool CopyLongFrames = false)
{
    public long Bytes => (long)BlockSize * BlockCount;

    public int FrameCount => BlockSize / FrameSize * BlockCount;

    public void Validate()
    {
        if (Version is not (TPACKET_V2 or TPACKET_V3))
        {
            throw new ArgumentException($"TPACKET version {Version} is not supported (V2 or V3).");
        }
        if (BlockSize <= 0 || BlockSize % Environment.SystemPageSize != 0 || BlockCount <= 0 || FrameSize <= 0
            || BlockSize % FrameSize != 0 || FrameSize % TPACKET_ALIGNMENT != 0
            || (Version == TPACKET_V2 && FrameSize < TPACKET2_HDRLEN + 64))
        {
            throw new ArgumentException(
                $"Ring of {BlockCount} x {BlockSize} B blocks with {FrameSize} B frames: the block size must be a multiple of the "
                + "page size and of the frame size, the frame size a multiple of 16 (and for V2 room for a header and a frame).");
        }
    }
}

/// <summary>
/// One AF_PACKET receive socket with its mapped ring: the filter attached before bind (so no unfiltered frame
/// slips in), our own transmissions ignored (PACKET_IGNORE_OUTGOING), optionally a PACKET_FANOUT member.
/// The device owns one (every frame) or two (SYNs apart from the rest, <see cref="AfPacketDevice"/>).
/// Owner thread only, except <see cref="ReadStatistics"/> (the device serialises it).
/// </summary>
[SupportedOSPlatform("linux")]
internal sealed unsafe class PacketRxSocket : IDisposable
{
    private readonly SafeFdHandle _socket;
    private readonly string _name;
    private readonly bool _v3;
    private SafeRingMapping? _mapping;
    private TPacketV3Ring _blocks;
    private TPacketV2Ring _slots;
    private long _received;
    private long _dropped;
    private int _snapLength = 65535;

    private PacketRxSocket(SafeFdHandle socket, string name, RxRingShape shape)
    {
        _socket = socket;
        _name = name;
        Shape = shape;
        _v3 = shape.Version == TPACKET_V3;
    }

    public RxRingShape Shape { get; }

    public SafeFdHandle Socket => _socket;

    public int Fd => _socket.Fd;

    /// <summary>Frames skipped because they were our own (only without PACKET_IGNORE_OUTGOING).</summary>
    public long SkippedOutgoing => _v3 ? _blocks.SkippedOutgoing : _slots.SkippedOutgoing;

    /// <summary>Frames longer than a V2 slot that were taken whole from the receive queue.</summary>
    public long WholeCopies => _v3 ? 0 : _slots.WholeCopies;

    /// <summary>
    /// Opens, filters, sizes and maps the ring, binds to <paramref name="ifindex"/> and joins the fanout group
    /// (<paramref name="fanoutGroup"/> &lt; 0: none). Throws <see cref="PacketDeviceException"/> naming the step that failed.
    /// </summary>
    public static PacketRxSocket Open(string name, int ifindex, string? filter, RxRingShape shape, PacketDeviceOptions options,
        int fanoutGroup)
    {
        shape.Validate();
        // Protocol 0: the socket receives nothing until bind() below, so no unfiltered frame slips in
        // between socket() and SO_ATTACH_FILTER.
        int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
        if (fd < 0)
        {
            throw AfPacketDevice.Failure(name, "socket(AF_PACKET, SOCK_RAW)", Marshal.GetLastPInvokeError());
        }
        var rx = new PacketRxSocket(new SafeFdHandle(fd), name, shape);
        try
        {
            rx.Configure(ifindex, filter, options, fanoutGroup);
            return rx;
        }
        catch
        {
            rx.Dispose();
            throw;
        }
    }

    private void Configure(int ifindex, string? filter, PacketDeviceOptions options, int fanoutGroup)
    {
        _snapLength = options.SnapLength;
        if (!string.IsNullOrEmpty(filter))
        {
            AttachFilter(filter);
        }

        int version = Shape.Version;
        SetOption(SOL_PACKET, PACKET_VERSION, &version, sizeof(int), $"setsockopt(PACKET_VERSION, TPACKET_V{version + 1})");

        // Since Linux 4.20. Without it the ring walker drops PACKET_OUTGOING frames itself.
        int one = 1;
        _ = setsockopt(_socket, SOL_PACKET, PACKET_IGNORE_OUTGOING, &one, sizeof(int));

        if (_v3)
        {
            var request = new tpacket_req3
            {
                tp_block_size = (uint)Shape.BlockSize,
                tp_block_nr = (uint)Shape.BlockCount,
                tp_frame_size = (uint)Shape.FrameSize,
                tp_frame_nr = (uint)Shape.FrameCount,
                tp_retire_blk_tov = (uint)Shape.RetireTimeoutMs,
            };
            SetOption(SOL_PACKET, PACKET_RX_RING, &request, (uint)sizeof(tpacket_req3), "setsockopt(PACKET_RX_RING, TPACKET_V3)");
        }
        else
        {
            if (Shape.CopyLongFrames)
            {
                // Any non-zero value turns it on (tpacket_rcv). The whole copies are charged to the receive buffer:
                // room for a few dozen 64 KiB (GRO) frames, not the 208 KiB default.
                SetOption(SOL_PACKET, PACKET_COPY_THRESH, &one, sizeof(int), "setsockopt(PACKET_COPY_THRESH)");
                int bytes = options.LongFrameQueueBytes;
                if (setsockopt(_socket, SOL_SOCKET, SO_RCVBUFFORCE, &bytes, sizeof(int)) != 0)
                {
                    _ = setsockopt(_socket, SOL_SOCKET, SO_RCVBUF, &bytes, sizeof(int));
                }
            }
            var request = new tpacket_req
            {
                tp_block_size = (uint)Shape.BlockSize,
                tp_block_nr = (uint)Shape.BlockCount,
                tp_frame_size = (uint)Shape.FrameSize,
                tp_frame_nr = (uint)Shape.FrameCount,
            };
            SetOption(SOL_PACKET, PACKET_RX_RING, &request, (uint)sizeof(tpacket_req), "setsockopt(PACKET_RX_RING, TPACKET_V2)");
        }

        nuint ringBytes = (nuint)Shape.Bytes;
        IntPtr memory = mmap(IntPtr.Zero, ringBytes, PROT_READ | PROT_WRITE, MAP_SHARED, _socket, 0);
        if (memory == MAP_FAILED)
        {
            throw AfPacketDevice.Failure(_name, $"mmap of the {ringBytes >> 20} MiB receive ring", Marshal.GetLastPInvokeError());
        }
        _mapping = new SafeRingMapping(memory, ringBytes);
        if (_v3)
        {
            _blocks = new TPacketV3Ring((byte*)memory, Shape.BlockSize, Shape.BlockCount);
        }
        else
        {
            _slots = new TPacketV2Ring((byte*)memory, Shape.FrameSize, Shape.FrameCount);
        }

        if (options.Promiscuous)
        {
            var membership = new packet_mreq { mr_ifindex = ifindex, mr_type = PACKET_MR_PROMISC };
            SetOption(SOL_PACKET, PACKET_ADD_MEMBERSHIP, &membership, (uint)sizeof(packet_mreq), "setsockopt(PACKET_ADD_MEMBERSHIP, PACKET_MR_PROMISC)");
        }

        var address = new sockaddr_ll
        {
            sll_family = AF_PACKET,
            sll_protocol = AfPacketDevice.HostToNetwork(ETH_P_ALL),
            sll_ifindex = ifindex,
        };
        if (bind(_socket, &address, (uint)sizeof(sockaddr_ll)) != 0)
        {
            throw AfPacketDevice.Failure(_name, "bind", Marshal.GetLastPInvokeError());
        }

        if (fanoutGroup >= 0)
        {
            AfPacketDevice.JoinFanout(_socket, _name, fanoutGroup, options.Fanout); // after bind: fanout needs a bound socket
        }
    }

    /// <summary>SO_ATTACH_FILTER; again on a running socket the kernel swaps the filter in one step
    /// (sk_attach_filter), so no frame is judged by half a filter. Throws for a filter that does not compile.</summary>
    public void AttachFilter(string filter)
    {
        using BpfProgram program = BpfProgram.Compile(filter, _snapLength, _name);
        var fprog = new sock_fprog { len = checked((ushort)program.InstructionCount), filter = program.Instructions };
        SetOption(SOL_SOCKET, SO_ATTACH_FILTER, &fprog, (uint)sizeof(sock_fprog), "setsockopt(SO_ATTACH_FILTER)");
    }

    public void SetOption(int level, int name, void* value, uint length, string operation)
    {
        if (setsockopt(_socket, level, name, value, length) != 0)
        {
            throw AfPacketDevice.Failure(_name, operation, Marshal.GetLastPInvokeError());
        }
    }

    /// <summary>Copies what the ring holds into <paramref name="batch"/> (up to its room). Returns the frames added.</summary>
    public int Drain(FrameBatch batch)
    {
        if (_v3)
        {
            return _blocks.Drain(batch);
        }
        if (Shape.CopyLongFrames)
        {
            var queue = new ReceiveQueue(_socket.Fd);
            return _slots.Drain(batch, ref queue);
        }
        var none = default(NoCopySource);
        return _slots.Drain(batch, ref none);
    }

    /// <summary>PACKET_STATISTICS (which resets the kernel's counters on every read), accumulated.</summary>
    public (long Received, long Dropped) ReadStatistics()
    {
        uint packets;
        uint drops;
        if (_v3)
        {
            tpacket_stats_v3 stats;
            uint length = (uint)sizeof(tpacket_stats_v3);
            if (getsockopt(_socket, SOL_PACKET, PACKET_STATISTICS, &stats, &length) != 0)
            {
                return (_received, _dropped);
            }
            (packets, drops) = (stats.tp_packets, stats.tp_drops);
        }
        else
        {
            tpacket_stats stats;
            uint length = (uint)sizeof(tpacket_stats);
            if (getsockopt(_socket, SOL_PACKET, PACKET_STATISTICS, &stats, &length) != 0)
            {
                return (_received, _dropped);
            }
            (packets, drops) = (stats.tp_packets, stats.tp_drops);
        }
        _received += packets;
        _dropped += drops;
        return (_received, _dropped);
    }

    /// <summary>POLLERR: fetch (and clear) the pending error. A vanished interface ends the capture loop.</summary>
    public void ThrowIfSocketError()
    {
        const int SO_ERROR = 4;
        int error = 0;
        uint length = sizeof(int);
        _ = getsockopt(_socket, SOL_SOCKET, SO_ERROR, &error, &length);
        if (error is ENETDOWN or ENODEV or ENXIO)
        {
            throw AfPacketDevice.Failure(_name, "receive (interface went down)", error);
        }
    }

    public void Dispose()
    {
        // The owner stops its capture thread (Wake, join) before disposing: the ring goes away here.
        _blocks = default;
        _slots = default;
        _mapping?.Dispose();
        _mapping = null;
        _socket.Dispose();
    }

    /// <summary>The socket's own receive queue, where PACKET_COPY_THRESH puts the whole copies of long frames.</summary>
    private readonly struct ReceiveQueue : IRingCopySource
    {
        private readonly int _fd;

        public ReceiveQueue(int fd) => _fd = fd;

        public int ReceiveWhole(Span<byte> destination)
        {
            fixed (byte* buffer = destination)
            {
                nint n = recv(_fd, buffer, (nuint)destination.Length, MSG_DONTWAIT);
                return n < 0 ? -1 : (int)n;
            }
        }

        public void Discard()
        {
            byte scratch;
            _ = recv(_fd, &scratch, 1, MSG_DONTWAIT);
        }
    }
}
