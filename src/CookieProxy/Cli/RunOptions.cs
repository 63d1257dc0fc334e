using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Net;
using CookieProxy.Cookies;
using CookieProxy.Host.Capture;
using CookieProxy.Limits;
using CookieProxy.Platform;
using CookieProxy.ProxyProtocol;
using CookieProxy.Tcp;

namespace CookieProxy.Host.Cli;

/// <summary>
/// The `run` options, each declared once: command-line name = config key with two dashes, help, parser, the
/// <see cref="ProxyOptions"/> property it sets, and whether a reload may change it. To add an option: add its
/// property (with its default) to <see cref="ProxyOptions"/> and one <c>Add(...)</c> line below; the command
/// line, the config file, <c>check</c>, --help and reload all pick it up.
/// The listeners (<c>--listen</c>/<c>--backend</c>/<c>--proxy-protocol</c>, config <c>listeners:</c>) are the one
/// exception: their order pairs them, so <see cref="ReadListeners"/> handles them.
/// </summary>
public static class RunOptions
{
    private static readonly List<RunOption> s_all = [];

    // Declaration order is --help order.
    public static readonly RunOption<string> Interface = Add(new RunOption<string>("--interface", "IF",
        "external interface to capture on (required)", NonEmpty, o => o.Interface, (o, v) => o with { Interface = v }, reloadable: false));

    public static readonly RunOption<string?> KeyFile = Add(new RunOption<string?>("--key-file", "FILE",
        "cookie key file (32 hex digits, optionally a second line with the previous key); share it so instances accept "
        + "each other's cookies (default: a random key per process)",
        Path, o => o.KeyFile, (o, v) => o with { KeyFile = v }, reloadable: true));

    public static readonly RunOption<bool> HidePort = Add(new RunOption<bool>("--hide-port", null,
        "install an nftables rule so the kernel drops inbound packets to the protected endpoints (removed on exit)",
        Bool, o => o.HidePort, (o, v) => o with { HidePort = v }, reloadable: false));

    public static readonly RunOption<CaptureKind> Capture = Add(new RunOption<CaptureKind>("--capture", "auto|pcap|afpacket|afxdp",
        "capture backend (default auto: AF_PACKET ring on Linux, else libpcap; afxdp: AF_XDP socket fed by our XDP "
        + "program, one thread, Linux 5.9+)",
        ParseCapture, o => o.Capture, (o, v) => o with { Capture = v }, reloadable: false));

    public static readonly RunOption<int> RingMegabytes = Add(new RunOption<int>("--ring-mb", "N",
        "AF_PACKET receive ring per capture thread, MiB (default 32: ~250 ms of slack when sparse, ~250k SYN frames when busy); "
        + "with libpcap its buffer (pcap_set_buffer_size: ~20k frames at 32)",
        Int(1, 4096), o => o.RingMegabytes, (o, v) => o with { RingMegabytes = v }, reloadable: false));

    public static readonly RunOption<ReceiveRings> RxRings = Add(new RunOption<ReceiveRings>("--rx-rings", "separate|separate-v3|single",
        "AF_PACKET receive rings: separate = bare SYNs on their own ring and every other segment on a flow ring read "
        + "first (a SYN flood overflows only the SYN ring), both handed over per frame; separate-v3 = the SYN ring in "
        + "TPACKET_V3 blocks (fewer wake-ups, a SYN may wait up to 1 ms); single = one TPACKET_V3 ring for every frame "
        + "(each may wait up to 1 ms, overflow drops any frame) (default separate)",
        ParseRxRings, o => o.RxRings, (o, v) => o with { RxRings = v }, reloadable: false));

    public static readonly RunOption<PcapSendMode> PcapSend = Add(new RunOption<PcapSendMode>("--pcap-send", "batch|inject",
        "libpcap on Linux: batch (default) = the replies to a receive batch leave with one sendmmsg on libpcap's "
        + "descriptor; inject = one pcap_inject system call per frame, as on macOS/FreeBSD (whose BPF has no batch write)",
        ParsePcapSend, o => o.PcapSend, (o, v) => o with { PcapSend = v }, reloadable: false));

    public static readonly RunOption<XdpSynMode> XdpSyn = Add(new RunOption<XdpSynMode>("--xdp-syn", "auto|native|generic|off",
        "answer SYNs with cookie SYN+ACKs in an XDP program on the interface (XDP_TX), byte for byte what user space "
        + "sends; unusual SYNs, SYNs of live flows and everything else still come up. auto (default on Linux): native "
        + "where the driver's XDP_TX really sends, else generic, else user space; off: user space",
        ParseXdpMode, o => o.XdpSyn, (o, v) => o with { XdpSyn = v }, reloadable: false));

    public static readonly RunOption<bool> NoTxOffload = Add(new RunOption<bool>("--no-tx-offload", null,
        "send flow data as single segments (default: TCP super-frames the kernel or NIC cuts, via PACKET_VNET_HDR, "
        + "where the AF_PACKET backend is used)",
        Bool, o => !o.TxOffload, (o, v) => o with { TxOffload = !v }, reloadable: false));

    public static readonly RunOption<int> Threads = Add(new RunOption<int>("--threads", "N",
        "capture threads sharing the interface through PACKET_FANOUT (AF_PACKET only) (default 0 = one per core, at "
        + "most 8; with libpcap or AF_XDP 1)",
        Int(0, 64), o => o.Threads, (o, v) => o with { Threads = v }, reloadable: false));

    public static readonly RunOption<FanoutMode?> Fanout = Add(new RunOption<FanoutMode?>("--fanout", "auto|source|flow",
        "how the threads share the traffic: by source prefix (all of a source's traffic on one thread, so per-source "
        + "limits hold exactly) or by flow hash (best balance when one source is most of the traffic); default auto = "
        + "source when a per-source limit is on, else flow",
        ParseFanout, o => o.Fanout, (o, v) => o with { Fanout = v }, reloadable: false));

    public static readonly RunOption<int> Mss = Add(new RunOption<int>("--mss", "N",
        "MSS announced to clients (default 1460; 536..9000)",
        Int(536, 9000), o => o.Mss, (o, v) => o with { Mss = (ushort)v }, reloadable: false));

    public static readonly RunOption<int> SlotSeconds = Add(new RunOption<int>("--slot-seconds", "N",
        $"cookie time slot, {SynCookieCodec.MinSlotSeconds}..{SynCookieCodec.MaxSlotSeconds} (a cookie lives 1-2 slots; default {SynCookieCodec.DefaultSlotSeconds})",
        Int(SynCookieCodec.MinSlotSeconds, SynCookieCodec.MaxSlotSeconds), o => o.SlotSeconds, (o, v) => o with { SlotSeconds = v }, reloadable: false));

    public static readonly RunOption<bool> RstInvalid = Add(new RunOption<bool>("--rst-invalid", null,
        "answer invalid cookie ACKs with RST (default: drop silently)",
        Bool, o => o.RstInvalid, (o, v) => o with { RstInvalid = v }, reloadable: false));

    public static readonly RunOption<int> MaxFlows = Add(new RunOption<int>("--max-flows", "N",
        "cap on concurrent flows, split evenly over the threads (default 100000)",
        Int(1, 10_000_000), o => o.MaxFlows, (o, v) => o with { MaxFlows = v }, reloadable: true));

    public static readonly RunOption<int> MaxBufferMegabytes = Add(new RunOption<int>("--max-buffer-mb", "N",
        "cap on bytes buffered across all flows, split likewise (default 1024)",
        Int(1, 1 << 20), o => (int)(o.MaxBufferedBytes >> 20), (o, v) => o with { MaxBufferedBytes = (long)v << 20 }, reloadable: true));

    public static readonly RunOption<int> FlowBufferKilobytes = Add(new RunOption<int>("--flow-buffer-kb", "N",
        "per-flow buffer each way (default 256)",
        Int(16, 64 * 1024), o => o.FlowBufferBytes >> 10, (o, v) => o with { FlowBufferBytes = v << 10 }, reloadable: false));

    public static readonly RunOption<TcpCongestionControl> Congestion = Add(new RunOption<TcpCongestionControl>("--congestion", "cubic|newreno",
        "congestion control of the client-facing TCP: CUBIC (RFC 9438, as Linux) or NewReno (RFC 5681); either way loss "
        + "recovery is RACK-TLP with PRR (default cubic)",
        ParseCongestion, o => o.Congestion, (o, v) => o with { Congestion = v }, reloadable: false));

    public static readonly RunOption<int> ConnectTimeout = Add(new RunOption<int>("--connect-timeout", "MS",
        "backend connect timeout (default 3000)",
        Int(10, 600_000), o => o.ConnectTimeoutMs, (o, v) => o with { ConnectTimeoutMs = v }, reloadable: true));

    public static readonly RunOption<int> IdleTimeout = Add(new RunOption<int>("--idle-timeout", "S",
        "close flows idle this long (default 300)",
        Int(1, 86_400 * 7), o => (int)(o.IdleTimeoutMs / 1000), (o, v) => o with { IdleTimeoutMs = v * 1000L }, reloadable: true));

    public static readonly RunOption<int> FirstDataTimeout = Add(new RunOption<int>("--first-data-timeout", "S",
        "reset flows whose client sends nothing this long after the handshake (default 0 = off; leave off for "
        + "server-speaks-first protocols)",
        Int(0, 86_400), o => (int)(o.FirstDataTimeoutMs / 1000), (o, v) => o with { FirstDataTimeoutMs = v * 1000L }, reloadable: true));

    public static readonly RunOption<double> StatsInterval = Add(new RunOption<double>("--stats-interval", "SEC",
        "counters line on stdout every SEC seconds (default 0 = off; a final line is printed at exit when on)",
        Double(0, 3600), o => o.StatsIntervalSeconds, (o, v) => o with { StatsIntervalSeconds = v }, reloadable: false));

    public static readonly RunOption<string?> StatsFile = Add(new RunOption<string?>("--stats-file", "FILE",
        "also write counters as JSON to FILE every interval (every second when --stats-interval is off) and on exit",
        WritableFilePath, o => o.StatsFile, (o, v) => o with { StatsFile = v }, reloadable: false));

    public static readonly RunOption<double> Duration = Add(new RunOption<double>("--duration", "SEC",
        "exit after SEC seconds (default: run until SIGINT/SIGTERM)",
        Double(0, 86_400 * 365), o => o.DurationSeconds, (o, v) => o with { DurationSeconds = v }, reloadable: false));

    public static readonly RunOption<double> DrainTimeout = Add(new RunOption<double>("--drain-timeout", "SEC",
        "on SIGINT/SIGTERM stop answering SYNs and let established flows finish for up to SEC seconds, then reset "
        + "the rest (default 10; a second signal ends the drain at once)",
        Double(0, 86_400), o => o.DrainTimeoutSeconds, (o, v) => o with { DrainTimeoutSeconds = v }, reloadable: true));

    public static readonly RunOption<bool> Verbose = Add(new RunOption<bool>("--verbose", null,
        "log flow events",
        Bool, o => o.Verbose, (o, v) => o with { Verbose = v }, reloadable: false));

    public static readonly RunOption<string> RunDirectory = Add(new RunOption<string>("--run-dir", "DIR",
        "directory of the instance locks (one per interface and endpoint) and the control socket (default /run/cookieproxy)",
        NonEmpty, o => o.RunDirectory, (o, v) => o with { RunDirectory = v }, reloadable: false));

    public static readonly RunOption<int> MaxConnectionsPerSource = Add(new RunOption<int>("--max-conn-per-source", "N",
        "concurrent flows per source prefix (validated sources only; 0 = off)",
        Int(0, 1_000_000), o => o.MaxConnectionsPerSource, (o, v) => o with { MaxConnectionsPerSource = v }, reloadable: true));

    public static readonly RunOption<double> ConnectionRatePerSource = Add(new RunOption<double>("--conn-rate-per-source", "R",
        "new flows per second per source prefix, burst 20 (0 = off)",
        Double(0, 1_000_000), o => o.ConnectionRatePerSource, (o, v) => o with { ConnectionRatePerSource = v }, reloadable: true));

    public static readonly RunOption<int> SynRatePerSource = Add(new RunOption<int>("--syn-rate-per-source", "R",
        "SYN+ACKs per second per source prefix (0 = off)",
        Int(0, 1_000_000), o => o.SynRatePerSource, (o, v) => o with { SynRatePerSource = v }, reloadable: true));

    public static readonly RunOption<int> SourcePrefixV4 = Add(new RunOption<int>("--source-prefix4", "N",
        "IPv4 prefix length that groups sources for the per-source limits (default 32)",
        Int(1, 32), o => o.SourcePrefixV4, (o, v) => o with { SourcePrefixV4 = v }, reloadable: false));

    public static readonly RunOption<int> SourcePrefixV6 = Add(new RunOption<int>("--source-prefix6", "N",
        "IPv6 prefix length that groups sources for the per-source limits (default 64)",
        Int(1, 128), o => o.SourcePrefixV6, (o, v) => o with { SourcePrefixV6 = v }, reloadable: false));

    public static readonly RunOption<SourcePrefixSet> AllowSource = Add(new RunOption<SourcePrefixSet>("--allow-source", "PREFIX[,PREFIX...]",
        "sources exempt from the per-source limits (e.g. 198.18.0.0/15,2001:db8::/32; config: a list)",
        PrefixList, o => o.AllowSource, (o, v) => o with { AllowSource = v }, reloadable: true) { IsList = true });

    public static readonly RunOption<SourcePrefixSet> DenySource = Add(new RunOption<SourcePrefixSet>("--deny-source", "PREFIX[,PREFIX...]",
        "sources whose SYNs and handshake ACKs are dropped (DropReason SourceDenied); their established flows go on (config: a list)",
        PrefixList, o => o.DenySource, (o, v) => o with { DenySource = v }, reloadable: true) { IsList = true });

    public static readonly RunOption<int> SynCache = Add(new RunOption<int>("--syncache", "N",
        "remember up to N answered SYNs per capture thread and send their SYN+ACK again after 1 s and 3 s until the "
        + "ACK comes, while the thread's SYN rate is below N/4 per second; above it, or when full, pure cookies "
        + $"(default {Responder.SynCacheConfig.DefaultCapacity}; 0 = off)",
        Int(0, Responder.SynCacheConfig.MaxCapacity), o => o.SynCacheEntries, (o, v) => o with { SynCacheEntries = v }, reloadable: false));

    // ---- observability (helper ops)

    public static readonly RunOption<string?> ControlSocketPath = Add(new RunOption<string?>("--control-socket", "PATH|off",
        "Unix socket (mode 0660) that `cookieproxy stats`, `top` and `reload` talk to (default: control.sock in --run-dir; "
        + "off = none)",
        Path, o => o.ControlSocket, (o, v) => o with { ControlSocket = v }, reloadable: false));

    public static readonly RunOption<IPEndPoint?> MetricsListen = Add(new RunOption<IPEndPoint?>("--metrics-listen", "ADDR:PORT",
        "serve Prometheus metrics at http://ADDR:PORT/metrics (default: off)",
        ParseMetricsListen, o => o.MetricsListen, (o, v) => o with { MetricsListen = v }, reloadable: false));

    public static readonly RunOption<string?> SamplePcap = Add(new RunOption<string?>("--sample-pcap", "FILE",
        "write a sample of the dropped frames to FILE (pcapng, the drop reason in each packet's comment; rotated to "
        + "FILE.1 .. FILE.3) (default: off)",
        WritableFilePath, o => o.SamplePcap, (o, v) => o with { SamplePcap = v }, reloadable: false));

    public static readonly RunOption<int> SampleEvery = Add(new RunOption<int>("--sample-every", "N",
        "with --sample-pcap: keep 1 in N dropped frames, plus the first 8 of every drop reason (default 1000)",
        Int(1, 100_000_000), o => o.SampleEvery, (o, v) => o with { SampleEvery = v }, reloadable: false));

    public static readonly RunOption<int> SampleMaxMegabytes = Add(new RunOption<int>("--sample-max-mb", "M",
        "with --sample-pcap: the files together hold at most M MiB (default 64)",
        Int(1, 1 << 20), o => o.SampleMaxMegabytes, (o, v) => o with { SampleMaxMegabytes = v }, reloadable: false));

    // ---- the listeners: ordered pairs, so not RunOption<T>s (see ReadListeners)

    public static readonly Option<string[]> Listen = new("--listen")
    {
        Description = "protected endpoint IP:PORT (repeatable; each needs a --backend after it)",
        HelpName = "IP:PORT",
        Arity = ArgumentArity.OneOrMore,
    };

    public static readonly Option<string[]> Backend = new("--backend")
    {
        Description = "where validated connections of the preceding --listen go",
        HelpName = "IP:PORT",
        Arity = ArgumentArity.OneOrMore,
    };

    public static readonly Option<string[]> ProxyProtocolOption = new("--proxy-protocol")
    {
        Description = "send a PROXY header to the preceding listener's backend (default: off)",
        HelpName = "v1|v2|off",
        Arity = ArgumentArity.OneOrMore,
    };

    /// <summary>`--config FILE`: the YAML file read before the command line (which overrides it).</summary>
    public static readonly Option<string> Config = new("--config")
    {
        Description = "read the options from this YAML file first (keys: the option names without the dashes; "
            + "command-line options override it; SIGHUP re-reads it)",
        HelpName = "FILE",
        Arity = ArgumentArity.ExactlyOne,
    };

    /// <summary>Every option with a config key, in declaration order.</summary>
    public static IReadOnlyList<RunOption> All => s_all;

    public static RunOption? FindByKey(string key)
    {
        foreach (RunOption o in s_all)
        {
            if (o.Key == key)
            {
                return o;
            }
        }
        return null;
    }

    /// <summary>Adds the run options to a command (`run` and `check` take the same ones).</summary>
    public static void AddTo(Command command)
    {
        command.Options.Add(Config);
        command.Options.Add(Listen);
        command.Options.Add(Backend);
        command.Options.Add(ProxyProtocolOption);
        foreach (RunOption o in s_all)
        {
            command.Options.Add(o.Symbol);
        }
    }

    /// <summary>
    /// Applies what the command line gave over <paramref name="options"/> (the defaults, or the config file's
    /// result): every option given, and the listener pairs, which replace the file's when any is given.
    /// Returns null or the first error, naming the option.
    /// </summary>
    public static string? ApplyCommandLine(ParseResult parsed, ref ProxyOptions options)
    {
        foreach (RunOption o in s_all)
        {
            string? error = o.TryApplyGiven(parsed, ref options);
            if (error is not null)
            {
                return error;
            }
        }
        string? listenerError = ReadListeners(parsed.Tokens, out List<ListenerOptions> listeners);
        if (listenerError is not null)
        {
            return listenerError;
        }
        if (listeners.Count > 0)
        {
            options = options with { Listeners = listeners };
        }
        return null;
    }

    /// <summary>The --listen/--backend/--proxy-protocol triples, in command-line order (a --backend belongs to the
    /// --listen before it, a --proxy-protocol to the pair before it).</summary>
    internal static string? ReadListeners(IReadOnlyList<Token> tokens, out List<ListenerOptions> listeners)
    {
        listeners = [];
        IPEndPoint? pendingListen = null;
        for (int i = 0; i < tokens.Count; i++)
        {
            Token t = tokens[i];
            if (t.Type != TokenType.Option || (t.Value != Listen.Name && t.Value != Backend.Name && t.Value != ProxyProtocolOption.Name))
            {
                continue;
            }
            if (i + 1 >= tokens.Count || tokens[i + 1].Type != TokenType.Argument)
            {
                return $"{t.Value} needs a value";
            }
            string value = tokens[++i].Value;
            if (t.Value == Listen.Name)
            {
                if (pendingListen is not null)
                {
                    return $"--listen {pendingListen} has no --backend before the next --listen";
                }
                string? error = ParseListen(value, out pendingListen);
                if (error is not null)
                {
                    return $"--listen '{value}': {error}";
                }
            }
            else if (t.Value == Backend.Name)
            {
                if (pendingListen is null)
                {
                    return $"--backend '{value}' must follow a --listen";
                }
                if (!TryParseEndpoint(value, out IPEndPoint? backend, out string? error))
                {
                    return $"--backend '{value}': {error}";
                }
                if (listeners.Exists(l => l.Listen.Equals(pendingListen)))
                {
                    return $"--listen {pendingListen} is given twice";
                }
                listeners.Add(new ListenerOptions(pendingListen, backend!, ProxyProtocolVersion.None));
                pendingListen = null;
            }
            else
            {
                if (listeners.Count == 0 || pendingListen is not null)
                {
                    return "--proxy-protocol applies to the preceding --listen/--backend pair; give that pair first";
                }
                if (!TryParseProxyProtocol(value, out ProxyProtocolVersion pp, out string error))
                {
                    return $"--proxy-protocol '{value}': {error}";
                }
                listeners[^1] = listeners[^1] with { ProxyProtocol = pp };
            }
        }
        if (pendingListen is not null)
        {
            return $"--listen {pendingListen} has no --backend";
        }
        return null;
    }

    /// <summary>
    /// The checks that involve more than one option, once every source has been applied. Returns null, or the
    /// error with the name of the option to change (the first of the pair, for the config's line numbers).
    /// </summary>
    public static (string? Error, RunOption? Culprit) Validate(ProxyOptions o)
    {
        if (string.IsNullOrWhiteSpace(o.Interface))
        {
            return ("--interface is required", Interface);
        }
        if (o.Listeners.Count == 0)
        {
            return ("at least one --listen IP:PORT --backend IP:PORT pair is required (config: listeners:)", null);
        }
        if (o.Capture == CaptureKind.Pcap && o.Threads > 1)
        {
            // An explicit request we cannot honour is an error; the default (0) just becomes one thread.
            return ($"--threads {o.Threads}: libpcap capture cannot share the frames between threads (no fanout); use --capture afpacket or one thread", Threads);
        }
        if (o.Capture == CaptureKind.AfXdp && o.Threads > 1)
        {
            return ($"--threads {o.Threads}: AF_XDP capture here uses one socket on queue 0 (one thread); use --capture afpacket for several", Threads);
        }
        if (o.XdpSyn is XdpSynMode.Native or XdpSynMode.Generic && o.Capture == CaptureKind.AfXdp)
        {
            return ($"--xdp-syn {o.XdpSyn.ToString().ToLowerInvariant()} with --capture afxdp: both need the interface's XDP hook; use --capture afpacket (or auto) with --xdp-syn", XdpSyn);
        }
        if (o.XdpSyn is XdpSynMode.Native or XdpSynMode.Generic && o.Capture == CaptureKind.Pcap)
        {
            return ($"--xdp-syn {o.XdpSyn.ToString().ToLowerInvariant()} with --capture pcap: the XDP responder needs Linux and the AF_PACKET capture; use --capture afpacket (or auto)", XdpSyn);
        }
        foreach (ListenerOptions l in o.Listeners)
        {
            if (l.Backend.Equals(l.Listen))
            {
                return ($"--backend {l.Backend} is the protected endpoint itself; move the server to another port (e.g. 127.0.0.1:8080)", null);
            }
        }
        return (null, null);
    }

    // ---- value parsers: the reason only; the caller names the option (or FILE:LINE: key)

    internal static string? ParseListen(string text, out IPEndPoint? endpoint)
    {
        if (!TryParseEndpoint(text, out endpoint, out string? error))
        {
            return error;
        }
        if (endpoint!.Address.Equals(IPAddress.Any) || endpoint.Address.Equals(IPAddress.IPv6Any))
        {
            endpoint = null;
            return "a protected endpoint needs a concrete address, not a wildcard";
        }
        return null;
    }

    public static bool TryParseEndpoint(string text, out IPEndPoint? endpoint, out string? error)
    {
        endpoint = null;
        if (!IPEndPoint.TryParse(text, out IPEndPoint? ep) || ep.Port == 0)
        {
            error = "expected IP:PORT (IPv6 as [ADDR]:PORT) with a port in 1..65535";
            return false;
        }
        if (!text.Contains(':', StringComparison.Ordinal) || (ep.AddressFamily == System.Net.Sockets.AddressFamily.InterNetworkV6 && !text.Contains("]:", StringComparison.Ordinal)))
        {
            error = "a port is required (IPv6 as [ADDR]:PORT)";
            return false;
        }
        if (ep.Address.IsIPv4MappedToIPv6)
        {
            ep = new IPEndPoint(ep.Address.MapToIPv4(), ep.Port);
        }
        endpoint = ep;
        error = null;
        return true;
    }

    internal static bool TryParseProxyProtocol(string text, out ProxyProtocolVersion value, out string error)
    {
        (bool ok, value) = text.ToLowerInvariant() switch
        {
            "v1" or "1" => (true, ProxyProtocolVersion.V1),
            "v2" or "2" => (true, ProxyProtocolVersion.V2),
            "off" or "none" or "false" => (true, ProxyProtocolVersion.None),
            _ => (false, ProxyProtocolVersion.None),
        };
        error = ok ? "" : "expected v1, v2 or off";
        return ok;
    }

    private static ValueParser<int> Int(int min, int max) => (string text, out int value, out string error) =>
    {
        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out value) || value < min || value > max)
        {
            error = $"expected a whole number in {min}..{max}";
            return false;
        }
        error = "";
        return true;
    };

    private static ValueParser<double> Double(double min, double max) => (string text, out double value, out string error) =>
    {
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value) || double.IsNaN(value) || value < min || value > max)
        {
            error = $"expected a number in {min}..{max}";
            return false;
        }
        error = "";
        return true;
    };

    private static bool Bool(string text, out bool value, out string error)
    {
        (bool ok, value) = text.ToLowerInvariant() switch
        {
            "true" or "yes" or "on" or "1" => (true, true),
            "false" or "no" or "off" or "0" => (true, false),
            _ => (false, false),
        };
        error = ok ? "" : "expected true or false";
        return ok;
    }

    private static bool NonEmpty(string text, out string value, out string error)
    {
        value = text.Trim();
        error = value.Length == 0 ? "needs a value" : "";
        return value.Length > 0;
    }

    private static bool Path(string text, out string? value, out string error)
    {
        value = text.Trim();
        error = value.Length == 0 ? "needs a path" : "";
        return value.Length > 0;
    }

    /// <summary>A file we will create: its directory must exist (writability is checked when it is first written).</summary>
    private static bool WritableFilePath(string text, out string? value, out string error)
    {
        value = null;
        if (!Path(text, out string? path, out error))
        {
            return false;
        }
        if (System.IO.Path.GetDirectoryName(System.IO.Path.GetFullPath(path!)) is string dir && !Directory.Exists(dir))
        {
            error = $"directory '{dir}' does not exist";
            return false;
        }
        value = path;
        return true;
    }

    private static bool PrefixList(string text, out SourcePrefixSet value, out string error) =>
        SourcePrefixSet.TryParse(text.Split(','), out value, out error);

    private static bool ParseCapture(string text, out CaptureKind value, out string error)
    {
        if (!Enum.TryParse(text, ignoreCase: true, out value) || !Enum.IsDefined(value) || text.All(char.IsDigit))
        {
            error = "expected auto, pcap, afpacket or afxdp";
            return false;
        }
        error = "";
        return true;
    }

    private static bool ParseXdpMode(string text, out XdpSynMode value, out string error)
    {
        XdpSynMode? mode = text.ToLowerInvariant() switch
        {
            "auto" => XdpSynMode.Auto,
            "generic" or "skb" => XdpSynMode.Generic,
            "native" or "drv" => XdpSynMode.Native,
            "off" => XdpSynMode.Off,
            _ => null,
        };
        value = mode ?? XdpSynMode.Auto;
        error = mode is null ? "expected auto, native, generic or off" : "";
        return mode is not null;
    }

    private static bool ParsePcapSend(string text, out PcapSendMode value, out string error)
    {
        (bool known, value) = text.ToLowerInvariant() switch
        {
            "batch" => (true, PcapSendMode.Batch),
            "inject" => (true, PcapSendMode.Inject),
            _ => (false, PcapSendMode.Batch),
        };
        error = known ? "" : "expected batch or inject";
        return known;
    }

    private static bool ParseRxRings(string text, out ReceiveRings value, out string error)
    {
        (bool known, value) = text.ToLowerInvariant() switch
        {
            "separate" => (true, ReceiveRings.Separate),
            "separate-v3" => (true, ReceiveRings.SeparateSynBlocks),
            "single" => (true, ReceiveRings.Single),
            _ => (false, ReceiveRings.Separate),
        };
        error = known ? "" : "expected separate, separate-v3 or single";
        return known;
    }

    private static bool ParseCongestion(string text, out TcpCongestionControl value, out string error)
    {
        (bool known, value) = text.ToLowerInvariant() switch
        {
            "cubic" => (true, TcpCongestionControl.Cubic),
            "newreno" or "reno" => (true, TcpCongestionControl.NewReno),
            _ => (false, TcpCongestionControl.Cubic),
        };
        error = known ? "" : "expected cubic or newreno";
        return known;
    }

    private static bool ParseFanout(string text, out FanoutMode? value, out string error)
    {
        (bool known, value) = text.ToLowerInvariant() switch
        {
            "auto" => (true, (FanoutMode?)null),
            "source" => (true, FanoutMode.SourcePrefix),
            "flow" => (true, FanoutMode.FlowHash),
            _ => (false, null),
        };
        error = known ? "" : "expected auto, source or flow";
        return known;
    }

    /// <summary>--metrics-listen: an IP:PORT to bind (a wildcard address is fine here), or off.</summary>
    private static bool ParseMetricsListen(string text, out IPEndPoint? value, out string error)
    {
        value = null;
        if (text.ToLowerInvariant() is "off" or "none" or "false")
        {
            error = "";
            return true;
        }
        if (!TryParseEndpoint(text, out value, out string? why))
        {
            error = why!;
            return false;
        }
        error = "";
        return true;
    }

    private static RunOption<T> Add<T>(RunOption<T> option)
    {
        s_all.Add(option);
        return option;
    }
}
