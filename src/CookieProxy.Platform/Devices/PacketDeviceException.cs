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

    /// <summary>
    /// A failed system call of a socket backend: "<paramref name="backend"/>: OPERATION on 'IF' failed: strerror
    /// (errno N)", plus the backend's own hint for that errno, or the hints every socket backend shares.
    /// </summary>
    internal static PacketDeviceException FromErrno(string backend, string interfaceName, string operation, int errno, string? hint)
    {
        hint ??= errno switch
        {
            Interop.Libc.EPERM or Interop.Libc.EACCES => $" ({backend.ToUpperInvariant()} needs root or CAP_NET_RAW)",
            Interop.PacketSocket.ENODEV or Interop.PacketSocket.ENXIO => " (the interface disappeared or is not up)",
            _ => "",
        };
        string reason = System.Runtime.InteropServices.Marshal.GetPInvokeErrorMessage(errno);
        return new PacketDeviceException(interfaceName, $"{backend}: {operation} on '{interfaceName}' failed: {reason} (errno {errno}){hint}", errno);
    }

    /// <summary>Best effort /sys/class/net counter; 0 when absent (e.g. the device lives in another network namespace).</summary>
    internal static long ReadInterfaceCounter(string interfaceName, string counter)
    {
        try
        {
            string text = File.ReadAllText($"/sys/class/net/{interfaceName}/statistics/{counter}");
            return long.TryParse(text.AsSpan().Trim(), System.Globalization.NumberStyles.None,
                System.Globalization.CultureInfo.InvariantCulture, out long value) ? value : 0;
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            return 0;
        }
    }
}
