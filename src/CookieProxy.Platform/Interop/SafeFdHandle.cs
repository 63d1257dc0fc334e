using System.Runtime.InteropServices;

namespace CookieProxy.Platform;

/// <summary>Owns a POSIX file descriptor (socket or pipe end); close(2) on release. 0 is a valid fd, -1 is not.</summary>
internal sealed class SafeFdHandle : SafeHandle
{
    public SafeFdHandle()
        : base(invalidHandleValue: -1, ownsHandle: true)
    {
    }

    public SafeFdHandle(int fd)
        : base(invalidHandleValue: -1, ownsHandle: true)
    {
        SetHandle(fd);
    }

    public override bool IsInvalid => handle < 0;

    /// <summary>The raw descriptor, for poll/read/write on hot paths (the owner keeps this handle alive).</summary>
    public int Fd => (int)handle;

    protected override bool ReleaseHandle() => Interop.Libc.close((int)handle) == 0;
}
