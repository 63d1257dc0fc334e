using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using CookieProxy.Io;
using static CookieProxy.Platform.Interop.PacketSocket;
using System.Runtime.Versioning;

namespace CookieProxy.Platform;

/// <summary>
/// The send queue of one AF_PACKET socket: frames copied or built in place in a pinned <see cref="FrameBatch"/>
/// and handed to the kernel with one sendmmsg(2) per <see cref="Flush"/>. On a PACKET_VNET_HDR socket every
/// message is two iovecs, [virtio_net_hdr, frame]: the header says what the kernel or NIC finishes
/// (checksum, segmentation), see packet_snd / virtio_net_hdr_to_skb in net/packet/af_packet.c.
/// <para>
/// The libpcap device on Linux uses it too, on libpcap's own bound AF_PACKET descriptor: pcap_inject there is
/// send(fd, frame, length, 0) (pcap_inject_linux in libpcap's pcap-linux.c), so a batch per sendmmsg sends exactly
/// what pcap_inject would. That descriptor is non-blocking (pcap_setnonblock, for the receive side), so a burst that
/// fills the socket's send buffer (SO_SNDBUF, ~200 KiB) fails with EAGAIN or ENOBUFS instead of waiting; with
/// <c>waitForRoom</c> the queue then waits for room, briefly and a bounded number of times per frame (backpressure
/// on the capture thread, as a blocking send would be). A frame that still does not go, or that the kernel refuses
/// (EMSGSIZE, ENETDOWN), is counted and dropped alone.
/// </para>
/// </summary>
[SupportedOSPlatform("linux")]
internal sealed unsafe class PacketTxQueue
{
    /// <summary>With waitForRoom: tries per frame before it counts as failed; between two, at most <see cref="WaitMs"/> in poll(2).</summary>
    internal const int Attempts = 4;

    internal const int WaitMs = 2;

    private readonly FrameBatch _frames;
    private readonly bool _vnetHeaders;
    private readonly bool _waitForRoom;
    // sendmmsg's vectors live in pinned arrays: no native allocation to free, addresses never move.
    private readonly mmsghdr[] _messageArray;
    private readonly iovec[] _iovecArray;
    private readonly virtio_net_hdr[] _headerArray;
    private readonly mmsghdr* _messages;
    private readonly iovec* _iovecs;
    private readonly virtio_net_hdr* _headers;
    private bool _reserved;

    public PacketTxQueue(int slots, int maxFrameBytes, int bufferBytes, bool vnetHeaders, bool waitForRoom = false)
    {
        _frames = new FrameBatch(slots, maxFrameBytes, bufferBytes);
        _vnetHeaders = vnetHeaders;
        _waitForRoom = waitForRoom;
        int iovPerMessage = vnetHeaders ? 2 : 1;
        _messageArray = GC.AllocateArray<mmsghdr>(slots, pinned: true);
        _iovecArray = GC.AllocateArray<iovec>(slots * iovPerMessage, pinned: true);
        _headerArray = GC.AllocateArray<virtio_net_hdr>(vnetHeaders ? slots : 0, pinned: true);
        _messages = (mmsghdr*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_messageArray));
        _iovecs = (iovec*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_iovecArray));
        _headers = (virtio_net_hdr*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_headerArray));
        for (int i = 0; i < slots; i++)
        {
            _messages[i].msg_hdr.msg_iov = &_iovecs[i * iovPerMessage];
            _messages[i].msg_hdr.msg_iovlen = (nuint)iovPerMessage;
            if (vnetHeaders)
            {
                _iovecs[i * 2].iov_base = &_headers[i];
                _iovecs[i * 2].iov_len = (nuint)sizeof(virtio_net_hdr);
            }
        }
    }

    public int MaxFrameBytes => _frames.MaxFrameBytes;

    public long Sent { get; private set; }

    public long SendFailed { get; private set; }

    /// <summary>Copies a complete frame in (checksums done by the caller); flushes first when full.</summary>
    public void Add(int fd, ReadOnlySpan<byte> frame)
    {
        frame.CopyTo(Reserve(fd, frame.Length));
        Commit(frame.Length, default);
    }

    /// <summary>Room for one frame at the queue's tail, to build in place; flushes first when full.</summary>
    public Span<byte> Reserve(int fd, int maxLength)
    {
        if (_reserved)
        {
            throw new InvalidOperationException("A reserved frame was neither committed nor abandoned.");
        }
        if (!_frames.TryReserve(maxLength, out Span<byte> destination))
        {
            Flush(fd);
            if (!_frames.TryReserve(maxLength, out destination))
            {
                throw new ArgumentOutOfRangeException(nameof(maxLength), $"A frame is at most {_frames.MaxFrameBytes} bytes here.");
            }
        }
        _reserved = true;
        return destination;
    }

    /// <summary>Queues the reserved (or just copied) frame; <paramref name="offload"/> only on a PACKET_VNET_HDR socket.</summary>
    public void Commit(int length, in TxOffload offload)
    {
        _reserved = false;
        if (length <= 0)
        {
            return;    // abandoned reservation
        }
        if (_vnetHeaders)
        {
            ref virtio_net_hdr h = ref _headerArray[_frames.Count];
            h = default;
            if (offload.HeaderLength > 0)
            {
                // The frame's checksum field holds the pseudo-header sum; the kernel/NIC completes it
                // (CHECKSUM_PARTIAL) from csum_start, writing it at csum_start + csum_offset.
                h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
                h.csum_start = (ushort)offload.ChecksumStart;
                h.csum_offset = TxOffload.TcpChecksumOffset;
                h.hdr_len = (ushort)offload.HeaderLength;
                if (offload.IsSegmented)
                {
                    h.gso_type = offload.IpVersion == 6 ? VIRTIO_NET_HDR_GSO_TCPV6 : VIRTIO_NET_HDR_GSO_TCPV4;
                    h.gso_size = (ushort)offload.SegmentSize;
                }
            }
        }
        _frames.Commit(length, FrameFlags.None);
    }

    public void Flush(int fd)
    {
        int count = _frames.Count;
        if (count == 0)
        {
            return;
        }
        int frameIov = _vnetHeaders ? 1 : 0;
        int iovPerMessage = frameIov + 1;
        // The batch's buffer is pinned (FrameBatch allocates it on the POH): pointers stay valid.
        for (int i = 0; i < count; i++)
        {
            Span<byte> frame = _frames[i];
            iovec* iov = &_iovecs[(i * iovPerMessage) + frameIov];
            iov->iov_base = Unsafe.AsPointer(ref MemoryMarshal.GetReference(frame));
            iov->iov_len = (nuint)frame.Length;
        }
        int next = 0;
        int failures = 0; // of the frame at `next`
        while (next < count)
        {
            // A bound packet socket needs no msg_name: frames leave on the bound interface.
            int sent = sendmmsg(fd, _messages + next, (uint)(count - next), 0);
            if (sent > 0)
            {
                next += sent;
                Sent += sent;
                failures = 0;
                continue;
            }
            int errno = Marshal.GetLastPInvokeError();
            if (errno == Interop.Libc.EINTR)
            {
                continue;
            }
            if (_waitForRoom && (errno == EAGAIN || errno == ENOBUFS) && ++failures < Attempts)
            {
                WaitWritable(fd);
                continue;
            }
            // ENOBUFS (driver queue full under qdisc bypass; or still no room after the waits), EINVAL or EMSGSIZE
            // (malformed frame), ENETDOWN: drop this frame only.
            SendFailed++;
            next++;
            failures = 0;
        }
        _frames.Clear();
    }

    private static void WaitWritable(int fd)
    {
        var pfd = new Interop.Libc.pollfd { fd = fd, events = Interop.Libc.POLLOUT };
        _ = Interop.Libc.poll(&pfd, 1, WaitMs); // EINTR or a timeout: the next sendmmsg tells
    }
}
