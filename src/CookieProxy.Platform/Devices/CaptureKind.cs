namespace CookieProxy.Platform;

/// <summary>Which capture backend <see cref="PacketDeviceFactory"/> opens.</summary>
public enum CaptureKind
{
    /// <summary>AF_PACKET on Linux when it opens successfully, else libpcap.</summary>
    Auto,
    /// <summary>libpcap: portable (Linux, macOS, FreeBSD).</summary>
    Pcap,
    /// <summary>Linux AF_PACKET TPACKET_V3 ring: the fast path, and the only one supporting fanout.</summary>
    AfPacket,
    /// <summary>Linux AF_XDP socket fed by our XDP program (copy mode, generic XDP): explicit only, never chosen by Auto.</summary>
    AfXdp,
}
