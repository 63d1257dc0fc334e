// Struct and constant names keep their C spelling (STYLE.md lesson 10).
#pragma warning disable CS8981 // lower-case type names

using System.Runtime.InteropServices;

namespace CookieProxy.Platform;

/// <summary>
/// connect(2) and SO_ERROR on an ordinary (TCP) socket, for a non-blocking connect that the capture thread's own
/// epoll set completes (<see cref="NonBlockingConnect"/>). Linux values (&lt;sys/socket.h&gt;, &lt;netinet/in.h&gt;).
/// </summary>
internal static partial class Interop
{
    internal static unsafe partial class Socket
    {
        static Socket() => Libraries.EnsureResolver();

        internal const ushort AF_INET = 2;
        internal const ushort AF_INET6 = 10;
        internal const int SOL_SOCKET = 1;
        internal const int SO_ERROR = 4;
        internal const int EINPROGRESS = 115;

        /// <summary>struct sockaddr_in (16 bytes).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct sockaddr_in
        {
            public ushort sin_family;
            public ushort sin_port;       // __be16
            public uint sin_addr;         // __be32, in network order as the bytes lie
            public ulong sin_zero;
        }

        /// <summary>struct sockaddr_in6 (28 bytes).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct sockaddr_in6
        {
            public ushort sin6_family;
            public ushort sin6_port;      // __be16
            public uint sin6_flowinfo;
            public fixed byte sin6_addr[16];
            public uint sin6_scope_id;
        }

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial int connect(int fd, void* addr, uint addrlen);

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial int getsockopt(int fd, int level, int optname, void* optval, uint* optlen);
    }
}
