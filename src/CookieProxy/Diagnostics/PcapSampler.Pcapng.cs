// pcapng blocks, as the IETF draft "PCAP Next Generation (pcapng) Capture File Format"
// (draft-ietf-opsawg-pcapng) defines them. We write one section per file: a Section Header Block, one Interface
// Description Block (LINKTYPE_ETHERNET) and then an Enhanced Packet Block per frame, with the drop reason in the
// packet's opt_comment. Everything is little-endian; the byte-order magic tells readers so.
//
//   block:   | type u32 | total length u32 | body ... padded to 4 | options | total length u32 |
//   option:  | code u16 | length u16 | value ... padded to 4 |      opt_endofopt = code 0, length 0

using System.Buffers.Binary;
using System.Text;

namespace CookieProxy.Host.Diagnostics;

/// <summary>Encodes the pcapng blocks the sampler writes, into caller buffers (no allocation per packet).</summary>
internal static class Pcapng
{
    public const uint SectionHeaderType = 0x0A0D0D0A;
    public const uint InterfaceDescriptionType = 0x00000001;
    public const uint EnhancedPacketType = 0x00000006;
    public const uint ByteOrderMagic = 0x1A2B3C4D;

    /// <summary>LINKTYPE_ETHERNET (tcpdump.org link-layer header types).</summary>
    public const ushort LinkTypeEthernet = 1;

    public const ushort OptEndOfOpt = 0;
    public const ushort OptComment = 1;
    public const ushort ShbUserAppl = 4;
    public const ushort IfName = 2;
    public const ushort IfTsResol = 9;

    /// <summary>An EPB's size around its packet bytes and comment: header 28, trailer 4, end-of-options 4, comment option header 4.</summary>
    public const int EnhancedPacketOverhead = 28 + 4 + 4 + 4;

    public static int Pad4(int n) => (n + 3) & ~3;

    /// <summary>The largest EPB a frame of <paramref name="captured"/> bytes with a comment of <paramref name="commentBytes"/> makes.</summary>
    public static int EnhancedPacketLength(int captured, int commentBytes) =>
        EnhancedPacketOverhead + Pad4(captured) + Pad4(commentBytes);

    /// <summary>Section Header Block with shb_userappl. Returns the bytes written.</summary>
    public static int WriteSectionHeader(Span<byte> dst, string application)
    {
        int at = 8;
        BinaryPrimitives.WriteUInt32LittleEndian(dst[at..], ByteOrderMagic);
        BinaryPrimitives.WriteUInt16LittleEndian(dst[(at + 4)..], 1);     // major version
        BinaryPrimitives.WriteUInt16LittleEndian(dst[(at + 6)..], 0);     // minor version
        BinaryPrimitives.WriteInt64LittleEndian(dst[(at + 8)..], -1);     // section length: not given
        at += 16;
        at += WriteOption(dst[at..], ShbUserAppl, application);
        at += WriteEndOfOptions(dst[at..]);
        return Close(dst, SectionHeaderType, at);
    }

    /// <summary>Interface Description Block for an Ethernet interface, microsecond timestamps.</summary>
    public static int WriteInterfaceDescription(Span<byte> dst, string interfaceName, int snapLength)
    {
        int at = 8;
        BinaryPrimitives.WriteUInt16LittleEndian(dst[at..], LinkTypeEthernet);
        BinaryPrimitives.WriteUInt16LittleEndian(dst[(at + 2)..], 0);     // reserved
        BinaryPrimitives.WriteUInt32LittleEndian(dst[(at + 4)..], (uint)snapLength);
        at += 8;
        at += WriteOption(dst[at..], IfName, interfaceName);
        // if_tsresol 6: 10^-6 s, the default, written anyway so no reader has to assume it.
        BinaryPrimitives.WriteUInt16LittleEndian(dst[at..], IfTsResol);
        BinaryPrimitives.WriteUInt16LittleEndian(dst[(at + 2)..], 1);
        dst[at + 4] = 6;
        dst.Slice(at + 5, 3).Clear();
        at += 8;
        at += WriteEndOfOptions(dst[at..]);
        return Close(dst, InterfaceDescriptionType, at);
    }

    /// <summary>Enhanced Packet Block on interface 0 with an opt_comment (UTF-8 bytes, not NUL-terminated).</summary>
    public static int WriteEnhancedPacket(Span<byte> dst, long unixMicroseconds, ReadOnlySpan<byte> frame, int originalLength,
        ReadOnlySpan<byte> comment)
    {
        int at = 8;
        ulong ts = (ulong)unixMicroseconds;
        BinaryPrimitives.WriteUInt32LittleEndian(dst[at..], 0);                          // interface id
        BinaryPrimitives.WriteUInt32LittleEndian(dst[(at + 4)..], (uint)(ts >> 32));
        BinaryPrimitives.WriteUInt32LittleEndian(dst[(at + 8)..], (uint)ts);
        BinaryPrimitives.WriteUInt32LittleEndian(dst[(at + 12)..], (uint)frame.Length);  // captured
        BinaryPrimitives.WriteUInt32LittleEndian(dst[(at + 16)..], (uint)originalLength);
        at += 20;
        frame.CopyTo(dst[at..]);
        int padded = Pad4(frame.Length);
        dst.Slice(at + frame.Length, padded - frame.Length).Clear();
        at += padded;
        if (!comment.IsEmpty)
        {
            at += WriteOption(dst[at..], OptComment, comment);
        }
        at += WriteEndOfOptions(dst[at..]);
        return Close(dst, EnhancedPacketType, at);
    }

    /// <summary>A string option (written once per file, so the encoding may allocate).</summary>
    private static int WriteOption(Span<byte> dst, ushort code, string value) => WriteOption(dst, code, Encoding.UTF8.GetBytes(value));

    private static int WriteOption(Span<byte> dst, ushort code, ReadOnlySpan<byte> value)
    {
        BinaryPrimitives.WriteUInt16LittleEndian(dst, code);
        BinaryPrimitives.WriteUInt16LittleEndian(dst[2..], (ushort)value.Length);
        value.CopyTo(dst[4..]);
        int padded = Pad4(value.Length);
        dst.Slice(4 + value.Length, padded - value.Length).Clear();
        return 4 + padded;
    }

    private static int WriteEndOfOptions(Span<byte> dst)
    {
        BinaryPrimitives.WriteUInt32LittleEndian(dst, 0);
        return 4;
    }

    /// <summary>Fills in the type and both length fields of a block whose body ends at <paramref name="end"/>.</summary>
    private static int Close(Span<byte> dst, uint type, int end)
    {
        int total = end + 4;
        BinaryPrimitives.WriteUInt32LittleEndian(dst, type);
        BinaryPrimitives.WriteUInt32LittleEndian(dst[4..], (uint)total);
        BinaryPrimitives.WriteUInt32LittleEndian(dst[end..], (uint)total);
        return total;
    }
}
