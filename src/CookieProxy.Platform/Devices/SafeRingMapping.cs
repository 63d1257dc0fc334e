using System.Runtime.InteropServices;
using System.Runtime.Versioning;

namespace CookieProxy.Platform;

/// <summary>Owns an mmap'd packet ring; munmap on release (also from the finalizer if Dispose was missed).</summary>
[SupportedOSPlatform("linux")]
internal sealed class SafeRingMapping : SafeHandle
{
    public SafeRingMapping(IntPtr address, nuint length)
        : base(invalidHandleValue: IntPtr.Zero, ownsHandle: true)
    {
        Length = length;
        SetHandle(address);
    }

    public nuint Length { get; }

    public override bool IsInvalid => handle == IntPtr.Zero || handle == Interop.PacketSocket.MAP_FAILED;

    protected override bool ReleaseHandle() => Interop.PacketSocket.munmap(handle, Length) == 0;
}
