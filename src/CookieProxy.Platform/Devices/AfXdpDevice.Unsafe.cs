using System.Runtime.InteropServices;
using CookieProxy.Io;
using static CookieProxy.Platform.Interop.Xdp;

namespace CookieProxy.Platform;

public sealed unsafe partial class AfXdpDevice
{
    /// <summary>UMEM chunk: one frame each. 2048 (the smallest the kernel allows) holds an MTU 1500 frame
    /// plus the kernel's 256-byte headroom on receive.</summary>
    private const int ChunkSize = 2048;

    /// <summary>
    /// Default chunks lent to the kernel for receive through the fill ring (also the size of the fill and RX
    /// rings): how long the capture thread may be descheduled before the kernel drops. Unlike a TPACKET_V3
    /// block, which packs a thousand SYNs into 128 KiB, every frame takes a whole chunk here, so the count
    /// must be large: 16384 chunks (32 MiB) hold ~125 ms of a 130 kpps flood, about what the AF_PACKET
    /// ring's 128 blocks hold. With 2048 the lab measured thousands of drops (rx_ring_full) per flood on a
    /// busy 2-core host.
    /// </summary>
    public const int DefaultRxFrames = 16384;

    /// <summary>Chunks for transmit (and the size of the TX and completion rings).</summary>
    private const int TxFrames = 2048;

    /// <summary>The largest frame we transmit: one chunk.</summary>
    private const int MaxTxFrame = ChunkSize;

    private readonly List<SafeRingMapping> _mappings = new();
    private byte* _umem;
    private XdpRing _fill;
    private XdpRing _completion;
    private XdpRing _rx;
    private XdpRing _tx;

    /// <summary>UMEM addresses of TX chunks not in flight (a stack: the most recently completed chunk is still in cache).</summary>
    private ulong[] _txFree = [];
    private int _txFreeCount;

    /// <summary>Descriptors written into the TX ring but not yet published (published at Flush).</summary>
    private uint _txQueued;

    private static SafeFdHandle OpenSocket(string interfaceName)
    {
        int fd = Interop.PacketSocket.socket(AF_XDP, Interop.PacketSocket.SOCK_RAW | Interop.PacketSocket.SOCK_CLOEXEC, 0);
        if (fd < 0)
        {
            throw Failure(interfaceName, "socket(AF_XDP, SOCK_RAW)", Marshal.GetLastPInvokeError());
        }
        return new SafeFdHandle(fd);
    }

    /// <summary>The setup sequence of Documentation/networking/af_xdp.rst (and libxdp's xsk_socket__create):
    /// UMEM, ring sizes, ring offsets, mmap of the four rings, bind; then lend every RX chunk to the kernel.</summary>
    private void Configure()
    {
        nuint umemBytes = (nuint)(RxFrames + TxFrames) * ChunkSize;
        IntPtr memory = mmap(IntPtr.Zero, umemBytes, Interop.PacketSocket.PROT_READ | Interop.PacketSocket.PROT_WRITE,
            MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
        if (memory == Interop.PacketSocket.MAP_FAILED)
        {
            throw Failure(Name, $"mmap of the {umemBytes >> 20} MiB UMEM", Marshal.GetLastPInvokeError());
        }
        _mappings.Add(new SafeRingMapping(memory, umemBytes));
        _umem = (byte*)memory;

        var registration = new xdp_umem_reg { addr = (ulong)memory, len = umemBytes, chunk_size = ChunkSize };
        SetOption(XDP_UMEM_REG, &registration, (uint)sizeof(xdp_umem_reg), "setsockopt(XDP_UMEM_REG)");
        int entries = RxFrames;
        SetOption(XDP_UMEM_FILL_RING, &entries, sizeof(int), "setsockopt(XDP_UMEM_FILL_RING)");
        SetOption(XDP_RX_RING, &entries, sizeof(int), "setsockopt(XDP_RX_RING)");
        entries = TxFrames;
        SetOption(XDP_UMEM_COMPLETION_RING, &entries, sizeof(int), "setsockopt(XDP_UMEM_COMPLETION_RING)");
        SetOption(XDP_TX_RING, &entries, sizeof(int), "setsockopt(XDP_TX_RING)");

        xdp_mmap_offsets offsets;
        uint length = (uint)sizeof(xdp_mmap_offsets);
        if (Interop.PacketSocket.getsockopt(_socket, SOL_XDP, XDP_MMAP_OFFSETS, &offsets, &length) != 0)
        {
            throw Failure(Name, "getsockopt(XDP_MMAP_OFFSETS)", Marshal.GetLastPInvokeError());
        }
        if (length < sizeof(xdp_mmap_offsets))
        {
            // Before Linux 5.4 the offsets had no flags word, and there was no need_wakeup.
            throw new PacketDeviceException(Name, $"af_xdp: kernel too old on '{Name}' (XDP_MMAP_OFFSETS without ring flags; Linux 5.4+ needed)");
        }

        _fill = new XdpRing(MapRing(XDP_UMEM_PGOFF_FILL_RING, offsets.fr, RxFrames, sizeof(ulong), "fill"), offsets.fr, (uint)RxFrames);
        _completion = new XdpRing(MapRing(XDP_UMEM_PGOFF_COMPLETION_RING, offsets.cr, TxFrames, sizeof(ulong), "completion"), offsets.cr, TxFrames);
        _rx = new XdpRing(MapRing(XDP_PGOFF_RX_RING, offsets.rx, RxFrames, sizeof(xdp_desc), "RX"), offsets.rx, (uint)RxFrames);
        _tx = new XdpRing(MapRing(XDP_PGOFF_TX_RING, offsets.tx, TxFrames, sizeof(xdp_desc), "TX"), offsets.tx, TxFrames);

        // XDP_COPY: veth and generic XDP have no zero-copy. NEED_WAKEUP: the kernel says when a kick is
        // needed, so Flush skips the syscall when it is not.
        var address = new sockaddr_xdp
        {
            sxdp_family = AF_XDP,
            sxdp_flags = XDP_COPY | XDP_USE_NEED_WAKEUP,
            sxdp_ifindex = (uint)IfIndex,
            sxdp_queue_id = (uint)QueueId,
        };
        Bind(&address);

        uint index = _fill.ProducerIndex;
        for (uint i = 0; i < (uint)RxFrames; i++)
        {
            _fill.Address(index + i) = (ulong)i * ChunkSize;
        }
        _fill.Submit((uint)RxFrames);

        _txFree = new ulong[TxFrames];
        for (int i = 0; i < TxFrames; i++)
        {
            _txFree[i] = (ulong)(RxFrames + TxFrames - 1 - i) * ChunkSize;
        }
        _txFreeCount = TxFrames;
    }

    /// <summary>
    /// bind(2), waiting out a previous socket on the same queue: closing an XSK frees its buffer pool, and
    /// with it the queue's claim (netdev_rx_queue.pool), only from deferred work after an RCU grace period
    /// (xsk_destruct → xp_put_pool → xp_release_deferred), tens of milliseconds later. Until then bind says
    /// EBUSY, which is also the answer while another live socket holds the queue.
    /// </summary>
    private void Bind(sockaddr_xdp* address)
    {
        const int MaxWaitMs = 1000;
        long start = Environment.TickCount64;
        while (bind(_socket, address, (uint)sizeof(sockaddr_xdp)) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno != Interop.Bpf.EBUSY || Environment.TickCount64 - start > MaxWaitMs)
            {
                PacketDeviceException failure = Failure(Name, $"bind(ifindex {IfIndex}, queue {QueueId}, XDP_COPY)", errno);
                if (errno == Interop.Bpf.EBUSY)
                {
                    failure = new PacketDeviceException(Name, failure.Message
                        + $" (another AF_XDP socket holds rx queue {QueueId} of '{Name}': is another cookieproxy --capture afxdp running on it?)", errno);
                }
                throw failure;
            }
            Thread.Sleep(10);
        }
    }

    private byte* MapRing(long pageOffset, in xdp_ring_offset offsets, int entries, int entrySize, string ring)
    {
        nuint bytes = (nuint)(offsets.desc + (ulong)(entries * entrySize));
        IntPtr memory = mmap(IntPtr.Zero, bytes, Interop.PacketSocket.PROT_READ | Interop.PacketSocket.PROT_WRITE,
            Interop.PacketSocket.MAP_SHARED | MAP_POPULATE, _socket.Fd, pageOffset);
        if (memory == Interop.PacketSocket.MAP_FAILED)
        {
            throw Failure(Name, $"mmap of the {ring} ring", Marshal.GetLastPInvokeError());
        }
        _mappings.Add(new SafeRingMapping(memory, bytes));
        return (byte*)memory;
    }

    private void SetOption(int name, void* value, uint length, string operation)
    {
        if (Interop.PacketSocket.setsockopt(_socket, SOL_XDP, name, value, length) != 0)
        {
            throw Failure(Name, operation, Marshal.GetLastPInvokeError());
        }
    }

    public int Receive(FrameBatch batch, int timeoutMs)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        batch.Clear();
        DrainRx(batch);
        if (batch.Count == 0 && timeoutMs != 0)
        {
            // poll() on an XSK is readable when the RX ring is not empty (xsk_poll); in copy mode it also
            // drives pending TX, and in zero-copy mode it wakes the driver when it asked for it.
            WakePipe.Ready ready = _wake.Poll(_socket.Fd, timeoutMs);
            if ((ready & WakePipe.Ready.DeviceError) != 0)
            {
                ThrowIfSocketError();
            }
            if ((ready & WakePipe.Ready.Device) != 0)
            {
                DrainRx(batch);
            }
        }
        return batch.Count;
    }

    /// <summary>Copies ready RX frames into the batch, then hands their chunks straight back through the fill ring.</summary>
    private void DrainRx(FrameBatch batch)
    {
        uint ready = _rx.Peek((uint)(batch.MaxFrames - batch.Count));
        if (ready == 0)
        {
            return;
        }
        uint start = _rx.ConsumerIndex;
        uint taken = 0;
        for (; taken < ready; taken++)
        {
            ref xdp_desc desc = ref _rx.Descriptor(start + taken);
            // Aligned mode: addr is the chunk base plus the kernel's headroom; len never exceeds the chunk.
            if (!batch.TryAdd(new ReadOnlySpan<byte>(_umem + desc.addr, (int)desc.len)))
            {
                break;
            }
        }
        if (taken == 0)
        {
            return;
        }

        // Every RX chunk is either in the fill ring, with the kernel, or in the RX ring, and the fill ring has
        // a slot per RX chunk: there is always room for what we give back.
        if (_fill.FreeEntries(taken) < taken)
        {
            ThrowFillRingOverflow();
        }
        uint fillIndex = _fill.ProducerIndex;
        for (uint i = 0; i < taken; i++)
        {
            _fill.Address(fillIndex + i) = _rx.Descriptor(start + i).addr & ~(ulong)(ChunkSize - 1);
        }
        _rx.Release(taken);
        _fill.Submit(taken);
        _received += taken;
    }

    private static void ThrowFillRingOverflow() =>
        throw new InvalidOperationException("af_xdp: fill ring has no room for a returned RX chunk (UMEM accounting bug)");

    /// <summary>POLLERR: fetch (and clear) the pending error. A vanished interface (ENETDOWN from the
    /// kernel's unregister notifier) ends the capture loop.</summary>
    private void ThrowIfSocketError()
    {
        const int SO_ERROR = 4;
        int error = 0;
        uint length = sizeof(int);
        _ = Interop.PacketSocket.getsockopt(_socket, Interop.PacketSocket.SOL_SOCKET, SO_ERROR, &error, &length);
        if (error is Interop.PacketSocket.ENETDOWN or Interop.PacketSocket.ENODEV or Interop.PacketSocket.ENXIO)
        {
            throw Failure(Name, "receive (interface went down)", error);
        }
    }

    public bool Send(ReadOnlySpan<byte> frame)
    {
        if (frame.Length < 14 || frame.Length > MaxTxFrame)
        {
            _sendFailed++;
            return false;
        }
        if (_txFreeCount == 0)
        {
            ReclaimCompleted();
            if (_txFreeCount == 0)
            {
                Flush();
                if (_txFreeCount == 0)
                {
                    // Every chunk is in flight: the peer is not draining (or the socket's send buffer is full).
                    _sendFailed++;
                    return false;
                }
            }
        }
        ulong address = _txFree[--_txFreeCount];
        frame.CopyTo(new Span<byte>(_umem + address, frame.Length));
        // A chunk in flight holds a TX slot until completion, and there are as many slots as chunks.
        ref xdp_desc desc = ref _tx.Descriptor(_tx.ProducerIndex + _txQueued);
        desc.addr = address;
        desc.len = (uint)frame.Length;
        desc.options = 0;
        _txQueued++;
        return true;
    }

    public void Flush()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (_txQueued != 0)
        {
            _tx.Submit(_txQueued);
            _txQueued = 0;
        }
        if (_tx.Outstanding() != 0 && _tx.NeedsWakeup)
        {
            Kick();
        }
        ReclaimCompleted();
    }

    /// <summary>
    /// sendto(fd, NULL, 0, MSG_DONTWAIT): in copy mode the kernel turns TX descriptors into skbs and hands them
    /// to the driver right here (__xsk_generic_xmit), at most 32 per call (TX_BATCH_SIZE), answering EAGAIN
    /// while more remain. EAGAIN without progress (the socket's send buffer is full of skbs the peer has not
    /// freed yet), ENOBUFS and EBUSY: stop; the descriptors stay queued and the next Flush retries them.
    /// </summary>
    private void Kick()
    {
        int fd = _socket.Fd;
        uint before = _tx.Outstanding();
        for (int attempt = 0; attempt < TxFrames / 32 + 2 && before != 0; attempt++)
        {
            nint rc = sendto(fd, null, 0, MSG_DONTWAIT, null, 0);
            int errno = rc < 0 ? Marshal.GetLastPInvokeError() : 0;
            uint after = _tx.Outstanding();
            if (rc < 0 && errno != Interop.PacketSocket.EAGAIN && errno != Interop.Libc.EINTR)
            {
                if (errno is Interop.PacketSocket.ENETDOWN or Interop.PacketSocket.ENXIO)
                {
                    throw Failure(Name, "sendto (interface went down)", errno);
                }
                break;
            }
            if (after == before && rc < 0 && errno != Interop.Libc.EINTR)
            {
                break;
            }
            before = after;
        }
    }

    /// <summary>Takes completed TX chunks back from the completion ring.</summary>
    private void ReclaimCompleted()
    {
        uint done = _completion.Peek(TxFrames);
        if (done == 0)
        {
            return;
        }
        uint start = _completion.ConsumerIndex;
        for (uint i = 0; i < done; i++)
        {
            _txFree[_txFreeCount++] = _completion.Address(start + i);
        }
        _completion.Release(done);
        _sent += done;
    }

    private XdpSocketStats ReadSocketStatistics()
    {
        xdp_statistics stats = default;
        uint length = (uint)sizeof(xdp_statistics);
        if (Interop.PacketSocket.getsockopt(_socket, SOL_XDP, XDP_STATISTICS, &stats, &length) != 0)
        {
            return default;
        }
        return new XdpSocketStats((long)stats.rx_dropped, (long)stats.rx_invalid_descs, (long)stats.tx_invalid_descs,
            (long)stats.rx_ring_full, (long)stats.rx_fill_ring_empty_descs, (long)stats.tx_ring_empty_descs);
    }

    private void ReleaseMemory()
    {
        _fill = default;
        _completion = default;
        _rx = default;
        _tx = default;
        _umem = null;
        foreach (SafeRingMapping mapping in _mappings)
        {
            mapping.Dispose();
        }
        _mappings.Clear();
    }
}
