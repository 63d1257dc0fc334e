using Microsoft.Win32.SafeHandles;

namespace CookieProxy.Platform;

/// <summary>Owns a pcap_t; pcap_close on release.</summary>
internal sealed class SafePcapHandle : SafeHandleZeroOrMinusOneIsInvalid
{
    public SafePcapHandle()
        : base(ownsHandle: true)
    {
    }

    protected override bool ReleaseHandle()
    {
        Interop.Pcap.pcap_close(handle);
        return true;
    }
}
