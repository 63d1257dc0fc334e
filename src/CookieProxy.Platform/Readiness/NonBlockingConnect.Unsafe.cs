using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using static CookieProxy.Platform.Interop.Socket;

namespace CookieProxy.Platform;

/// <summary>
/// A TCP connect started on the calling thread without blocking it (connect(2) on an O_NONBLOCK socket), for the
/// capture thread's backend connections: the thread arms the socket for writability on its own epoll set
/// (<see cref="SocketReadiness.ArmWritable"/>) and reads the outcome with <see cref="TakeError"/> when it turns
/// writable (connect(2), "EINPROGRESS"). No thread-pool hop, and the socket is never registered with .NET's own
/// epoll engine, whose thread would otherwise wake on every later send-space and data edge of the socket.
/// </summary>
[SupportedOSPlatform("linux")]
public static unsafe class NonBlockingConnect
{
    /// <summary>connect(2) returned EINPROGRESS: the handshake goes on; wait for the socket to turn writable.</summary>
    public const int InProgress = EINPROGRESS;

    /// <summary>
    /// Starts connecting <paramref name="socket"/> (already non-blocking) to <paramref name="remote"/>: 0 when
    /// connected at once, <see cref="InProgress"/>, or the errno of a failure (ECONNREFUSED, ENETUNREACH, ...).
    /// </summary>
    public static int Start(SafeHandle socket, IPEndPoint remote)
    {
        ArgumentNullException.ThrowIfNull(socket);
        ArgumentNullException.ThrowIfNull(remote);
        bool added = false;
        try
        {
            socket.DangerousAddRef(ref added);
            int fd = (int)socket.DangerousGetHandle();
            int rc;
            if (remote.AddressFamily == AddressFamily.InterNetwork)
            {
                var address = new sockaddr_in { sin_family = AF_INET, sin_port = BinaryPrimitives.ReverseEndianness((ushort)remote.Port) };
                if (!remote.Address.TryWriteBytes(new Span<byte>(&address.sin_addr, 4), out _))
                {
                    return (int)SocketError.AddressFamilyNotSupported;
                }
                rc = connect(fd, &address, (uint)sizeof(sockaddr_in));
            }
            else if (remote.AddressFamily == AddressFamily.InterNetworkV6)
            {
                var address = new sockaddr_in6
                {
                    sin6_family = AF_INET6,
                    sin6_port = BinaryPrimitives.ReverseEndianness((ushort)remote.Port),
                    sin6_scope_id = (uint)remote.Address.ScopeId,
                };
                if (!remote.Address.TryWriteBytes(new Span<byte>(address.sin6_addr, 16), out _))
                {
                    return (int)SocketError.AddressFamilyNotSupported;
                }
                rc = connect(fd, &address, (uint)sizeof(sockaddr_in6));
            }
            else
            {
                return (int)SocketError.AddressFamilyNotSupported;
            }
            return rc == 0 ? 0 : Marshal.GetLastPInvokeError();
        }
        catch (ObjectDisposedException)
        {
            return (int)SocketError.OperationAborted;
        }
        finally
        {
            if (added)
            {
                socket.DangerousRelease();
            }
        }
    }

    /// <summary>
    /// True when the connect started by <see cref="Start"/> has ended (succeeded or failed: read
    /// <see cref="TakeError"/>), by a poll(2) with no timeout. On loopback it always has: connect(2) returns
    /// EINPROGRESS only after the kernel ran the listener's SYN+ACK and our ACK in the softirq of the connect
    /// itself (release_sock processes the socket's backlog before the call returns), so the owner can go on at
    /// once instead of arming the socket and waiting one more turn of its loop for the report.
    /// </summary>
    public static bool HasEnded(SafeHandle socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        bool added = false;
        try
        {
            socket.DangerousAddRef(ref added);
            var fd = new Interop.Libc.pollfd { fd = (int)socket.DangerousGetHandle(), events = Interop.Libc.POLLOUT };
            int rc = Interop.Libc.poll(&fd, 1, 0);
            return rc > 0 && (fd.revents & (Interop.Libc.POLLOUT | Interop.Libc.POLLERR | Interop.Libc.POLLHUP)) != 0;
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

    /// <summary>SO_ERROR, which also clears it: 0 once the connect succeeded, else its errno.</summary>
    public static int TakeError(SafeHandle socket)
    {
        ArgumentNullException.ThrowIfNull(socket);
        bool added = false;
        try
        {
            socket.DangerousAddRef(ref added);
            int error = 0;
            uint length = sizeof(int);
            if (getsockopt((int)socket.DangerousGetHandle(), SOL_SOCKET, SO_ERROR, &error, &length) != 0)
            {
                return Marshal.GetLastPInvokeError();
            }
            return error;
        }
        catch (ObjectDisposedException)
        {
            return (int)SocketError.OperationAborted;
        }
        finally
        {
            if (added)
            {
                socket.DangerousRelease();
            }
        }
    }

    /// <summary>The .NET name of a connect errno (Linux values).</summary>
    public static SocketError ToSocketError(int errno) => errno switch
    {
        0 => SocketError.Success,
        111 => SocketError.ConnectionRefused,
        110 => SocketError.TimedOut,
        101 => SocketError.NetworkUnreachable,
        113 => SocketError.HostUnreachable,
        99 => SocketError.AddressNotAvailable,
        98 => SocketError.AddressAlreadyInUse,
        1 or 13 => SocketError.AccessDenied,
        (int)SocketError.OperationAborted => SocketError.OperationAborted,
        (int)SocketError.AddressFamilyNotSupported => SocketError.AddressFamilyNotSupported,
        _ => SocketError.SocketError,
    };
}
