namespace CookieProxy.Platform;

/// <summary>
/// A capture device could not be opened or configured, or the capture loop itself broke (interface gone).
/// The message always names the interface and carries the native text (pcap_geterr, strerror).
/// Never thrown for a single bad packet.
/// </summary>
public sealed class PacketDeviceException : Exception
{
    public PacketDeviceException(string interfaceName, string message, int nativeError = 0, Exception? innerException = null)
        : base(message, innerException)
    {
        InterfaceName = interfaceName;
        NativeError = nativeError;
    }

    /// <summary>The interface the device was opened on ("" for filter compilation errors).</summary>
    public string InterfaceName { get; }

    /// <summary>errno (AF_PACKET) or the negative PCAP_ERROR_* status (libpcap); 0 when not applicable.</summary>
    public int NativeError { get; }
}
