using System.Buffers.Binary;
using System.Net;

namespace CookieProxy.EndToEnd.Infrastructure;

/// <summary>One IPv4 or IPv6 TCP segment from a capture, with its checksums verified (when fully captured);
/// <see cref="VlanId"/> is the 802.1Q VLAN it was tagged with, -1 when untagged. IPv6 has no header checksum:
/// <see cref="IpChecksumOk"/> is true for it.</summary>
public readonly record struct CapturedTcp(
    IPAddress Source,
    IPAddress Destination,
    ushort SourcePort,
    ushort DestinationPort,
    uint Seq,
    uint Ack,
    byte Flags,
    ushort Window,
    int OptionsLength,
    int PayloadLength,
    bool IpChecksumOk,
    bool? TcpChecksumOk,
    int VlanId = -1)
{
    public const byte Fin = 0x01;
    public const byte Syn = 0x02;
    public const byte Rst = 0x04;
    public const byte Psh = 0x08;
    public const byte AckFlag = 0x10;

    public bool IsSynOnly => (Flags & (Syn | AckFlag | Rst | Fin)) == Syn;

    public bool IsSynAck => (Flags & (Syn | AckFlag | Rst | Fin)) == (Syn | AckFlag);

    public bool IsRst => (Flags & Rst) != 0;
}

/// <summary>
/// A minimal reader for classic pcap files (as written by <c>tcpdump -w</c>) with Ethernet framing,
/// enough to count and validate the SYN / SYN+ACK exchange of a flood without trusting the proxy.
/// </summary>
public static class PcapFile
{
    private const uint MagicMicros = 0xa1b2c3d4;
    private const uint MagicNanos = 0xa1b23c4d;
    private const int LinkTypeEthernet = 1;
    private const int EthernetHeaderLength = 14;
    private const ushort EtherTypeIPv4 = 0x0800;
    private const ushort EtherTypeIPv6 = 0x86dd;
    private const ushort EtherTypeVlan = 0x8100;
    private const int Ipv6HeaderLength = 40;

    public static List<CapturedTcp> ReadTcp(string path)
    {
        byte[] file = File.ReadAllBytes(path);
        var result = new List<CapturedTcp>();
        if (file.Length < 24)
        {
            throw new InvalidDataException($"{path}: {file.Length} bytes, no pcap header");
        }

        uint magic = BinaryPrimitives.ReadUInt32LittleEndian(file);
        bool swapped;
        if (magic is MagicMicros or MagicNanos)
        {
            swapped = false;
        }
        else if (BinaryPrimitives.ReverseEndianness(magic) is MagicMicros or MagicNanos)
        {
            swapped = true;
        }
        else
        {
            throw new InvalidDataException($"{path}: not a classic pcap file (magic {magic:x8})");
        }

        uint linkType = Read32(file.AsSpan(20), swapped);
        if (linkType != LinkTypeEthernet)
        {
            throw new InvalidDataException($"{path}: link type {linkType}, expected Ethernet");
        }

        int offset = 24;
        while (offset + 16 <= file.Length)
        {
            int captured = (int)Read32(file.AsSpan(offset + 8), swapped);
            offset += 16;
            if (captured < 0 || offset + captured > file.Length)
            {
                break; // Truncated last record (tcpdump killed mid-write).
            }

            if (TryParse(file.AsSpan(offset, captured), out CapturedTcp tcp))
            {
                result.Add(tcp);
            }

            offset += captured;
        }

        return result;
    }

    private static uint Read32(ReadOnlySpan<byte> b, bool swapped) =>
        swapped ? BinaryPrimitives.ReadUInt32BigEndian(b) : BinaryPrimitives.ReadUInt32LittleEndian(b);

    private static bool TryParse(ReadOnlySpan<byte> frame, out CapturedTcp tcp)
    {
        tcp = default;
        if (frame.Length < EthernetHeaderLength + 20)
        {
            return false;
        }

        // One 802.1Q tag (the lab's VLAN trunk); tcpdump writes it into the frame as it was on the wire.
        int l3 = EthernetHeaderLength;
        int vlan = -1;
        ushort etherType = BinaryPrimitives.ReadUInt16BigEndian(frame[12..]);
        if (etherType == EtherTypeVlan && frame.Length >= EthernetHeaderLength + 4 + 20)
        {
            vlan = BinaryPrimitives.ReadUInt16BigEndian(frame[14..]) & 0x0fff;
            etherType = BinaryPrimitives.ReadUInt16BigEndian(frame[16..]);
            l3 += 4;
        }

        if (etherType == EtherTypeIPv6)
        {
            return TryParseIpv6(frame[l3..], vlan, out tcp);
        }

        if (etherType != EtherTypeIPv4)
        {
            return false;
        }

        ReadOnlySpan<byte> ip = frame[l3..];
        int ihl = (ip[0] & 0x0f) * 4;
        int totalLength = BinaryPrimitives.ReadUInt16BigEndian(ip[2..]);
        if ((ip[0] >> 4) != 4 || ihl < 20 || ip[9] != 6 || totalLength < ihl + 20 || ip.Length < ihl + 20)
        {
            return false;
        }

        bool ipOk = Fold(Sum(ip[..ihl], 0)) == 0xffff;
        ReadOnlySpan<byte> seg = ip[ihl..];
        int dataOffset = (seg[12] >> 4) * 4;
        int segmentLength = totalLength - ihl;
        bool? tcpOk = null;
        if (ip.Length >= totalLength)
        {
            // RFC 9293 3.1: the checksum covers a pseudo-header (src, dst, zero, protocol, TCP length).
            uint sum = Sum(ip.Slice(12, 8), 0);
            sum += 6u + (uint)segmentLength;
            sum = Sum(seg[..segmentLength], sum);
            tcpOk = Fold(sum) == 0xffff;
        }

        tcp = new CapturedTcp(
            new IPAddress(ip.Slice(12, 4)),
            new IPAddress(ip.Slice(16, 4)),
            BinaryPrimitives.ReadUInt16BigEndian(seg),
            BinaryPrimitives.ReadUInt16BigEndian(seg[2..]),
            BinaryPrimitives.ReadUInt32BigEndian(seg[4..]),
            BinaryPrimitives.ReadUInt32BigEndian(seg[8..]),
            seg[13],
            BinaryPrimitives.ReadUInt16BigEndian(seg[14..]),
            Math.Max(0, dataOffset - 20),
            segmentLength - dataOffset,
            ipOk,
            dataOffset >= 20 && dataOffset <= segmentLength ? tcpOk : false,
            vlan);
        return true;
    }

    /// <summary>IPv6 with TCP right after the fixed header (no extension headers: what the lab's stacks send).</summary>
    private static bool TryParseIpv6(ReadOnlySpan<byte> ip, int vlan, out CapturedTcp tcp)
    {
        tcp = default;
        if (ip.Length < Ipv6HeaderLength + 20 || (ip[0] >> 4) != 6 || ip[6] != 6)
        {
            return false;
        }

        int segmentLength = BinaryPrimitives.ReadUInt16BigEndian(ip[4..]);
        ReadOnlySpan<byte> seg = ip[Ipv6HeaderLength..];
        int dataOffset = (seg[12] >> 4) * 4;
        bool? tcpOk = null;
        if (ip.Length >= Ipv6HeaderLength + segmentLength)
        {
            // RFC 8200 8.1: source, destination, upper-layer length, next header.
            uint sum = Sum(ip.Slice(8, 32), 0);
            sum += 6u + (uint)segmentLength;
            sum = Sum(seg[..segmentLength], sum);
            tcpOk = Fold(sum) == 0xffff;
        }

        tcp = new CapturedTcp(
            new IPAddress(ip.Slice(8, 16)),
            new IPAddress(ip.Slice(24, 16)),
            BinaryPrimitives.ReadUInt16BigEndian(seg),
            BinaryPrimitives.ReadUInt16BigEndian(seg[2..]),
            BinaryPrimitives.ReadUInt32BigEndian(seg[4..]),
            BinaryPrimitives.ReadUInt32BigEndian(seg[8..]),
            seg[13],
            BinaryPrimitives.ReadUInt16BigEndian(seg[14..]),
            Math.Max(0, dataOffset - 20),
            segmentLength - dataOffset,
            true,
            dataOffset >= 20 && dataOffset <= segmentLength ? tcpOk : false,
            vlan);
        return true;
    }

    // RFC 1071 one's-complement sum over 16-bit big-endian words.
    private static uint Sum(ReadOnlySpan<byte> data, uint sum)
    {
        int i = 0;
        for (; i + 1 < data.Length; i += 2)
        {
            sum += BinaryPrimitives.ReadUInt16BigEndian(data[i..]);
        }

        if (i < data.Length)
        {
            sum += (uint)data[i] << 8;
        }

        return sum;
    }

    private static ushort Fold(uint sum)
    {
        while (sum > 0xffff)
        {
            sum = (sum & 0xffff) + (sum >> 16);
        }

        return (ushort)sum;
    }
}
