// Struct and constant names keep their C spelling (STYLE.md lesson 10).
#pragma warning disable CS8981 // lower-case type names

using System.Runtime.InteropServices;

namespace CookieProxy.Platform;

/// <summary>
/// The POSIX calls both backends share: a pipe to wake a blocked receive and poll(2) to wait on it together
/// with the capture descriptor. Only calls with fixed arity and the same ABI on Linux, macOS and FreeBSD
/// (no variadic fcntl: Apple arm64 passes variadic arguments on the stack).
/// </summary>
internal static partial class Interop
{
    internal static unsafe partial class Libc
    {
        static Libc() => Libraries.EnsureResolver();

        internal const short POLLIN = 0x0001;
        internal const short POLLOUT = 0x0004;
        internal const short POLLERR = 0x0008;
        internal const short POLLHUP = 0x0010;
        internal const short POLLNVAL = 0x0020;

        /// <summary>errno values identical on Linux, macOS and the BSDs.</summary>
        internal const int EPERM = 1;
        internal const int EINTR = 4;
        internal const int EACCES = 13;

        /// <summary>struct pollfd.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct pollfd
        {
            public int fd;
            public short events;
            public short revents;
        }

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial int pipe(int* fds);

        /// <summary>nfds_t is unsigned long on Linux and unsigned int on macOS; both travel in one register.</summary>
        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial int poll(pollfd* fds, nuint nfds, int timeout);

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial nint read(int fd, byte* buf, nuint count);

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial nint write(int fd, byte* buf, nuint count);

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial int close(int fd);
    }
}
