using System.Net;
using CookieProxy.Platform;
using CookieProxy.ProxyProtocol;

namespace CookieProxy.Host.Cli;

/// <summary>One protected endpoint and where its validated connections go.</summary>
public sealed record ListenerOptions(IPEndPoint Listen, IPEndPoint Backend, ProxyProtocolVersion ProxyProtocol);

/// <summary>Everything `cookieproxy run` was told, validated.</summary>
public sealed class ProxyOptions
{
    public required string Interface { get; init; }
    public required IReadOnlyList<ListenerOptions> Listeners { get; init; }
    public string? KeyFile { get; init; }
    public bool HidePort { get; init; }
    public CaptureKind Capture { get; init; } = CaptureKind.Auto;
    /// <summary>Capture threads (PACKET_FANOUT); 0 = one per available core (capped), or one with libpcap.</summary>
    public int Threads { get; init; }
    /// <summary>How the threads share the traffic; null = by source prefix when a per-source limit is on, else by flow.</summary>
    public FanoutMode? Fanout { get; init; }
    public double StatsIntervalSeconds { get; init; } = 2;
    public string? StatsFile { get; init; }
    /// <summary>MSS announced in our SYN+ACK (clamped to what the backend side can carry).</summary>
    public ushort Mss { get; init; } = 1460;
    public int SlotSeconds { get; init; } = Cookies.SynCookieCodec.DefaultSlotSeconds;
    /// <summary>Answer ACKs that carry no valid cookie (and match no flow) with RST. Off by default: under a
    /// spoofed ACK flood it would make us a reflector.</summary>
    public bool RstInvalid { get; init; }

    /// <summary>Flow data as TCP super-frames cut by the kernel/NIC (AF_PACKET + PACKET_VNET_HDR); off: one frame per segment.</summary>
    public bool TxOffload { get; init; } = true;

    /// <summary>Where SYNs are answered: an XDP program on the interface (native or generic; auto picks) or
    /// user space (off). See <c>XdpSynPath</c>.</summary>
    public CookieProxy.Host.Capture.XdpSynMode XdpSyn { get; init; } = CookieProxy.Host.Capture.XdpSynMode.Auto;
    public int MaxFlows { get; init; } = 100_000;
    public long MaxBufferedBytes { get; init; } = 1L << 30;

    /// <summary>AF_PACKET receive ring per capture thread, in MiB (128 KiB blocks).</summary>
    public int RingMegabytes { get; init; } = CookieProxy.Platform.PacketDeviceOptions.DefaultRingMegabytes;
    public int FlowBufferBytes { get; init; } = 256 * 1024;
    public int ConnectTimeoutMs { get; init; } = 3000;
    public long IdleTimeoutMs { get; init; } = 300_000;
    /// <summary>Reset a validated connection whose client sends no byte within this time (0 = off).
    /// Bounds what a non-spoofing attacker holds with idle handshakes.</summary>
    public long FirstDataTimeoutMs { get; init; }
    /// <summary>Exit after this many seconds (0 = run until SIGINT/SIGTERM). For tests and demos.</summary>
    public double DurationSeconds { get; init; }
    public bool Verbose { get; init; }

    /// <summary>Per-source limits (pf max-src-conn / max-src-conn-rate, nmsynproxy ratehash); 0 = off.</summary>
    public int MaxConnectionsPerSource { get; init; }
    public double ConnectionRatePerSource { get; init; }
    public int SynRatePerSource { get; init; }
    public int SourcePrefixV4 { get; init; } = 32;
    public int SourcePrefixV6 { get; init; } = 64;
}
