using System.Buffers.Binary;
using System.Globalization;
using System.Runtime.CompilerServices;

namespace CookieProxy.Tests.Wire;

/// <summary>
/// Real frames (tcpdump -xx of curl against a Linux listener over a veth pair in a private netns, see
/// Corpus/) and a small independent frame assembler for the variants, with a naive reference checksum so the
/// production checksum is never used to build its own test input.
/// </summary>
internal static class WireTestFrames
{
    // 198.19.77.1.52276 > 198.19.77.2.80: Flags [S], seq 2846813053, win 64240,
    // options [mss 1460,sackOK,TS val 180637476 ecr 0,nop,wscale 10], ttl 64, id 10270, DF
    public const string LinuxSynV4 =
        "ae39131312bf fa9b4d126a1d 0800" +
        "4500003c281e40004006ec73c6134d01c6134d02" +
        "cc340050a9aeeb7d00000000a002faf06b480000" +
        "020405b40402080a0ac44f24000000000103030a";

    // 198.19.77.2.80 > 198.19.77.1.52276: Flags [S.], seq 3486402050, ack 2846813054, win 65160,
    // options [mss 1460,sackOK,TS val 4287047038 ecr 180637476,nop,wscale 10], ttl 64, id 0, DF
    public const string LinuxSynAckV4 =
        "fa9b4d126a1d ae39131312bf 0800" +
        "4500003c0000400040061492c6134d02c6134d01" +
        "0050cc34cfce4602a9aeeb7ea012fe882cc80000" +
        "020405b40402080aff87257e0ac44f240103030a";

    // fd00:77::1.55514 > fd00:77::2.80: Flags [S], seq 3418860433, win 64800,
    // options [mss 1440,sackOK,TS val 2972049619 ecr 0,nop,wscale 10], flowlabel 0x3dd27, hlim 64
    public const string LinuxSynV6 =
        "ae39131312bf fa9b4d126a1d 86dd" +
        "6003dd2700280640 fd000077000000000000000000000001 fd000077000000000000000000000002" +
        "d8da0050cbc7ab9100000000a002fd206d800000" +
        "020405a00402080ab125e0d3000000000103030a";

    // fd00:77::2.80 > fd00:77::1.55514: Flags [S.], seq 309955882, ack 3418860434, win 64260,
    // options [mss 1440,sackOK,TS val 272860811 ecr 2972049619,nop,wscale 10], flowlabel 0xe3c60
    public const string LinuxSynAckV6 =
        "fa9b4d126a1d ae39131312bf 86dd" +
        "600e3c6000280640 fd000077000000000000000000000002 fd000077000000000000000000000001" +
        "0050d8da12798d2acbc7ab92a012fb0439190000" +
        "020405a00402080a1043868bb125e0d30103030a";

    public static readonly byte[] ClientMac = Hex("fa9b4d126a1d");
    public static readonly byte[] ServerMac = Hex("ae39131312bf");
    public static readonly byte[] ClientV4 = [198, 19, 77, 1];
    public static readonly byte[] ServerV4 = [198, 19, 77, 2];
    public static readonly byte[] ClientV6 = Hex("fd000077000000000000000000000001");
    public static readonly byte[] ServerV6 = Hex("fd000077000000000000000000000002");

    /// <summary>The TCP segment (header + options) of the Linux IPv4 SYN, checksum included.</summary>
    public static byte[] LinuxSynSegment() => Hex(LinuxSynV4)[34..];

    /// <summary>Parses hex, ignoring whitespace and '#' comment lines.</summary>
    public static byte[] Hex(string text)
    {
        var digits = new System.Text.StringBuilder();
        foreach (string line in text.Split('\n'))
        {
            string l = line.Trim();
            if (l.StartsWith('#'))
            {
                continue;
            }
            foreach (char c in l)
            {
                if (!char.IsWhiteSpace(c))
                {
                    digits.Append(c);
                }
            }
        }
        return Convert.FromHexString(digits.ToString());
    }

    /// <summary>
    /// The corpus sits beside this source file; if a CI build remapped source paths, walk up from the test
    /// binaries to the repository instead.
    /// </summary>
    public static string CorpusDirectory([CallerFilePath] string thisFile = "")
    {
        string beside = Path.Combine(Path.GetDirectoryName(thisFile) ?? ".", "Corpus");
        if (Directory.Exists(beside))
        {
            return beside;
        }
        for (DirectoryInfo? d = new(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string candidate = Path.Combine(d.FullName, "tests", "CookieProxy.Tests", "Wire", "Corpus");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }
        throw new DirectoryNotFoundException("Wire test corpus not found");
    }

    public static IEnumerable<string> CorpusNames() =>
        Directory.EnumerateFiles(CorpusDirectory(), "*.hex").Select(Path.GetFileNameWithoutExtension).Order().Select(n => n!);

    public static byte[] Corpus(string name) => Hex(File.ReadAllText(Path.Combine(CorpusDirectory(), name + ".hex")));

    /// <summary>The RFC 1071 sum written the slow, obvious way: 16-bit big-endian words, end-around carry.</summary>
    public static ushort ReferenceChecksum(params byte[][] parts)
    {
        byte[] all = parts.SelectMany(p => p).ToArray();
        long sum = 0;
        for (int i = 0; i < all.Length; i += 2)
        {
            int word = all[i] << 8;
            if (i + 1 < all.Length)
            {
                word |= all[i + 1];
            }
            sum += word;
        }
        while ((sum >> 16) != 0)
        {
            sum = (sum & 0xFFFF) + (sum >> 16);
        }
        return (ushort)~sum;
    }

    public static byte[] PseudoHeader(byte[] src, byte[] dst, int length)
    {
        if (src.Length == 4)
        {
            return [.. src, .. dst, 0, 6, (byte)(length >> 8), (byte)length];
        }
        return [.. src, .. dst, 0, 0, (byte)(length >> 8), (byte)length, 0, 0, 0, 6];
    }

    /// <summary>Fills the TCP checksum of <paramref name="segment"/> in place with the reference algorithm.</summary>
    public static void FixTcpChecksum(byte[] segment, byte[] src, byte[] dst)
    {
        segment[16] = 0;
        segment[17] = 0;
        ushort c = ReferenceChecksum(PseudoHeader(src, dst, segment.Length), segment);
        BinaryPrimitives.WriteUInt16BigEndian(segment.AsSpan(16), c);
    }

    public static byte[] Ethernet(ushort etherType, params (ushort Tpid, ushort Tci)[] tags)
    {
        var b = new List<byte>();
        b.AddRange(ServerMac);
        b.AddRange(ClientMac);
        foreach ((ushort tpid, ushort tci) in tags)
        {
            b.Add((byte)(tpid >> 8));
            b.Add((byte)tpid);
            b.Add((byte)(tci >> 8));
            b.Add((byte)tci);
        }
        b.Add((byte)(etherType >> 8));
        b.Add((byte)etherType);
        return b.ToArray();
    }

    /// <summary>Client to server IPv4 frame around a TCP segment; checksums filled unless told otherwise.</summary>
    public static byte[] BuildV4(
        byte[] segment,
        byte[]? ipOptions = null,
        (ushort, ushort)[]? tags = null,
        byte[]? src = null,
        byte[]? dst = null,
        int padding = 0,
        byte protocol = 6,
        ushort flagsFragment = 0x4000,
        bool fixTcpChecksum = true)
    {
        src ??= ClientV4;
        dst ??= ServerV4;
        ipOptions ??= [];
        segment = (byte[])segment.Clone();
        if (fixTcpChecksum)
        {
            FixTcpChecksum(segment, src, dst);
        }
        int ihl = 20 + ipOptions.Length;
        byte[] ip = new byte[ihl];
        ip[0] = (byte)(0x40 | (ihl / 4));
        BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(2), (ushort)(ihl + segment.Length));
        BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(4), 0x281e);
        BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(6), flagsFragment);
        ip[8] = 64;
        ip[9] = protocol;
        src.CopyTo(ip, 12);
        dst.CopyTo(ip, 16);
        ipOptions.CopyTo(ip, 20);
        BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(10), ReferenceChecksum(ip));
        return [.. Ethernet(0x0800, tags ?? []), .. ip, .. segment, .. new byte[padding]];
    }

    /// <summary>
    /// Client to server IPv6 frame; <paramref name="extensionHeaders"/> is the raw chain whose first header
    /// type is <paramref name="firstNextHeader"/> (each header's own Next Header byte must already be set).
    /// </summary>
    public static byte[] BuildV6(
        byte[] segment,
        byte[]? extensionHeaders = null,
        byte firstNextHeader = 6,
        (ushort, ushort)[]? tags = null,
        byte[]? src = null,
        byte[]? dst = null,
        int padding = 0,
        bool fixTcpChecksum = true)
    {
        src ??= ClientV6;
        dst ??= ServerV6;
        extensionHeaders ??= [];
        segment = (byte[])segment.Clone();
        if (fixTcpChecksum)
        {
            FixTcpChecksum(segment, src, dst);
        }
        byte[] ip = new byte[40];
        BinaryPrimitives.WriteUInt32BigEndian(ip, 0x6003dd27);
        BinaryPrimitives.WriteUInt16BigEndian(ip.AsSpan(4), (ushort)(extensionHeaders.Length + segment.Length));
        ip[6] = firstNextHeader;
        ip[7] = 64;
        src.CopyTo(ip, 8);
        dst.CopyTo(ip, 24);
        return [.. Ethernet(0x86DD, tags ?? []), .. ip, .. extensionHeaders, .. segment, .. new byte[padding]];
    }

    /// <summary>An 8-byte Hop-by-Hop or Destination Options header carrying a PadN option.</summary>
    public static byte[] OptionsHeader(byte nextHeader) => [nextHeader, 0, 1, 4, 0, 0, 0, 0];

    /// <summary>A TCP segment with the given fields and raw options (checksum left zero).</summary>
    public static byte[] Segment(ushort srcPort, ushort dstPort, uint seq, uint ack, byte flags, ushort window, byte[]? options = null, byte[]? payload = null)
    {
        options ??= [];
        payload ??= [];
        int hl = 20 + options.Length;
        byte[] s = new byte[hl + payload.Length];
        BinaryPrimitives.WriteUInt16BigEndian(s, srcPort);
        BinaryPrimitives.WriteUInt16BigEndian(s.AsSpan(2), dstPort);
        BinaryPrimitives.WriteUInt32BigEndian(s.AsSpan(4), seq);
        BinaryPrimitives.WriteUInt32BigEndian(s.AsSpan(8), ack);
        s[12] = (byte)((hl / 4) << 4);
        s[13] = flags;
        BinaryPrimitives.WriteUInt16BigEndian(s.AsSpan(14), window);
        options.CopyTo(s, 20);
        payload.CopyTo(s, hl);
        return s;
    }

    public static string ToHex(ReadOnlySpan<byte> b) => Convert.ToHexString(b).ToLower(CultureInfo.InvariantCulture);
}
