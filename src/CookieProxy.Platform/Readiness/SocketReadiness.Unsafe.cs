using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using static CookieProxy.Platform.Interop.Epoll;

namespace CookieProxy.Platform;

/// <summary>
/// The capture thread's own readiness set for its backend sockets (Linux epoll): a socket that ran dry is
/// armed once (EPOLLONESHOT) and its readability wakes the capture thread directly, through the packet
/// device's wait (<see cref="CookieProxy.Io.IPacketDevice.TrySetAuxiliaryWaitFd"/>), the way an event loop
/// (haproxy, nginx) waits on its connections: no thread-pool hop per wake-up. Owner thread only.
/// </summary>
[SupportedOSPlatform("linux")]
public sealed unsafe class SocketReadiness : IDisposable
{
    private const int MaxEvents = 64;
    private static readonly bool s_packed = RuntimeInformation.ProcessArchitecture == Architecture.X64;

    private readonly SafeFdHandle _epoll;
    private readonly byte[] _events = GC.AllocateArray<byte>(MaxEvents * 16, pinned: true);

    public SocketReadiness()
    {
        int fd = epoll_create1(EPOLL_CLOEXEC);
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new InvalidOperationException($"epoll_create1 failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})");
        }
        _epoll = new SafeFdHandle(fd);
    }

    /// <summary>The epoll descriptor: readable while a ready event waits to be collected.</summary>
    public int Fd => _epoll.Fd;

    /// <summary>
    /// Reports <paramref name="socket"/> once, through <see cref="Collect"/>, when it has data, EOF or an error
    /// (EPOLLIN | EPOLLRDHUP, one-shot: re-arm after each report). False if the socket is already closed.
    /// </summary>
    public bool ArmReadable(SafeHandle socket, ulong token) => Arm(socket, token, EPOLLIN | EPOLLRDHUP | EPOLLONESHOT);

    /// <summary>
    /// Reports <paramref name="socket"/> once when it turns writable or fails (EPOLLOUT, one-shot): a non-blocking
    /// connect finished (<see cref="NonBlockingConnect"/>). Same token space as <see cref="ArmReadable"/>.
    /// </summary>
    public bool ArmWritable(SafeHandle socket, ulong token) => Arm(socket, token, EPOLLOUT | EPOLLONESHOT);

    /// <summary>
    /// Watches <paramref name="socket"/> for the rest of its life, edge-triggered (EPOLLIN | EPOLLRDHUP | EPOLLET):
    /// every arrival of data, EOF or an error reports it once through <see cref="Collect(Span{ulong}, Span{uint})"/>,
    /// with no re-arm (no epoll_ctl per response, as nginx registers its connections once). The reader must drain
    /// what is there before it relies on the next report: a short read empties the socket's data, and the
    /// report's <see cref="IsHangUp"/> says whether EOF or an error is also waiting behind it. Replaces a one-shot
    /// watch on the same socket (a connect's <see cref="ArmWritable"/>). Closing the socket ends the watch.
    /// </summary>
    public bool WatchReadable(SafeHandle socket, ulong token) => Arm(socket, token, EPOLLIN | EPOLLRDHUP | EPOLLET, addFirst: true);

    /// <summary>A reported event mask says EOF or an error waits (EPOLLRDHUP, EPOLLHUP, EPOLLERR): read until 0 or an error.</summary>
    public static bool IsHangUp(uint events) => (events & (EPOLLRDHUP | EPOLLHUP | EPOLLERR)) != 0;

    /// <param name="addFirst">EPOLL_CTL_ADD first (a socket not yet on the set, the usual case), else MOD first.</param>
    private bool Arm(SafeHandle socket, ulong token, uint events, bool addFirst = false)
    {
        bool added = false;
        try
        {
            socket.DangerousAddRef(ref added);
            int fd = (int)socket.DangerousGetHandle();
            int first = addFirst ? EPOLL_CTL_ADD : EPOLL_CTL_MOD;
            if (Control(first, fd, token, events) == 0)
            {
                return true;
            }
            int errno = Marshal.GetLastPInvokeError();
            int second = addFirst ? EPOLL_CTL_MOD : EPOLL_CTL_ADD;
            if (errno == (addFirst ? EEXIST : ENOENT) && Control(second, fd, token, events) == 0)
            {
                return true;
            }
            return false;
        }
        catch (ObjectDisposedException)
        {
            return false;
        }
        finally
        {
            if (added)
            {
                socket.DangerousRelease();
            }
        }
    }

    private int Control(int op, int fd, ulong token, uint events)
    {
        if (s_packed)
        {
            var ev = new epoll_event_packed { events = events, data = token };
            return epoll_ctl(_epoll.Fd, op, fd, &ev);
        }
        var aligned = new epoll_event_aligned { events = events, data = token };
        return epoll_ctl(_epoll.Fd, op, fd, &aligned);
    }

    /// <summary>Tokens of the armed sockets that became ready since the last call (never blocks).</summary>
    public int Collect(Span<ulong> tokens) => Collect(tokens, default);

    /// <summary>
    /// Tokens of the sockets that became ready since the last call, and (when <paramref name="masks"/> is not
    /// empty; at least as long as <paramref name="tokens"/>) each one's event mask as epoll_wait saw it.
    /// Never blocks.
    /// </summary>
    public int Collect(Span<ulong> tokens, Span<uint> masks)
    {
        int max = Math.Min(tokens.Length, MaxEvents);
        bool withMasks = !masks.IsEmpty;
        if (withMasks)
        {
            max = Math.Min(max, masks.Length);
        }
        fixed (byte* events = _events)
        {
            int n = epoll_wait(_epoll.Fd, events, max, 0);
            for (int i = 0; i < n; i++)
            {
                if (s_packed)
                {
                    epoll_event_packed* e = (epoll_event_packed*)events + i;
                    tokens[i] = e->data;
                    if (withMasks)
                    {
                        masks[i] = e->events;
                    }
                }
                else
                {
                    epoll_event_aligned* e = (epoll_event_aligned*)events + i;
                    tokens[i] = e->data;
                    if (withMasks)
                    {
                        masks[i] = e->events;
                    }
                }
            }
            return Math.Max(n, 0);
        }
    }

    public void Dispose() => _epoll.Dispose();
}
