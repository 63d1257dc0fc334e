using System.Runtime.InteropServices;

namespace CookieProxy.Platform;

/// <summary>
/// A self-pipe: <see cref="Wake"/> writes one byte, the capture thread polls the read end together with its
/// capture descriptor. POSIX pipe()+poll()+read()/write() only, so it works on Linux, macOS and the BSDs.
/// A pending flag keeps the pipe from filling (so Wake never blocks) and saves the syscall on repeated wakes.
/// </summary>
internal sealed unsafe class WakePipe : IDisposable
{
    private readonly SafeFdHandle _read;
    private readonly SafeFdHandle _write;
    private int _pending;

    public WakePipe(string interfaceName)
    {
        int* fds = stackalloc int[2];
        if (Interop.Libc.pipe(fds) != 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw new PacketDeviceException(interfaceName,
                $"pipe() for the wake-up channel of '{interfaceName}' failed: {Marshal.GetPInvokeErrorMessage(errno)}", errno);
        }
        _read = new SafeFdHandle(fds[0]);
        _write = new SafeFdHandle(fds[1]);
    }

    /// <summary>What <see cref="Poll"/> saw.</summary>
    [Flags]
    public enum Ready
    {
        None = 0,
        Device = 1,
        Woken = 2,
        DeviceError = 4,
    }

    /// <summary>Thread-safe, idempotent, never blocks.</summary>
    public void Wake()
    {
        if (Interlocked.Exchange(ref _pending, 1) != 0)
        {
            return;
        }
        bool added = false;
        try
        {
            _write.DangerousAddRef(ref added);
            byte one = 1;
            _ = Interop.Libc.write(_write.Fd, &one, 1);
        }
        catch (ObjectDisposedException)
        {
            // Woken after Dispose: nobody is waiting any more.
        }
        finally
        {
            if (added)
            {
                _write.DangerousRelease();
            }
        }
    }

    /// <summary>An extra descriptor whose readability also ends the wait (reported as <see cref="Ready.Woken"/>); -1 = none.</summary>
    public int AuxiliaryFd { get; set; } = -1;

    /// <summary>
    /// Waits until <paramref name="fd"/> (or <paramref name="fd2"/>, a second capture descriptor; -1 = none) is
    /// readable, <see cref="Wake"/> is called, or the timeout passes (-1 = forever). EINTR counts as a spurious
    /// wake-up. Consumes a pending wake.
    /// </summary>
    public Ready Poll(int fd, int timeoutMs) => Poll(fd, -1, timeoutMs);

    /// <inheritdoc cref="Poll(int, int)"/>
    public Ready Poll(int fd, int fd2, int timeoutMs)
    {
        Interop.Libc.pollfd* fds = stackalloc Interop.Libc.pollfd[4];
        fds[0] = new Interop.Libc.pollfd { fd = fd, events = Interop.Libc.POLLIN };
        fds[1] = new Interop.Libc.pollfd { fd = _read.Fd, events = Interop.Libc.POLLIN };
        // poll(2) skips a negative fd: with no auxiliary or second descriptor those entries are inert.
        fds[2] = new Interop.Libc.pollfd { fd = AuxiliaryFd, events = Interop.Libc.POLLIN };
        fds[3] = new Interop.Libc.pollfd { fd = fd2, events = Interop.Libc.POLLIN };
        int rc = Interop.Libc.poll(fds, 4, timeoutMs);
        if (rc < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            if (errno == Interop.Libc.EINTR)
            {
                return Ready.None;
            }
            ThrowPollFailed(errno);
        }
        if (rc == 0)
        {
            return Ready.None;
        }
        Ready ready = Ready.None;
        if (((fds[0].revents | fds[3].revents) & Interop.Libc.POLLIN) != 0)
        {
            ready |= Ready.Device;
        }
        if (((fds[0].revents | fds[3].revents) & (Interop.Libc.POLLERR | Interop.Libc.POLLHUP | Interop.Libc.POLLNVAL)) != 0)
        {
            ready |= Ready.DeviceError;
        }
        if (fds[1].revents != 0)
        {
            Drain();
            ready |= Ready.Woken;
        }
        if (fds[2].revents != 0)
        {
            ready |= Ready.Woken;
        }
        return ready;
    }

    private void Drain()
    {
        // Read first, then clear the flag: a Wake racing with us either finds the flag still set (and the
        // current Receive is returning anyway) or writes a fresh byte after the clear. No wake is lost.
        byte* buffer = stackalloc byte[64];
        _ = Interop.Libc.read(_read.Fd, buffer, 64);
        Volatile.Write(ref _pending, 0);
    }

    private static void ThrowPollFailed(int errno) =>
        throw new InvalidOperationException($"poll() failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})");

    public void Dispose()
    {
        _write.Dispose();
        _read.Dispose();
    }
}
