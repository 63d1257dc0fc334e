using System.Buffers.Binary;
using System.Net;
using CookieProxy.Cookies;
using CookieProxy.Crypto;
using CookieProxy.Diagnostics;
using CookieProxy.Responder;
using CookieProxy.Wire;
using static CookieProxy.Tests.Wire.WireTestFrames;

namespace CookieProxy.Tests.Fuzz;

/// <summary>
/// Mutation fuzzing of captured frames (smoltcp's fuzz targets over a corpus of real packets): seeds are the wire
/// corpus (tcpdump captures of Linux, curl, hping3 and wrk traffic), the lab captures of Fuzz/Corpus/*.pcap
/// (scripts/capture-corpus.sh: curl, wrk and hping3 against the published binary) plus synthesized SYNs and the cookie ACKs that
/// answer them, so that mutants reach every layer: the parser, the SYN path, the cookie check and the flows.
/// Each mutant gets one to four mutations (bit flips, interesting bytes, header fields, option blocks, truncation,
/// insertion, splicing), and most get their IP and TCP checksums fixed afterwards so that the layers behind the
/// checksum check see them too. Deterministic for a seed.
/// </summary>
internal sealed class FrameFuzzer
{
    /// <summary>Wall-clock time the seed cookies were made at (the responder and the codec must agree).</summary>
    public const long UnixMs = 1_764_700_000_000;

    public static readonly IPEndPoint ServerV4Endpoint = new(new IPAddress(ServerV4), 80);
    public static readonly IPEndPoint ServerV6Endpoint = new(new IPAddress(ServerV6), 80);

    public static readonly IpAddr ServerV4Key = IpAddr.FromBytes(ServerV4);
    public static readonly IpAddr ServerV6Key = IpAddr.FromBytes(ServerV6);

    private static readonly byte[] s_interesting = [0x00, 0x01, 0x02, 0x05, 0x06, 0x0F, 0x10, 0x11, 0x12, 0x14, 0x40, 0x45, 0x60, 0x7F, 0x80, 0xFE, 0xFF];

    private readonly Random _rng;
    private readonly List<byte[]> _seeds;

    public FrameFuzzer(int seed, SynCookieCodec codec)
    {
        _rng = new Random(seed);
        _seeds = BuildSeeds(codec);
    }

    public IReadOnlyList<byte[]> Seeds => _seeds;

    public Random Random => _rng;

    public static ProtectedEndpoints Endpoints()
    {
        var endpoints = new ProtectedEndpoints();
        endpoints.Add(ServerV4Endpoint);
        endpoints.Add(ServerV6Endpoint);
        return endpoints;
    }

    public static SynCookieCodec Codec() => new(new SipKey(0x0706050403020100, 0x0F0E0D0C0B0A0908));

    /// <summary>Writes one mutant into <paramref name="buffer"/>; returns its length.</summary>
    public int Next(Span<byte> buffer)
    {
        byte[] seed = _seeds[_rng.Next(_seeds.Count)];
        int length = Math.Min(seed.Length, buffer.Length);
        seed.AsSpan(0, length).CopyTo(buffer);
        // Few mutations mostly, so mutants of cookie ACKs still get past the parser to the cookie check and the flows.
        int mutations = _rng.Next(20) switch { < 3 => 0, < 12 => 1, < 16 => 2, _ => 3 + _rng.Next(2) };
        for (int m = 0; m < mutations; m++)
        {
            length = Mutate(buffer, length);
        }
        if (_rng.Next(10) < 7)
        {
            FixChecksums(buffer[..length]);
        }
        return length;
    }

    private int Mutate(Span<byte> buffer, int length)
    {
        switch (_rng.Next(10))
        {
            case 0 when length > 0:
                buffer[_rng.Next(length)] ^= (byte)(1 << _rng.Next(8));
                return length;
            case 1 when length > 0:
                buffer[_rng.Next(length)] = s_interesting[_rng.Next(s_interesting.Length)];
                return length;
            case 2:
                return _rng.Next(length + 1);    // truncate
            case 3:
            {
                int extra = Math.Min(1 + _rng.Next(64), buffer.Length - length);
                _rng.NextBytes(buffer.Slice(length, extra));
                return length + extra;
            }
            case 4 when length > 0:
            {
                int at = _rng.Next(length);
                int extra = Math.Min(1 + _rng.Next(16), buffer.Length - length);
                buffer[at..length].CopyTo(buffer[(at + extra)..]);
                _rng.NextBytes(buffer.Slice(at, extra));
                return length + extra;
            }
            case 5 when length > 1:
            {
                int at = _rng.Next(length);
                int cut = Math.Min(1 + _rng.Next(16), length - at);
                buffer[(at + cut)..length].CopyTo(buffer[at..]);
                return length - cut;
            }
            case 6:
                MutateHeaderField(buffer[..length]);
                return length;
            case 7:
                return MutateTcpOptions(buffer, length);
            case 8:
            {
                // Splice: this frame's head, another seed's tail.
                byte[] other = _seeds[_rng.Next(_seeds.Count)];
                int head = _rng.Next(length + 1);
                int from = _rng.Next(other.Length + 1);
                int tail = Math.Min(other.Length - from, buffer.Length - head);
                other.AsSpan(from, tail).CopyTo(buffer[head..]);
                return head + tail;
            }
            default:
                if (length > 0)
                {
                    int at = _rng.Next(length);
                    int n = Math.Min(1 + _rng.Next(8), length - at);
                    _rng.NextBytes(buffer.Slice(at, n));
                }
                return length;
        }
    }

    /// <summary>Overwrites one header field where the frame's own layout puts it (lengths, offsets, flags, types).</summary>
    private void MutateHeaderField(Span<byte> frame)
    {
        if (!Layout.TryRead(frame, out Layout l))
        {
            if (frame.Length >= 14)
            {
                BinaryPrimitives.WriteUInt16BigEndian(frame[12..], (ushort)(_rng.Next(2) == 0 ? 0x8100 : _rng.Next(65536)));
            }
            return;
        }
        Span<byte> ip = frame[l.L3..];
        int field = _rng.Next(12);
        switch (field)
        {
            case 0 when l.IsV4:
                ip[0] = (byte)(0x40 | _rng.Next(16));    // IHL
                break;
            case 1 when l.IsV4 && ip.Length >= 4:
                BinaryPrimitives.WriteUInt16BigEndian(ip[2..], (ushort)(_rng.Next(3) switch { 0 => 0, 1 => ip.Length + _rng.Next(-40, 40), _ => _rng.Next(65536) }));
                break;
            case 2 when l.IsV4 && ip.Length >= 8:
                BinaryPrimitives.WriteUInt16BigEndian(ip[6..], (ushort)(_rng.Next(4) switch { 0 => 0x2000, 1 => 0x0001, 2 => 0x4000, _ => _rng.Next(65536) }));    // MF / offset / DF
                break;
            case 3 when l.IsV4 && ip.Length >= 10:
                ip[9] = s_interesting[_rng.Next(s_interesting.Length)];    // protocol
                break;
            case 4 when !l.IsV4 && ip.Length >= 6:
                BinaryPrimitives.WriteUInt16BigEndian(ip[4..], (ushort)(_rng.Next(2) == 0 ? ip.Length - 40 + _rng.Next(-30, 30) : _rng.Next(65536)));
                break;
            case 5 when !l.IsV4 && ip.Length >= 7:
                ip[6] = (byte)(_rng.Next(2) == 0 ? s_interesting[_rng.Next(s_interesting.Length)] : (byte)(new[] { 0, 43, 44, 50, 51, 58, 59, 60, 135 })[_rng.Next(9)]);
                break;
            case 6 when l.L4 + 13 < frame.Length:
                frame[l.L4 + 12] = (byte)(_rng.Next(16) << 4);    // data offset
                break;
            case 7 when l.L4 + 13 < frame.Length:
                frame[l.L4 + 13] = (byte)_rng.Next(256);    // flags
                break;
            case 8 when l.L4 + 4 < frame.Length:
                BinaryPrimitives.WriteUInt16BigEndian(frame[(l.L4 + 2)..], (ushort)(_rng.Next(3) == 0 ? 0 : 80));    // dst port
                BinaryPrimitives.WriteUInt16BigEndian(frame[l.L4..], (ushort)(_rng.Next(3) == 0 ? 0 : _rng.Next(65536)));
                break;
            case 9 when l.L4 + 12 < frame.Length:
                // seq / ack: near, or anywhere
                uint delta = (uint)_rng.Next(-70_000, 70_000);
                int at = l.L4 + (_rng.Next(2) == 0 ? 4 : 8);
                BinaryPrimitives.WriteUInt32BigEndian(frame[at..], _rng.Next(3) == 0 ? (uint)_rng.Next() : BinaryPrimitives.ReadUInt32BigEndian(frame[at..]) + delta);
                break;
            case 10 when frame.Length >= 14:
                // a VLAN tag in front of the EtherType
                BinaryPrimitives.WriteUInt16BigEndian(frame[12..], (ushort)(new[] { 0x8100, 0x88A8, 0x9100, 0x0800, 0x86DD, 0x0806 })[_rng.Next(6)]);
                break;
            default:
                if (ip.Length > 0)
                {
                    ip[_rng.Next(Math.Min(ip.Length, 60))] = (byte)_rng.Next(256);
                }
                break;
        }
    }

    /// <summary>Replaces the TCP options with a random block of kinds and lengths (valid, truncated, zero, huge).</summary>
    private int MutateTcpOptions(Span<byte> buffer, int length)
    {
        if (!Layout.TryRead(buffer[..length], out Layout l) || l.L4 + 20 > length)
        {
            return length;
        }
        int optionBytes = 4 * _rng.Next(11);    // 0..40
        int payloadStart = l.L4 + 4 * (buffer[l.L4 + 12] >> 4);
        if (payloadStart < l.L4 + 20 || payloadStart > length)
        {
            payloadStart = l.L4 + 20;
        }
        int payload = length - payloadStart;
        int newLength = l.L4 + 20 + optionBytes + payload;
        if (newLength > buffer.Length)
        {
            return length;
        }
        buffer.Slice(payloadStart, payload).CopyTo(buffer[(l.L4 + 20 + optionBytes)..]);
        Span<byte> options = buffer.Slice(l.L4 + 20, optionBytes);
        int i = 0;
        while (i < options.Length)
        {
            byte kind = (byte)(_rng.Next(4) switch { 0 => 1, 1 => (byte)new[] { 0, 2, 3, 4, 5, 8, 30, 34 }[_rng.Next(8)], _ => (byte)_rng.Next(256) });
            options[i++] = kind;
            if (kind is 0 or 1 || i >= options.Length)
            {
                continue;
            }
            int len = _rng.Next(4) switch
            {
                0 => kind switch { 2 => 4, 3 => 3, 4 => 2, 5 => 2 + 8 * (1 + _rng.Next(4)), 8 => 10, _ => 2 },
                1 => 0,
                2 => 1,
                _ => _rng.Next(256),
            };
            options[i++] = (byte)len;
            int body = Math.Min(Math.Max(len - 2, 0), options.Length - i);
            _rng.NextBytes(options.Slice(i, body));
            i += body;
        }
        buffer[l.L4 + 12] = (byte)(((20 + optionBytes) / 4) << 4 | (buffer[l.L4 + 12] & 0x0F));
        if (l.IsV4)
        {
            BinaryPrimitives.WriteUInt16BigEndian(buffer[(l.L3 + 2)..], (ushort)(newLength - l.L3));
        }
        else
        {
            BinaryPrimitives.WriteUInt16BigEndian(buffer[(l.L3 + 4)..], (ushort)(newLength - l.L3 - 40));
        }
        return newLength;
    }

    /// <summary>Recomputes the IPv4 header checksum and the TCP checksum where the frame's layout allows.</summary>
    public static void FixChecksums(Span<byte> frame)
    {
        if (!Layout.TryRead(frame, out Layout l))
        {
            return;
        }
        Span<byte> ip = frame[l.L3..];
        int end;
        if (l.IsV4)
        {
            int ihl = 4 * (ip[0] & 0x0F);
            if (ihl < 20 || ihl > ip.Length)
            {
                return;
            }
            ip[10] = 0;
            ip[11] = 0;
            BinaryPrimitives.WriteUInt16BigEndian(ip[10..], Fold(Sum(ip[..ihl], 0)));
            end = l.L3 + BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
            if (ip[9] != 6)
            {
                return;
            }
        }
        else
        {
            if (ip[6] != 6)
            {
                return;
            }
            end = l.L3 + 40 + BinaryPrimitives.ReadUInt16BigEndian(ip[4..]);
        }
        if (end > frame.Length || end < l.L4 + 18)
        {
            return;
        }
        Span<byte> tcp = frame[l.L4..end];
        tcp[16] = 0;
        tcp[17] = 0;
        ulong sum = l.IsV4 ? Sum(ip.Slice(12, 8), 0) : Sum(ip.Slice(8, 32), 0);
        sum += 6 + (ulong)tcp.Length;
        BinaryPrimitives.WriteUInt16BigEndian(tcp[16..], Fold(Sum(tcp, sum)));
    }

    private static ulong Sum(ReadOnlySpan<byte> data, ulong sum)
    {
        int i = 0;
        for (; i + 1 < data.Length; i += 2)
        {
            sum += (ulong)(data[i] << 8 | data[i + 1]);
        }
        if (i < data.Length)
        {
            sum += (ulong)(data[i] << 8);
        }
        return sum;
    }

    private static ushort Fold(ulong sum)
    {
        while ((sum >> 16) != 0)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        return (ushort)~sum;
    }

    /// <summary>Where L3 and L4 start in a frame that looks like Ethernet (+ up to two tags) + IPv4/IPv6 (+ no extension headers).</summary>
    private readonly record struct Layout(int L3, int L4, bool IsV4)
    {
        public static bool TryRead(ReadOnlySpan<byte> frame, out Layout layout)
        {
            layout = default;
            int at = 12;
            for (int tags = 0; tags < 3; tags++)
            {
                if (frame.Length < at + 2)
                {
                    return false;
                }
                ushort type = BinaryPrimitives.ReadUInt16BigEndian(frame[at..]);
                if (type is 0x8100 or 0x88A8 or 0x9100)
                {
                    at += 4;
                    continue;
                }
                int l3 = at + 2;
                if (type == 0x0800 && frame.Length >= l3 + 20)
                {
                    int ihl = 4 * (frame[l3] & 0x0F);
                    layout = new Layout(l3, l3 + Math.Max(ihl, 20), true);
                    return true;
                }
                if (type == 0x86DD && frame.Length >= l3 + 40)
                {
                    layout = new Layout(l3, l3 + 40, false);
                    return true;
                }
                return false;
            }
            return false;
        }
    }

    private static List<byte[]> BuildSeeds(SynCookieCodec codec)
    {
        var seeds = new List<byte[]>();
        foreach (string name in CorpusNames())
        {
            seeds.Add(Corpus(name));
        }
        seeds.AddRange(LabCaptures());

        byte[] synV4 = Hex(LinuxSynV4);
        byte[] synV6 = Hex(LinuxSynV6);
        byte[] synSegment = synV4[34..];
        byte[] synSegmentV6 = synV6[54..];
        seeds.Add(synV4);
        seeds.Add(synV6);
        seeds.Add(BuildV4(synSegment, tags: [(0x8100, 100)]));
        seeds.Add(BuildV4(synSegment, tags: [(0x88A8, 1), (0x8100, 2)]));
        seeds.Add(BuildV4(synSegment, ipOptions: Hex("94040000 01010100")));
        seeds.Add(BuildV6(synSegmentV6, extensionHeaders: [.. OptionsHeader(60), .. OptionsHeader(6)], firstNextHeader: 0));
        // A bare SYN (no options) and one with data, as hping3 sends them.
        seeds.Add(BuildV4(Segment(40001, 80, 1000, 0, 0x02, 512)));
        seeds.Add(BuildV4(Segment(40002, 80, 2000, 0, 0x02, 512, payload: new byte[20])));

        // The cookie ACK for each SYN: the layers past the cookie check only see mutants of these.
        foreach (byte[] syn in seeds.ToArray())
        {
            if (PacketParser.Parse(syn, out ParsedPacket p, verifyChecksums: false) != DropReason.None
                || (p.Tcp.Flags & (TcpFlags.Syn | TcpFlags.Ack)) != TcpFlags.Syn || p.Tcp.DstPort != 80)
            {
                continue;
            }
            var options = SynOptions.FromSyn(p.Tcp);
            uint isn = codec.Encode(p.Flow, p.Tcp.Seq.Value, options, UnixMs, out uint tsVal);
            byte[] tsOption = options.Timestamps ? [1, 1, 8, 10, .. BigEndian(p.Tcp.Options.TsVal + 1), .. BigEndian(tsVal)] : [];
            uint seq = p.Tcp.Seq.Value + 1;
            uint ack = isn + 1;
            ushort sport = p.Tcp.SrcPort;
            foreach ((byte flags, byte[] payload) in new (byte, byte[])[]
            {
                (0x10, []),
                (0x18, "GET / HTTP/1.1\r\nHost: lab\r\n\r\n"u8.ToArray()),
                (0x11, []),
                (0x14, []),    // RST+ACK: never a cookie ACK
                (0x12, []),    // SYN+ACK towards us
            })
            {
                byte[] segment = Segment(sport, 80, seq, ack, flags, 502, tsOption, payload);
                seeds.Add(p.IsV4 ? BuildV4(segment, src: p.Flow.SrcAddr.ToBytes4(), dst: ServerV4)
                    : BuildV6(segment, src: p.Flow.SrcAddr.ToBytes16(), dst: ServerV6));
            }
        }
        // Random cookies, bare RST and FIN.
        seeds.Add(BuildV4(Segment(40003, 80, 5000, 0xDEADBEEF, 0x10, 502)));
        seeds.Add(BuildV4(Segment(40004, 80, 5000, 0, 0x04, 0)));
        seeds.Add(BuildV4(Segment(40005, 80, 5000, 12345, 0x11, 502)));
        seeds.Add(BuildV6(Segment(40006, 80, 5000, 0xDEADBEEF, 0x18, 502, payload: new byte[100])));
        return seeds;
    }

    /// <summary>
    /// The frames of the lab captures (Fuzz/Corpus/*.pcap, written by scripts/capture-corpus.sh: curl, wrk and hping3
    /// against the published binary), in file order, with the lab's server address (198.18.0.1, 2001:db8:18::1)
    /// moved onto the fuzzer's protected endpoint and the checksums fixed, so they reach the SYN path and the
    /// cookie check like the traffic they came from.
    /// </summary>
    public static List<byte[]> LabCaptures()
    {
        var frames = new List<byte[]>();
        foreach (string file in Directory.EnumerateFiles(CaptureDirectory(), "*.pcap").Order())
        {
            foreach (byte[] frame in ReadPcap(File.ReadAllBytes(file)))
            {
                MoveServerAddress(frame);
                FixChecksums(frame);
                frames.Add(frame);
            }
        }
        return frames;
    }

    private static readonly byte[] s_labServerV4 = [198, 18, 0, 1];
    private static readonly byte[] s_labServerV6 = Hex("20010db8001800000000000000000001");

    private static void MoveServerAddress(Span<byte> frame)
    {
        if (frame.Length < 14)
        {
            return;
        }
        ushort etherType = BinaryPrimitives.ReadUInt16BigEndian(frame[12..]);
        (int src, int dst, byte[] lab, byte[] ours) = etherType switch
        {
            0x0800 => (26, 30, s_labServerV4, ServerV4),
            0x86DD => (22, 38, s_labServerV6, ServerV6),
            _ => (0, 0, [], []),
        };
        foreach (int at in (ReadOnlySpan<int>)[src, dst])
        {
            if (lab.Length > 0 && frame.Length >= at + lab.Length && frame.Slice(at, lab.Length).SequenceEqual(lab))
            {
                ours.CopyTo(frame[at..]);
            }
        }
    }

    /// <summary>The Ethernet frames of a classic pcap file (either byte order, µs or ns stamps); truncated frames are skipped.</summary>
    internal static IEnumerable<byte[]> ReadPcap(byte[] file)
    {
        if (file.Length < 24)
        {
            throw new InvalidDataException("pcap file shorter than its header");
        }
        uint magic = BinaryPrimitives.ReadUInt32LittleEndian(file);
        bool little = magic is 0xA1B2C3D4 or 0xA1B23C4D;
        if (!little && BinaryPrimitives.ReadUInt32BigEndian(file) is not (0xA1B2C3D4 or 0xA1B23C4D))
        {
            throw new InvalidDataException("not a pcap file (magic)");
        }
        uint U32(int at) => little ? BinaryPrimitives.ReadUInt32LittleEndian(file.AsSpan(at)) : BinaryPrimitives.ReadUInt32BigEndian(file.AsSpan(at));
        if (U32(20) != 1)
        {
            throw new InvalidDataException($"pcap link type {U32(20)}, not Ethernet (1)");
        }
        var frames = new List<byte[]>();
        for (int at = 24; at + 16 <= file.Length;)
        {
            int captured = (int)U32(at + 8), original = (int)U32(at + 12);
            at += 16;
            if (captured < 0 || captured > file.Length - at)
            {
                throw new InvalidDataException("pcap record runs past the end of the file");
            }
            if (captured == original)
            {
                frames.Add(file.AsSpan(at, captured).ToArray());
            }
            at += captured;
        }
        return frames;
    }

    private static string CaptureDirectory([System.Runtime.CompilerServices.CallerFilePath] string thisFile = "")
    {
        string beside = Path.Combine(Path.GetDirectoryName(thisFile) ?? ".", "Corpus");
        if (Directory.Exists(beside))
        {
            return beside;
        }
        for (DirectoryInfo? d = new(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string candidate = Path.Combine(d.FullName, "tests", "CookieProxy.Tests", "Fuzz", "Corpus");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }
        throw new DirectoryNotFoundException("fuzz capture corpus (tests/CookieProxy.Tests/Fuzz/Corpus) not found");
    }

    private static byte[] BigEndian(uint value)
    {
        byte[] b = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, value);
        return b;
    }
}

internal static class IpAddrBytes
{
    public static byte[] ToBytes4(this IpAddr a)
    {
        byte[] b = new byte[4];
        BinaryPrimitives.WriteUInt32BigEndian(b, a.V4);
        return b;
    }

    public static byte[] ToBytes16(this IpAddr a)
    {
        byte[] b = new byte[16];
        BinaryPrimitives.WriteUInt64BigEndian(b, a.Hi);
        BinaryPrimitives.WriteUInt64BigEndian(b.AsSpan(8), a.Lo);
        return b;
    }
}
