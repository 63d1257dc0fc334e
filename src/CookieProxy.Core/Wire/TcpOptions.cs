using System.Buffers.Binary;
using CookieProxy.Diagnostics;
using CookieProxy.Tcp;

namespace CookieProxy.Wire;

/// <summary>TCP option kinds and fixed lengths (RFC 9293 3.2, RFC 7323, RFC 2018).</summary>
public static class TcpOptionKind
{
    public const byte EndOfList = 0;
    public const byte Nop = 1;
    public const byte Mss = 2;
    public const byte WindowScale = 3;
    public const byte SackPermitted = 4;
    public const byte Sack = 5;
    public const byte Timestamps = 8;

    public const int MssLength = 4;
    public const int WindowScaleLength = 3;
    public const int SackPermittedLength = 2;
    public const int TimestampsLength = 10;
    public const int SackBlockLength = 8;

    /// <summary>RFC 7323 2.3: a shift above 14 is treated as 14.</summary>
    public const int MaxWindowScale = 14;

    /// <summary>RFC 2018 3: 4 blocks fill 34 of the 40 option bytes.</summary>
    public const int MaxSackBlocks = 4;
}

/// <summary>Parses TCP options into a <see cref="TcpOptionsRepr"/> without allocating.</summary>
public static class TcpOptionsReader
{
    /// <summary>
    /// Parses the options area of a TCP header. EOL ends the list (RFC 9293 3.1); NOP is one byte; every
    /// other kind carries a length that must be at least 2 and stay inside the area; known kinds must have
    /// their fixed length (RFC 9293 3.2: a malformed option is reason to drop the segment). Unknown kinds
    /// are skipped. A later duplicate overrides an earlier one.
    /// </summary>
    public static DropReason Parse(ReadOnlySpan<byte> options, out TcpOptionsRepr repr)
    {
        repr = default;
        repr.WindowScale = -1; // as TcpOptionsRepr.None, without a temporary copy
        int i = 0;
        while (i < options.Length)
        {
            byte kind = options[i];
            if (kind == TcpOptionKind.EndOfList)
            {
                break;
            }
            if (kind == TcpOptionKind.Nop)
            {
                i++;
                continue;
            }
            if (options.Length - i < 2)
            {
                return DropReason.TcpOptionMalformed;
            }
            int length = options[i + 1];
            if (length < 2 || length > options.Length - i)
            {
                return DropReason.TcpOptionMalformed;
            }
            ReadOnlySpan<byte> body = options.Slice(i + 2, length - 2);
            switch (kind)
            {
                case TcpOptionKind.Mss:
                    if (length != TcpOptionKind.MssLength)
                    {
                        return DropReason.TcpOptionMalformed;
                    }
                    repr.Mss = BinaryPrimitives.ReadUInt16BigEndian(body);
                    break;

                case TcpOptionKind.WindowScale:
                    if (length != TcpOptionKind.WindowScaleLength)
                    {
                        return DropReason.TcpOptionMalformed;
                    }
                    repr.WindowScale = (sbyte)Math.Min((int)body[0], TcpOptionKind.MaxWindowScale); // RFC 7323 2.3
                    break;

                case TcpOptionKind.SackPermitted:
                    if (length != TcpOptionKind.SackPermittedLength)
                    {
                        return DropReason.TcpOptionMalformed;
                    }
                    repr.SackPermitted = true;
                    break;

                case TcpOptionKind.Sack:
                {
                    int blocks = (length - 2) / TcpOptionKind.SackBlockLength;
                    if ((length - 2) % TcpOptionKind.SackBlockLength != 0 || blocks == 0 || blocks > TcpOptionKind.MaxSackBlocks)
                    {
                        return DropReason.TcpOptionMalformed;
                    }
                    for (int b = 0; b < blocks; b++)
                    {
                        ReadOnlySpan<byte> block = body.Slice(b * TcpOptionKind.SackBlockLength, TcpOptionKind.SackBlockLength);
                        repr.Sack[b] = new SackBlock(
                            new SeqNumber(BinaryPrimitives.ReadUInt32BigEndian(block)),
                            new SeqNumber(BinaryPrimitives.ReadUInt32BigEndian(block.Slice(4))));
                    }
                    repr.SackCount = (byte)blocks;
                    break;
                }

                case TcpOptionKind.Timestamps:
                    if (length != TcpOptionKind.TimestampsLength)
                    {
                        return DropReason.TcpOptionMalformed;
                    }
                    repr.HasTimestamp = true;
                    repr.TsVal = BinaryPrimitives.ReadUInt32BigEndian(body);
                    repr.TsEcr = BinaryPrimitives.ReadUInt32BigEndian(body.Slice(4));
                    break;

                default:
                    break;
            }
            i += length;
        }
        return DropReason.None;
    }
}

/// <summary>
/// Writes the options CookieProxy sends, in the order Linux uses (net/ipv4/tcp_output.c, tcp_options_write)
/// so that middleboxes and fingerprinting see a familiar layout:
/// <code>
/// SYN:     MSS(4) | SACK-perm+TS(12) or NOP NOP TS(12) or NOP NOP SACK-perm(4) | NOP WScale(4)
/// any:     [NOP NOP TS(12)]  NOP NOP SACK(2+8n)
/// </code>
/// Every piece is a multiple of 4 bytes, so the result never needs trailing padding. Unknown options are
/// never emitted. SACK blocks are cut to what fits in 40 bytes (RFC 2018 3: 3 blocks beside timestamps).
/// </summary>
public static class TcpOptionsWriter
{
    /// <summary>Bytes <see cref="Write"/> will produce (0..40, a multiple of 4).</summary>
    public static int Length(in TcpOptionsRepr opts, bool isSyn)
    {
        int length = 0;
        if (isSyn)
        {
            if (opts.Mss != 0)
            {
                length += 4;
            }
            if (!opts.HasTimestamp && opts.SackPermitted)
            {
                length += 4;
            }
            if (opts.WindowScale >= 0)
            {
                length += 4;
            }
        }
        if (opts.HasTimestamp)
        {
            length += 12;
        }
        int blocks = SackBlocksThatFit(opts, length);
        if (blocks > 0)
        {
            length += 4 + (blocks * TcpOptionKind.SackBlockLength);
        }
        return length;
    }

    /// <summary>Writes the options into <paramref name="dst"/>; returns the byte count or 0 if dst is too small.</summary>
    public static int Write(Span<byte> dst, in TcpOptionsRepr opts, bool isSyn)
    {
        int total = Length(opts, isSyn);
        if (dst.Length < total)
        {
            return 0;
        }

        int i = 0;
        if (isSyn && opts.Mss != 0)
        {
            dst[i] = TcpOptionKind.Mss;
            dst[i + 1] = TcpOptionKind.MssLength;
            BinaryPrimitives.WriteUInt16BigEndian(dst.Slice(i + 2), opts.Mss);
            i += 4;
        }
        if (opts.HasTimestamp)
        {
            if (isSyn && opts.SackPermitted)
            {
                dst[i] = TcpOptionKind.SackPermitted;
                dst[i + 1] = TcpOptionKind.SackPermittedLength;
            }
            else
            {
                dst[i] = TcpOptionKind.Nop;
                dst[i + 1] = TcpOptionKind.Nop;
            }
            dst[i + 2] = TcpOptionKind.Timestamps;
            dst[i + 3] = TcpOptionKind.TimestampsLength;
            BinaryPrimitives.WriteUInt32BigEndian(dst.Slice(i + 4), opts.TsVal);
            BinaryPrimitives.WriteUInt32BigEndian(dst.Slice(i + 8), opts.TsEcr);
            i += 12;
        }
        else if (isSyn && opts.SackPermitted)
        {
            dst[i] = TcpOptionKind.Nop;
            dst[i + 1] = TcpOptionKind.Nop;
            dst[i + 2] = TcpOptionKind.SackPermitted;
            dst[i + 3] = TcpOptionKind.SackPermittedLength;
            i += 4;
        }
        if (isSyn && opts.WindowScale >= 0)
        {
            dst[i] = TcpOptionKind.Nop;
            dst[i + 1] = TcpOptionKind.WindowScale;
            dst[i + 2] = TcpOptionKind.WindowScaleLength;
            dst[i + 3] = (byte)Math.Min((int)opts.WindowScale, TcpOptionKind.MaxWindowScale);
            i += 4;
        }
        int blocks = SackBlocksThatFit(opts, i);
        if (blocks > 0)
        {
            dst[i] = TcpOptionKind.Nop;
            dst[i + 1] = TcpOptionKind.Nop;
            dst[i + 2] = TcpOptionKind.Sack;
            dst[i + 3] = (byte)(2 + (blocks * TcpOptionKind.SackBlockLength));
            i += 4;
            for (int b = 0; b < blocks; b++)
            {
                SackBlock block = opts.Sack[b];
                BinaryPrimitives.WriteUInt32BigEndian(dst.Slice(i), block.Left.Value);
                BinaryPrimitives.WriteUInt32BigEndian(dst.Slice(i + 4), block.Right.Value);
                i += 8;
            }
        }
        return i;
    }

    private static int SackBlocksThatFit(in TcpOptionsRepr opts, int used)
    {
        int count = Math.Min((int)opts.SackCount, TcpOptionKind.MaxSackBlocks);
        if (count == 0)
        {
            return 0;
        }
        int room = (TcpPacket.MaxOptionsLength - used - 4) / TcpOptionKind.SackBlockLength;
        return Math.Max(0, Math.Min(count, room));
    }
}
