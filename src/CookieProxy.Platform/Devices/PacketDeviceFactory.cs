using System.Net;
using CookieProxy.Io;

namespace CookieProxy.Platform;

/// <summary>Opens the capture backend the configuration asks for.</summary>
public static class PacketDeviceFactory
{
    /// <summary>
    /// Opens <paramref name="interfaceName"/> with <paramref name="filter"/> (pcap syntax, see <see cref="BpfFilter"/>).
    /// <see cref="CaptureKind.Auto"/> takes AF_PACKET on Linux when it opens, else libpcap.
    /// </summary>
    /// <param name="fanoutGroup">-1 for one capture thread; 0..65535 to join a PACKET_FANOUT group so several
    /// devices on several threads share the frames, by flow hash or by source prefix (<see cref="PacketDeviceOptions.Fanout"/>).
    /// AF_PACKET only: libpcap would hand every thread every frame, so Auto does not fall back to it when a
    /// group is requested.</param>
    /// <param name="protectedEndpoints">The endpoints <paramref name="filter"/> was built from. AF_XDP needs them
    /// (its XDP program matches them itself); AF_PACKET builds its SYN-ring and flow-ring filters from them
    /// (without them it uses the filter text, one ring); libpcap uses the filter text.</param>
    /// <param name="os">The OS to choose for (<see cref="HostOs.Current"/>; tests simulate macOS).</param>
    /// <exception cref="PacketDeviceException">Nothing could be opened; the message says why.</exception>
    public static IPacketDevice Open(string interfaceName, string filter, CaptureKind kind = CaptureKind.Auto,
        int fanoutGroup = -1, PacketDeviceOptions? options = null, IReadOnlyList<IPEndPoint>? protectedEndpoints = null,
        HostOs? os = null)
    {
        ArgumentNullException.ThrowIfNull(interfaceName);
        os ??= HostOs.Current;
        switch (kind)
        {
            case CaptureKind.Pcap:
                if (fanoutGroup >= 0)
                {
                    throw new PacketDeviceException(interfaceName, os.IsLinux
                        ? "libpcap capture cannot share frames between threads (no fanout); use --capture afpacket or one thread"
                        : $"libpcap capture cannot share frames between threads (no fanout), and it is the only capture on {os.Name}; use --threads 1");
                }
                return new PcapDevice(interfaceName, filter, options);

            case CaptureKind.AfPacket:
                if (!os.IsLinux)
                {
                    throw new PacketDeviceException(interfaceName, "AF_PACKET capture is only available on Linux; use libpcap");
                }
                return OpenAfPacket(interfaceName, filter, fanoutGroup, options, protectedEndpoints);

            case CaptureKind.AfXdp:
                if (!os.IsLinux)
                {
                    throw new PacketDeviceException(interfaceName, "AF_XDP capture is only available on Linux; use libpcap");
                }
                if (fanoutGroup >= 0)
                {
                    throw new PacketDeviceException(interfaceName,
                        "AF_XDP capture supports one capture thread here (one socket on rx queue 0, no fanout); use --threads 1 or --capture afpacket");
                }
                if (protectedEndpoints is null || protectedEndpoints.Count == 0)
                {
                    throw new ArgumentException("AF_XDP capture needs the protected endpoints (its XDP program matches them).", nameof(protectedEndpoints));
                }
                return new AfXdpDevice(interfaceName, protectedEndpoints);

            case CaptureKind.Auto:
                if (!os.IsLinux)
                {
                    return Open(interfaceName, filter, CaptureKind.Pcap, fanoutGroup, options, os: os);
                }
                try
                {
                    return OpenAfPacket(interfaceName, filter, fanoutGroup, options, protectedEndpoints);
                }
                catch (PacketDeviceException afPacketError) when (fanoutGroup < 0)
                {
                    try
                    {
                        return new PcapDevice(interfaceName, filter, options);
                    }
                    catch (PacketDeviceException pcapError)
                    {
                        throw new PacketDeviceException(interfaceName,
                            $"{pcapError.Message} (af_packet also failed: {afPacketError.Message})", pcapError.NativeError, pcapError);
                    }
                }

            default:
                throw new ArgumentOutOfRangeException(nameof(kind));
        }
    }

    /// <summary>With the endpoints: the rings <see cref="PacketDeviceOptions.Rings"/> says (by default SYNs on their
    /// own ring); with only a filter text: one ring.</summary>
    [System.Runtime.Versioning.SupportedOSPlatform("linux")]
    private static AfPacketDevice OpenAfPacket(string interfaceName, string filter, int fanoutGroup, PacketDeviceOptions? options,
        IReadOnlyList<IPEndPoint>? protectedEndpoints) =>
        protectedEndpoints is { Count: > 0 }
            ? new AfPacketDevice(interfaceName, protectedEndpoints, fanoutGroup, options)
            : new AfPacketDevice(interfaceName, filter, fanoutGroup, options);
}
