using System.Net;
using CookieProxy.Limits;
using CookieProxy.Platform;
using CookieProxy.ProxyProtocol;
using CookieProxy.Tcp;

namespace CookieProxy.Host.Cli;

/// <summary>One protected endpoint and where its validated connections go.</summary>
public sealed record ListenerOptions(IPEndPoint Listen, IPEndPoint Backend, ProxyProtocolVersion ProxyProtocol);

/// <summary>
/// Everything `cookieproxy run` was told, validated (<see cref="RunOptions.Validate"/>). Immutable: a reload
/// builds a new one and the services compare it with theirs. Each property is set by exactly one declaration in
/// <see cref="RunOptions"/> (command-line option and config key alike); the defaults are here.
/// </summary>
public sealed record ProxyOptions
{
    /// <summary>The defaults, before the config file and the command line.</summary>
    public static readonly ProxyOptions Defaults = new();

    public string Interface { get; init; } = "";
    public IReadOnlyList<ListenerOptions> Listeners { get; init; } = [];

    /// <summary>The config file the options were read from (null: command line only). Reload re-reads it.</summary>
    public string? ConfigFile { get; init; }
    public string? KeyFile { get; init; }
    public bool HidePort { get; init; }
    public CaptureKind Capture { get; init; } = CaptureKind.Auto;
    /// <summary>Capture threads (PACKET_FANOUT); 0 = one per available core (capped), or one with libpcap.</summary>
    public int Threads { get; init; }
    /// <summary>How the threads share the traffic; null = by source prefix when a per-source limit is on, else by flow.</summary>
    public FanoutMode? Fanout { get; init; }
    /// <summary>The periodic counters line (stdout); 0 = off (the default: it is not the log).</summary>
    public double StatsIntervalSeconds { get; init; }
    public string? StatsFile { get; init; }
    /// <summary>MSS announced in our SYN+ACK (clamped to what the backend side can carry).</summary>
    public ushort Mss { get; init; } = 1460;
    public int SlotSeconds { get; init; } = global::CookieProxy.Cookies.SynCookieCodec.DefaultSlotSeconds;
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
    public int RingMegabytes { get; init; } = PacketDeviceOptions.DefaultRingMegabytes;

    /// <summary>AF_PACKET receive rings: SYNs apart from the rest (default) or one ring (<see cref="ReceiveRings"/>).</summary>
    public ReceiveRings RxRings { get; init; } = ReceiveRings.Separate;

    /// <summary>libpcap on Linux: each batch of replies in one sendmmsg, or one pcap_inject per frame.</summary>
    public PcapSendMode PcapSend { get; init; } = PcapSendMode.Batch;
    public int FlowBufferBytes { get; init; } = 256 * 1024;
    /// <summary>The client-facing TCP's congestion controller (loss recovery is RACK-TLP + PRR with either).</summary>
    public TcpCongestionControl Congestion { get; init; } = TcpCongestionControl.Cubic;
    public int ConnectTimeoutMs { get; init; } = 3000;
    public long IdleTimeoutMs { get; init; } = 300_000;
    /// <summary>Reset a validated connection whose client sends no byte within this time (0 = off).
    /// Bounds what a non-spoofing attacker holds with idle handshakes.</summary>
    public long FirstDataTimeoutMs { get; init; }
    /// <summary>Exit after this many seconds (0 = run until SIGINT/SIGTERM). For tests and demos.</summary>
    public double DurationSeconds { get; init; }
    /// <summary>On SIGINT/SIGTERM: how long established flows may take to finish before the rest are reset.</summary>
    public double DrainTimeoutSeconds { get; init; } = 10;
    public bool Verbose { get; init; }

    /// <summary>Where the instance locks live (and, by default, the control socket): /run/cookieproxy.</summary>
    public string RunDirectory { get; init; } = "/run/cookieproxy";

    // ---- observability (helper ops: Control/*, Diagnostics/Metrics*, Diagnostics/PcapSampler*)

    /// <summary>The control socket (`cookieproxy stats`, `top`, `reload`); null = control.sock in
    /// <see cref="RunDirectory"/>; <see cref="ControlSocketOff"/> = none.</summary>
    public string? ControlSocket { get; init; }

    public const string ControlSocketOff = "off";

    /// <summary>Where /metrics (Prometheus text) is served; null = nowhere (the default).</summary>
    public IPEndPoint? MetricsListen { get; init; }

    /// <summary>The sampled pcap of dropped frames (pcapng); null = off.</summary>
    public string? SamplePcap { get; init; }

    /// <summary>Keep 1 in this many dropped frames (plus the first of every drop reason).</summary>
    public int SampleEvery { get; init; } = 1000;

    /// <summary>The most the sampled pcap files hold together, MiB.</summary>
    public int SampleMaxMegabytes { get; init; } = 64;

    /// <summary>The control socket's path, or null when it is off.</summary>
    public string? ControlSocketPath => ControlSocket switch
    {
        ControlSocketOff => null,
        null => System.IO.Path.Combine(RunDirectory, Cli.ControlSocket.FileName),
        string path => path,
    };

    /// <summary>Per-source limits (pf max-src-conn / max-src-conn-rate, nmsynproxy ratehash); 0 = off.</summary>
    public int MaxConnectionsPerSource { get; init; }
    public double ConnectionRatePerSource { get; init; }
    public int SynRatePerSource { get; init; }
    public int SourcePrefixV4 { get; init; } = 32;
    public int SourcePrefixV6 { get; init; } = 64;

    /// <summary>Sources exempt from the per-source limits.</summary>
    public SourcePrefixSet AllowSource { get; init; } = SourcePrefixSet.Empty;

    /// <summary>Sources whose SYNs and cookie ACKs are dropped (SourceDenied).</summary>
    public SourcePrefixSet DenySource { get; init; } = SourcePrefixSet.Empty;

    /// <summary>Syncache entries per capture thread (hybrid mode: SYN+ACK retransmission while the SYN rate is low);
    /// 0 = pure cookies always.</summary>
    public int SynCacheEntries { get; init; } = Responder.SynCacheConfig.DefaultCapacity;
}
