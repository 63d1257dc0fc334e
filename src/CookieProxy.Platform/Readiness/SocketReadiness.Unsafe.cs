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

    private bool Arm(SafeHandle socket, ulong token, uint events)
    {
        bool added = false;
        try
        {
            socket.DangerousAddRef(ref added);
            int fd = (int)socket.DangerousGetHandle();
            if (Control(EPOLL_CTL_MOD, fd, token, events) == 0)
            {
                return true;
            }
            int errno = Marshal.GetLastPInvokeError();
            if (errno == ENOENT && Control(EPOLL_CTL_ADD, fd, token, events) == 0)
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
    public int Collect(Span<ulong> tokens)
    {
        int max = Math.Min(tokens.Length, MaxEvents);
        fixed (byte* events = _events)
        {
            int n = epoll_wait(_epoll.Fd, events, max, 0);
            for (int i = 0; i < n; i++)
            {
                tokens[i] = s_packed ? ((epoll_event_packed*)events)[i].data : ((epoll_event_aligned*)events)[i].data;
            }
            return Math.Max(n, 0);
        }
    }

    public void Dispose() => _epoll.Dispose();
}
