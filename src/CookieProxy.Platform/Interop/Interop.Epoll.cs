// Struct and constant names keep their C spelling (STYLE.md lesson 10).
using System.Runtime.InteropServices;
using System.Runtime.Versioning;

namespace CookieProxy.Platform;

internal static partial class Interop
{
    /// <summary>epoll(7), Linux only: the capture thread's readiness set for backend sockets.</summary>
    [SupportedOSPlatform("linux")]
    internal static unsafe partial class Epoll
    {
        internal const int EPOLL_CLOEXEC = 0x80000;
        internal const int EPOLL_CTL_ADD = 1;
        internal const int EPOLL_CTL_DEL = 2;
        internal const int EPOLL_CTL_MOD = 3;
        internal const uint EPOLLIN = 0x001;
        internal const uint EPOLLOUT = 0x004;
        internal const uint EPOLLERR = 0x008;
        internal const uint EPOLLHUP = 0x010;
        internal const uint EPOLLRDHUP = 0x2000;
        internal const uint EPOLLONESHOT = 1u << 30;
        internal const uint EPOLLET = 1u << 31;
        internal const int ENOENT = 2;
        internal const int EEXIST = 17;

        /// <summary>struct epoll_event. x86-64 packs it (12 bytes, __EPOLL_PACKED in &lt;sys/epoll.h&gt;); other
        /// ABIs align the 64-bit data (16 bytes).</summary>
        [StructLayout(LayoutKind.Sequential, Pack = 4)]
        internal struct epoll_event_packed
        {
            public uint events;
            public ulong data;
        }

        [StructLayout(LayoutKind.Sequential)]
        internal struct epoll_event_aligned
        {
            public uint events;
            public ulong data;
        }

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial int epoll_create1(int flags);

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial int epoll_ctl(int epfd, int op, int fd, void* ev);

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial int epoll_wait(int epfd, void* events, int maxevents, int timeout);
    }
}
