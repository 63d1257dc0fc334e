using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using CookieProxy.Io;
using static CookieProxy.Platform.Interop.PacketSocket;

namespace CookieProxy.Platform;

/// <summary>
/// The libpcap device's send queue on Linux: frames copied into a pinned <see cref="FrameBatch"/> and handed to the
/// kernel with one sendmmsg(2) per <see cref="Flush"/>, on libpcap's own descriptor. On Linux pcap_inject is
/// send(fd, frame, length, 0) on that bound AF_PACKET socket (pcap_inject_linux in libpcap's pcap-linux.c), so
/// this sends exactly what pcap_inject would, a batch per system call instead of one frame per system call. BSD and
/// macOS BPF have no batch write (one write(2) on /dev/bpf per frame): there the device keeps pcap_inject.
/// </summary>
/// <remarks>
/// libpcap's descriptor is non-blocking (pcap_setnonblock, for the receive side), so a burst that fills the socket's
/// send buffer (SO_SNDBUF, ~200 KiB) fails with EAGAIN or ENOBUFS instead of waiting. We then wait for room, briefly
/// and a bounded number of times per frame (backpressure on the capture thread, as a blocking send would be); a
/// frame that still does not go, or that the kernel refuses (EMSGSIZE, ENETDOWN), is counted and dropped alone.
/// </remarks>
[SupportedOSPlatform("linux")]
internal sealed unsafe class PcapTxQueue
{
    /// <summary>Tries per frame before it counts as failed; between two, at most <see cref="WaitMs"/> in poll(2).</summary>
    internal const int Attempts = 4;

    internal const int WaitMs = 2;

    private readonly int _fd;
    private readonly FrameBatch _frames;
    // sendmmsg's vectors live in pinned arrays: no native allocation to free, addresses never move.
    private readonly mmsghdr[] _messageArray;
    private readonly iovec[] _iovecArray;
    private readonly mmsghdr* _messages;
    private readonly iovec* _iovecs;

    public PcapTxQueue(int fd, int slots, int maxFrameBytes)
    {
        _fd = fd;
        _frames = new FrameBatch(slots, maxFrameBytes);
        _messageArray = GC.AllocateArray<mmsghdr>(slots, pinned: true);
        _iovecArray = GC.AllocateArray<iovec>(slots, pinned: true);
        _messages = (mmsghdr*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_messageArray));
        _iovecs = (iovec*)Unsafe.AsPointer(ref MemoryMarshal.GetArrayDataReference(_iovecArray));
        for (int i = 0; i < slots; i++)
        {
            _messages[i].msg_hdr.msg_iov = &_iovecs[i];
            _messages[i].msg_hdr.msg_iovlen = 1;
        }
    }

    public int MaxFrameBytes => _frames.MaxFrameBytes;

    public long Sent { get; private set; }

    public long SendFailed { get; private set; }

    /// <summary>Copies <paramref name="frame"/> to the tail of the queue; sends the queue first when it is full.</summary>
    public void Add(ReadOnlySpan<byte> frame)
    {
        if (_frames.IsFull || !_frames.TryReserve(frame.Length, out Span<byte> destination))
        {
            Flush();
            if (!_frames.TryReserve(frame.Length, out destination))
            {
                throw new ArgumentOutOfRangeException(nameof(frame), $"A frame is at most {_frames.MaxFrameBytes} bytes here.");
            }
        }
        frame.CopyTo(destination);
        _frames.Commit(frame.Length, FrameFlags.None);
    }

    public void Flush()
    {
        int count = _frames.Count;
        if (count == 0)
        {
            return;
        }
        // The batch's buffer is pinned (FrameBatch allocates it on the POH): the pointers stay valid.
        for (int i = 0; i < count; i++)
        {
            Span<byte> frame = _frames[i];
            _iovecs[i].iov_base = Unsafe.AsPointer(ref MemoryMarshal.GetReference(frame));
            _iovecs[i].iov_len = (nuint)frame.Length;
        }
        int next = 0;
        int failures = 0; // of the frame at `next`
        while (next < count)
        {
            // A bound packet socket needs no msg_name: frames leave on the bound interface, as with send(2).
            int sent = sendmmsg(_fd, _messages + next, (uint)(count - next), 0);
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
            if ((errno == EAGAIN || errno == ENOBUFS) && ++failures < Attempts)
            {
                WaitWritable();
                continue;
            }
            // Still no room after the waits, or refused outright (EMSGSIZE, ENETDOWN): drop this frame only.
            SendFailed++;
            next++;
            failures = 0;
        }
        _frames.Clear();
    }

    private void WaitWritable()
    {
        var pfd = new Interop.Libc.pollfd { fd = _fd, events = Interop.Libc.POLLOUT };
        _ = Interop.Libc.poll(&pfd, 1, WaitMs); // EINTR or a timeout: the next sendmmsg tells
    }
}
