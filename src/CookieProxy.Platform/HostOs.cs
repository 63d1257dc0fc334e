using System.Runtime.Versioning;

namespace CookieProxy.Platform;

/// <summary>
/// The operating-system facts start-up chooses its paths from: the capture backend (AF_PACKET on Linux,
/// libpcap elsewhere), the port hider (nftables on Linux, a pf anchor on macOS and the BSDs) and the backend
/// readiness (the capture thread's epoll set on Linux, poll(2) through the device's wait elsewhere).
/// </summary>
/// <remarks>
/// Tests pass <see cref="SimulatedMacOS"/> or <see cref="SimulatedFreeBsd"/> to run that selection as a Mac would,
/// on this Linux machine. A simulated OS can take Linux away but never claim it: <see cref="IsLinux"/> is also
/// <see cref="OperatingSystem.IsLinux"/>, so the platform analyzer's trust in the guard (CA1416) holds whatever
/// instance is passed.
/// </remarks>
public sealed class HostOs
{
    private readonly bool _linux;

    private HostOs(string name, bool linux, bool macOS, bool freeBsd)
    {
        Name = name;
        _linux = linux;
        IsMacOS = macOS;
        IsFreeBsd = freeBsd;
    }

    /// <summary>The OS this process runs on.</summary>
    public static HostOs Current { get; } = new(
        OperatingSystem.IsLinux() ? "Linux" : OperatingSystem.IsMacOS() ? "macOS" : OperatingSystem.IsFreeBSD() ? "FreeBSD" : "unknown",
        OperatingSystem.IsLinux(), OperatingSystem.IsMacOS(), OperatingSystem.IsFreeBSD());

    /// <summary>macOS, as start-up sees it; for tests on any OS.</summary>
    public static HostOs SimulatedMacOS { get; } = new("macOS (simulated)", linux: false, macOS: true, freeBsd: false);

    /// <summary>FreeBSD, as start-up sees it; for tests on any OS.</summary>
    public static HostOs SimulatedFreeBsd { get; } = new("FreeBSD (simulated)", linux: false, macOS: false, freeBsd: true);

    public string Name { get; }

    /// <summary>Linux: AF_PACKET, AF_XDP, XDP, epoll and nftables may be used.</summary>
    [SupportedOSPlatformGuard("linux")]
    public bool IsLinux => _linux && OperatingSystem.IsLinux();

    public bool IsMacOS { get; }

    public bool IsFreeBsd { get; }

    /// <summary>The port hider is pf (an anchor) rather than nftables/iptables.</summary>
    public bool UsesPf => !IsLinux;

    public override string ToString() => Name;
}
