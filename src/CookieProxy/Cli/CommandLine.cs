using System.Globalization;
using System.Net;
using CookieProxy.Host.Capture;
using CookieProxy.Platform;
using CookieProxy.ProxyProtocol;

namespace CookieProxy.Host.Cli;

/// <summary>The result of parsing argv: options to run, text to print, or an error (exit code 2).</summary>
public sealed record ParseResult(ProxyOptions? Options, string? Output, string? Error, string? Command = null, string? Argument = null)
{
    public static ParseResult Fail(string error) => new(null, null, error);
}

/// <summary>
/// Hand-rolled argv parser: no dependency, every bad input gets a message that names the flag and the value.
/// </summary>
public static class CommandLine
{
    public const string Usage = """
        Usage:
          cookieproxy run --interface IF --listen IP:PORT --backend IP:PORT [--listen IP:PORT --backend IP:PORT]... [options]
          cookieproxy genkey [FILE]       write a new 128-bit cookie key (hex) to FILE or stdout
          cookieproxy --help | --version

        Run options:
          --interface IF            external interface to capture on (required)
          --listen IP:PORT          protected endpoint (repeatable; each needs a --backend after it)
          --backend IP:PORT         where validated connections of the preceding --listen go
          --proxy-protocol v1|v2    send a PROXY header to the preceding listener's backend (default: off)
          --key-file FILE           128-bit cookie key (32 hex digits); share it so instances accept each other's cookies
          --hide-port               install an nftables rule so the kernel drops inbound packets to the protected
                                    endpoints (removed on exit)
          --capture auto|pcap|afpacket|afxdp   capture backend (default auto: AF_PACKET ring on Linux, else libpcap;
                                    afxdp: AF_XDP socket fed by our XDP program, one thread, Linux 5.9+)
          --ring-mb N               AF_PACKET receive ring per capture thread, MiB (default 32: ~250 ms of
                                    slack when sparse, ~250k SYN frames when busy)
          --xdp-syn auto|native|generic|off   answer SYNs with cookie SYN+ACKs in an XDP program on the interface
                                    (XDP_TX), byte for byte what user space sends; unusual SYNs, SYNs of live flows
                                    and everything else still come up. auto (default on Linux): native where the
                                    driver's XDP_TX really sends, else generic, else user space; off: user space
          --no-tx-offload           send flow data as single segments (default: TCP super-frames the kernel or NIC
                                    cuts, via PACKET_VNET_HDR, where the AF_PACKET backend is used)
          --threads N               capture threads sharing the interface through PACKET_FANOUT (AF_PACKET only)
                                    (default 0 = one per core, at most 8; with libpcap or AF_XDP 1)
          --fanout auto|source|flow how the threads share the traffic: by source prefix (all of a source's traffic
                                    on one thread, so per-source limits hold exactly) or by flow hash (best
                                    balance when one source is most of the traffic); default auto = source
                                    when a per-source limit is on, else flow
          --mss N                   MSS announced to clients (default 1460; 536..9000)
          --slot-seconds N          cookie time slot, 30..60 (a cookie lives 1-2 slots; default 32)
          --rst-invalid             answer invalid cookie ACKs with RST (default: drop silently)
          --max-flows N             cap on concurrent flows, split evenly over the threads (default 100000)
          --max-buffer-mb N         cap on bytes buffered across all flows, split likewise (default 1024)
          --flow-buffer-kb N        per-flow buffer each way (default 256)
          --connect-timeout MS      backend connect timeout (default 3000)
          --idle-timeout S          close flows idle this long (default 300)
          --first-data-timeout S    reset flows whose client sends nothing this long after the handshake (default 0 = off;
                                    leave off for server-speaks-first protocols)
          --stats-interval SEC      counters line on stderr every SEC seconds (default 2; 0 = off)
          --stats-file FILE         also write counters as JSON to FILE every interval and on exit
          --duration SEC            exit after SEC seconds (default: run until SIGINT/SIGTERM)
          --verbose                 log flow events
          --max-conn-per-source N   concurrent flows per source prefix (validated sources only; 0 = off)
          --conn-rate-per-source R  new flows per second per source prefix, burst 20 (0 = off)
          --syn-rate-per-source R   SYN+ACKs per second per source prefix (0 = off)
          --source-prefix4 N, --source-prefix6 N   prefix lengths that group sources (default 32 and 64)
        """;

    public static ParseResult Parse(IReadOnlyList<string> args)
    {
        if (args.Count == 0)
        {
            return ParseResult.Fail("no command given");
        }
        switch (args[0])
        {
            case "--help" or "-h" or "help":
                return new ParseResult(null, Usage, null);
            case "--version":
                return new ParseResult(null, "cookieproxy " + typeof(CommandLine).Assembly.GetName().Version, null);
            case "genkey":
                if (args.Count > 2)
                {
                    return ParseResult.Fail("genkey takes at most one FILE argument");
                }
                return new ParseResult(null, null, null, "genkey", args.Count == 2 ? args[1] : null);
            case "run":
                return ParseRun(args);
            default:
                return ParseResult.Fail($"unknown command '{args[0]}'");
        }
    }

    private static ParseResult ParseRun(IReadOnlyList<string> args)
    {
        string? iface = null;
        var listeners = new List<ListenerOptions>();
        IPEndPoint? pendingListen = null;
        string? keyFile = null, statsFile = null;
        bool hide = false, rstInvalid = false, verbose = false, txOffload = true;
        XdpSynMode xdpSyn = XdpSynMode.Auto;
        var capture = CaptureKind.Auto;
        FanoutMode? fanout = null;
        int threads = 0, slot = Cookies.SynCookieCodec.DefaultSlotSeconds, maxFlows = 100_000, flowKb = 256, connectMs = 3000;
        long maxBufferMb = 1024, idleS = 300, firstDataS = 0;
        int ringMb = PacketDeviceOptions.DefaultRingMegabytes;
        ushort mss = 1460;
        double statsInterval = 2, duration = 0, connRate = 0;
        int maxPerSource = 0, synRate = 0, prefix4 = 32, prefix6 = 64;

        for (int i = 1; i < args.Count; i++)
        {
            string flag = args[i];
            string? value = null;
            bool NeedValue(out string? error)
            {
                if (i + 1 >= args.Count || args[i + 1].StartsWith("--", StringComparison.Ordinal))
                {
                    error = $"{flag} needs a value";
                    return false;
                }
                value = args[++i];
                error = null;
                return true;
            }

            // Numeric options: a value must follow and lie in range; the message names the flag once.
            bool IntValue(int min, int max, out int v, out string? error)
            {
                v = 0;
                if (!NeedValue(out error))
                {
                    return false;
                }
                if (TryInt(value, min, max, out v, out error))
                {
                    return true;
                }
                error = $"{flag}: {error}";
                return false;
            }

            bool DoubleValue(double min, double max, out double v, out string? error)
            {
                v = 0;
                if (!NeedValue(out error))
                {
                    return false;
                }
                if (TryDouble(value, min, max, out v, out error))
                {
                    return true;
                }
                error = $"{flag}: {error}";
                return false;
            }

            string? err;
            switch (flag)
            {
                case "--interface":
                    if (!NeedValue(out err)) return ParseResult.Fail(err!);
                    iface = value;
                    break;
                case "--listen":
                    if (!NeedValue(out err)) return ParseResult.Fail(err!);
                    if (pendingListen is not null)
                    {
                        return ParseResult.Fail($"--listen {pendingListen} has no --backend before the next --listen");
                    }
                    if (!TryParseEndpoint(value!, out pendingListen, out err))
                    {
                        return ParseResult.Fail($"--listen '{value}': {err}");
                    }
                    if (pendingListen!.Address.Equals(IPAddress.Any) || pendingListen.Address.Equals(IPAddress.IPv6Any))
                    {
                        return ParseResult.Fail($"--listen '{value}': a protected endpoint needs a concrete address, not a wildcard");
                    }
                    break;
                case "--backend":
                    if (!NeedValue(out err)) return ParseResult.Fail(err!);
                    if (pendingListen is null)
                    {
                        return ParseResult.Fail($"--backend '{value}' must follow a --listen");
                    }
                    if (!TryParseEndpoint(value!, out IPEndPoint? backend, out err))
                    {
                        return ParseResult.Fail($"--backend '{value}': {err}");
                    }
                    if (listeners.Exists(l => l.Listen.Equals(pendingListen)))
                    {
                        return ParseResult.Fail($"--listen {pendingListen} is given twice");
                    }
                    listeners.Add(new ListenerOptions(pendingListen, backend!, ProxyProtocolVersion.None));
                    pendingListen = null;
                    break;
                case "--proxy-protocol":
                    if (!NeedValue(out err)) return ParseResult.Fail(err!);
                    if (listeners.Count == 0 || pendingListen is not null)
                    {
                        return ParseResult.Fail("--proxy-protocol applies to the preceding --listen/--backend pair; give that pair first");
                    }
                    ProxyProtocolVersion? pp = value!.ToLowerInvariant() switch
                    {
                        "v1" or "1" => ProxyProtocolVersion.V1,
                        "v2" or "2" => ProxyProtocolVersion.V2,
                        "off" or "none" => ProxyProtocolVersion.None,
                        _ => null,
                    };
                    if (pp is null)
                    {
                        return ParseResult.Fail($"--proxy-protocol '{value}': expected v1, v2 or off");
                    }
                    listeners[^1] = listeners[^1] with { ProxyProtocol = pp.Value };
                    break;
                case "--key-file":
                    if (!NeedValue(out err)) return ParseResult.Fail(err!);
                    keyFile = value;
                    break;
                case "--hide-port":
                    hide = true;
                    break;
                case "--rst-invalid":
                    rstInvalid = true;
                    break;
                case "--no-tx-offload":
                    txOffload = false;
                    break;
                case "--verbose":
                    verbose = true;
                    break;
                case "--xdp-syn":
                    if (!NeedValue(out err)) return ParseResult.Fail(err!);
                    XdpSynMode? mode = value!.ToLowerInvariant() switch
                    {
                        "auto" => XdpSynMode.Auto,
                        "generic" or "skb" => XdpSynMode.Generic,
                        "native" or "drv" => XdpSynMode.Native,
                        "off" => XdpSynMode.Off,
                        _ => null,
                    };
                    if (mode is null)
                    {
                        return ParseResult.Fail($"--xdp-syn '{value}': expected auto, native, generic or off");
                    }
                    xdpSyn = mode.Value;
                    break;
                case "--capture":
                    if (!NeedValue(out err)) return ParseResult.Fail(err!);
                    if (!Enum.TryParse(value, ignoreCase: true, out capture) || !Enum.IsDefined(capture) || value!.All(char.IsDigit))
                    {
                        return ParseResult.Fail($"--capture '{value}': expected auto, pcap, afpacket or afxdp");
                    }
                    break;
                case "--threads":
                    if (!IntValue(0, 64, out threads, out err)) return ParseResult.Fail(err!);
                    break;
                case "--fanout":
                    if (!NeedValue(out err)) return ParseResult.Fail(err!);
                    (bool known, fanout) = value!.ToLowerInvariant() switch
                    {
                        "auto" => (true, (FanoutMode?)null),
                        "source" => (true, FanoutMode.SourcePrefix),
                        "flow" => (true, FanoutMode.FlowHash),
                        _ => (false, null),
                    };
                    if (!known)
                    {
                        return ParseResult.Fail($"--fanout '{value}': expected auto, source or flow");
                    }
                    break;
                case "--mss":
                    if (!IntValue(536, 9000, out int m, out err)) return ParseResult.Fail(err!);
                    mss = (ushort)m;
                    break;
                case "--slot-seconds":
                    if (!IntValue(Cookies.SynCookieCodec.MinSlotSeconds, Cookies.SynCookieCodec.MaxSlotSeconds, out slot, out err)) return ParseResult.Fail(err!);
                    break;
                case "--max-flows":
                    if (!IntValue(1, 10_000_000, out maxFlows, out err)) return ParseResult.Fail(err!);
                    break;
                case "--ring-mb":
                    if (!IntValue(1, 4096, out ringMb, out err)) return ParseResult.Fail(err!);
                    break;
                case "--max-buffer-mb":
                    if (!IntValue(1, 1 << 20, out int mb, out err)) return ParseResult.Fail(err!);
                    maxBufferMb = mb;
                    break;
                case "--flow-buffer-kb":
                    if (!IntValue(16, 64 * 1024, out flowKb, out err)) return ParseResult.Fail(err!);
                    break;
                case "--connect-timeout":
                    if (!IntValue(10, 600_000, out connectMs, out err)) return ParseResult.Fail(err!);
                    break;
                case "--idle-timeout":
                    if (!IntValue(1, 86_400 * 7, out int idle, out err)) return ParseResult.Fail(err!);
                    idleS = idle;
                    break;
                case "--max-conn-per-source":
                    if (!IntValue(0, 1_000_000, out maxPerSource, out err)) return ParseResult.Fail(err!);
                    break;
                case "--conn-rate-per-source":
                    if (!DoubleValue(0, 1_000_000, out connRate, out err)) return ParseResult.Fail(err!);
                    break;
                case "--syn-rate-per-source":
                    if (!IntValue(0, 1_000_000, out synRate, out err)) return ParseResult.Fail(err!);
                    break;
                case "--source-prefix4":
                    if (!IntValue(1, 32, out prefix4, out err)) return ParseResult.Fail(err!);
                    break;
                case "--source-prefix6":
                    if (!IntValue(1, 128, out prefix6, out err)) return ParseResult.Fail(err!);
                    break;
                case "--first-data-timeout":
                    if (!IntValue(0, 86_400, out int fd, out err)) return ParseResult.Fail(err!);
                    firstDataS = fd;
                    break;
                case "--stats-interval":
                    if (!DoubleValue(0, 3600, out statsInterval, out err)) return ParseResult.Fail(err!);
                    break;
                case "--stats-file":
                    if (!NeedValue(out err)) return ParseResult.Fail(err!);
                    statsFile = value;
                    if (Path.GetDirectoryName(Path.GetFullPath(value!)) is string dir && !Directory.Exists(dir))
                    {
                        return ParseResult.Fail($"--stats-file {value}: directory '{dir}' does not exist");
                    }
                    break;
                case "--duration":
                    if (!DoubleValue(0, 86_400 * 365, out duration, out err)) return ParseResult.Fail(err!);
                    break;
                default:
                    return ParseResult.Fail($"unknown option '{flag}'");
            }
        }

        if (pendingListen is not null)
        {
            return ParseResult.Fail($"--listen {pendingListen} has no --backend");
        }
        if (string.IsNullOrWhiteSpace(iface))
        {
            return ParseResult.Fail("--interface is required");
        }
        if (listeners.Count == 0)
        {
            return ParseResult.Fail("at least one --listen IP:PORT --backend IP:PORT pair is required");
        }
        if (capture == CaptureKind.Pcap && threads > 1)
        {
            // An explicit request we cannot honour is an error; the default (0) just becomes one thread.
            return ParseResult.Fail($"--threads {threads}: libpcap capture cannot share the frames between threads (no fanout); use --capture afpacket or one thread");
        }
        if (capture == CaptureKind.AfXdp && threads > 1)
        {
            return ParseResult.Fail($"--threads {threads}: AF_XDP capture here uses one socket on queue 0 (one thread); use --capture afpacket for several");
        }
        if (xdpSyn is XdpSynMode.Native or XdpSynMode.Generic && capture == CaptureKind.AfXdp)
        {
            return ParseResult.Fail($"--xdp-syn {xdpSyn.ToString().ToLowerInvariant()} with --capture afxdp: both need the interface's XDP hook; use --capture afpacket (or auto) with --xdp-syn");
        }
        if (xdpSyn is XdpSynMode.Native or XdpSynMode.Generic && capture == CaptureKind.Pcap)
        {
            return ParseResult.Fail($"--xdp-syn {xdpSyn.ToString().ToLowerInvariant()} with --capture pcap: the XDP responder needs Linux and the AF_PACKET capture; use --capture afpacket (or auto)");
        }
        foreach (ListenerOptions l in listeners)
        {
            if (l.Backend.Equals(l.Listen))
            {
                return ParseResult.Fail($"--backend {l.Backend} is the protected endpoint itself; move the server to another port (e.g. 127.0.0.1:8080)");
            }
        }

        return new ParseResult(new ProxyOptions
        {
            Interface = iface!,
            Listeners = listeners,
            KeyFile = keyFile,
            HidePort = hide,
            Capture = capture,
            Threads = threads,
            Fanout = fanout,
            StatsIntervalSeconds = statsInterval,
            StatsFile = statsFile,
            Mss = mss,
            SlotSeconds = slot,
            RstInvalid = rstInvalid,
            TxOffload = txOffload,
            XdpSyn = xdpSyn,
            MaxFlows = maxFlows,
            MaxBufferedBytes = maxBufferMb * 1024 * 1024,
            RingMegabytes = ringMb,
            FlowBufferBytes = flowKb * 1024,
            ConnectTimeoutMs = connectMs,
            IdleTimeoutMs = idleS * 1000,
            FirstDataTimeoutMs = firstDataS * 1000,
            DurationSeconds = duration,
            Verbose = verbose,
            MaxConnectionsPerSource = maxPerSource,
            ConnectionRatePerSource = connRate,
            SynRatePerSource = synRate,
            SourcePrefixV4 = prefix4,
            SourcePrefixV6 = prefix6,
        }, null, null);
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

    private static bool TryInt(string? text, int min, int max, out int value, out string? error)
    {
        if (!int.TryParse(text, NumberStyles.Integer, CultureInfo.InvariantCulture, out value) || value < min || value > max)
        {
            error = $"'{text}' is not a whole number in {min}..{max}";
            return false;
        }
        error = null;
        return true;
    }

    private static bool TryDouble(string? text, double min, double max, out double value, out string? error)
    {
        if (!double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out value) || value < min || value > max || double.IsNaN(value))
        {
            error = $"'{text}' is not a number in {min}..{max}";
            return false;
        }
        error = null;
        return true;
    }
}
