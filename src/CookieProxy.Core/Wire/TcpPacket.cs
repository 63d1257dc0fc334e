using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using CookieProxy.Diagnostics;
using CookieProxy.Tcp;

namespace CookieProxy.Wire;

/// <summary>
/// A view over a TCP segment (RFC 9293 3.1). Accessors do not validate; call <see cref="Validate"/> first
/// on untrusted input.
/// </summary>
/// <remarks>
/// <code>
/// |          Source Port          |       Destination Port        |
/// |                        Sequence Number                        |
/// |                    Acknowledgment Number                      |
/// |  Data |       |C|E|U|A|P|R|S|F|                               |
/// | Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
/// |           Checksum            |         Urgent Pointer        |
/// |                    Options                    |    Padding    |
/// </code>
/// </remarks>
public readonly ref struct TcpPacket
{
    public const int SrcPortOffset = 0;
    public const int DstPortOffset = 2;
    public const int SeqOffset = 4;
    public const int AckOffset = 8;
    public const int DataOffsetOffset = 12;
    public const int FlagsOffset = 13;
    public const int WindowOffset = 14;
    public const int ChecksumOffset = 16;
    public const int UrgentOffset = 18;
    public const int MinHeaderLength = 20;
    public const int MaxHeaderLength = 60;
    public const int MaxOptionsLength = MaxHeaderLength - MinHeaderLength;

    private readonly Span<byte> _buffer;

    /// <param name="segment">The TCP header and payload, trimmed to the IP-declared length.</param>
    public TcpPacket(Span<byte> segment) => _buffer = segment;

    public Span<byte> Buffer => _buffer;

    public ushort SrcPort
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => BinaryPrimitives.ReadUInt16BigEndian(_buffer.Slice(SrcPortOffset));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => BinaryPrimitives.WriteUInt16BigEndian(_buffer.Slice(SrcPortOffset), value);
    }

    public ushort DstPort
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => BinaryPrimitives.ReadUInt16BigEndian(_buffer.Slice(DstPortOffset));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => BinaryPrimitives.WriteUInt16BigEndian(_buffer.Slice(DstPortOffset), value);
    }

    public SeqNumber Seq
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => new(BinaryPrimitives.ReadUInt32BigEndian(_buffer.Slice(SeqOffset)));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => BinaryPrimitives.WriteUInt32BigEndian(_buffer.Slice(SeqOffset), value.Value);
    }

    public SeqNumber Ack
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => new(BinaryPrimitives.ReadUInt32BigEndian(_buffer.Slice(AckOffset)));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => BinaryPrimitives.WriteUInt32BigEndian(_buffer.Slice(AckOffset), value.Value);
    }

    /// <summary>Header length in 32-bit words.</summary>
    public byte DataOffset
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => (byte)(_buffer[DataOffsetOffset] >> 4);
    }

    public int HeaderLength
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => DataOffset * 4;
    }

    /// <summary>Writes the data offset for a header of <paramref name="headerLength"/> bytes; clears the reserved bits.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void SetHeaderLength(int headerLength) => _buffer[DataOffsetOffset] = (byte)((headerLength >> 2) << 4);

    public TcpFlags Flags
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => (TcpFlags)_buffer[FlagsOffset];
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => _buffer[FlagsOffset] = (byte)value;
    }

    public ushort Window
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => BinaryPrimitives.ReadUInt16BigEndian(_buffer.Slice(WindowOffset));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => BinaryPrimitives.WriteUInt16BigEndian(_buffer.Slice(WindowOffset), value);
    }

    public ushort Checksum
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => BinaryPrimitives.ReadUInt16BigEndian(_buffer.Slice(ChecksumOffset));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => BinaryPrimitives.WriteUInt16BigEndian(_buffer.Slice(ChecksumOffset), value);
    }

    public ushort UrgentPointer
    {
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        get => BinaryPrimitives.ReadUInt16BigEndian(_buffer.Slice(UrgentOffset));
        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        set => BinaryPrimitives.WriteUInt16BigEndian(_buffer.Slice(UrgentOffset), value);
    }

    public Span<byte> Options => _buffer.Slice(MinHeaderLength, HeaderLength - MinHeaderLength);

    public Span<byte> Payload => _buffer.Slice(HeaderLength);

    /// <summary>Checks that the segment holds a header and that the data offset fits (RFC 9293 3.1).</summary>
    public static DropReason Validate(ReadOnlySpan<byte> segment)
    {
        if (segment.Length < MinHeaderLength)
        {
            return DropReason.TcpTooShort;
        }
        int headerLength = (segment[DataOffsetOffset] >> 4) * 4;
        if (headerLength < MinHeaderLength || headerLength > segment.Length)
        {
            return DropReason.TcpBadDataOffset;
        }
        return DropReason.None;
    }

    /// <summary>Header length (20 + options) that <see cref="Emit"/> writes for <paramref name="repr"/>.</summary>
    public static int HeaderLengthFor(in TcpRepr repr) =>
        MinHeaderLength + TcpOptionsWriter.Length(repr.Options, (repr.Flags & TcpFlags.Syn) != 0);

    /// <summary>
    /// Writes the header of <paramref name="repr"/> (options by <see cref="TcpOptionsWriter"/>, checksum field
    /// zero) at the start of <paramref name="segment"/>; returns the header length, or 0 if it does not fit.
    /// The checksum needs the payload and the addresses: see <see cref="Checksum.Tcp"/>.
    /// </summary>
    public static int Emit(Span<byte> segment, in TcpRepr repr)
    {
        bool isSyn = (repr.Flags & TcpFlags.Syn) != 0;
        int headerLength = MinHeaderLength + TcpOptionsWriter.Length(repr.Options, isSyn);
        if (segment.Length < headerLength)
        {
            return 0;
        }
        var view = new TcpPacket(segment);
        view.SrcPort = repr.SrcPort;
        view.DstPort = repr.DstPort;
        view.Seq = repr.Seq;
        view.Ack = repr.Ack;
        view.SetHeaderLength(headerLength);
        view.Flags = repr.Flags;
        view.Window = repr.Window;
        view.Checksum = 0;
        view.UrgentPointer = repr.UrgentPointer;
        TcpOptionsWriter.Write(segment.Slice(MinHeaderLength, headerLength - MinHeaderLength), repr.Options, isSyn);
        return headerLength;
    }

    /// <summary>Fills the fixed fields and options of <paramref name="repr"/> from a validated segment.</summary>
    public DropReason ToRepr(out TcpRepr repr)
    {
        // Every field is assigned (no "repr = default"): the parser runs per captured frame.
        repr.SrcPort = SrcPort;
        repr.DstPort = DstPort;
        repr.Seq = Seq;
        repr.Ack = Ack;
        repr.Flags = Flags;
        repr.Window = Window;
        repr.UrgentPointer = UrgentPointer;
        return TcpOptionsReader.Parse(Options, out repr.Options);
    }
}
