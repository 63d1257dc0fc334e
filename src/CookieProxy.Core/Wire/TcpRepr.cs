using System.Runtime.CompilerServices;
using CookieProxy.Tcp;

namespace CookieProxy.Wire;

/// <summary>Up to four SACK blocks (RFC 2018 3: at most 4 fit in 40 option bytes, 3 with timestamps).</summary>
[InlineArray(4)]
public struct SackBlocks
{
    private SackBlock _element0;
}

/// <summary>One SACK block [Left, Right): Right is the sequence number just past the block (RFC 2018 3).</summary>
public readonly record struct SackBlock(SeqNumber Left, SeqNumber Right);

/// <summary>
/// The TCP options CookieProxy understands (RFC 9293 3.2, RFC 7323, RFC 2018). Unknown options are
/// skipped on parse and never emitted (we never reflect a client's unknown SYN options: RFC 9293 3.1,
/// DPVS #924).
/// </summary>
public struct TcpOptionsRepr
{
    /// <summary>MSS option value (RFC 9293 3.7.1); 0 = absent.</summary>
    public ushort Mss;

    /// <summary>Window scale shift (RFC 7323 2.2); -1 = absent. Values above 14 are clamped to 14 on parse (RFC 7323 2.3).</summary>
    public sbyte WindowScale;

    public bool SackPermitted;

    public bool HasTimestamp;
    public uint TsVal;
    public uint TsEcr;

    public byte SackCount;
    public SackBlocks Sack;

    public static TcpOptionsRepr None => new() { WindowScale = -1 };
}

/// <summary>The validated, IP-independent content of a TCP header.</summary>
public struct TcpRepr
{
    public ushort SrcPort;
    public ushort DstPort;
    public SeqNumber Seq;
    public SeqNumber Ack;
    public TcpFlags Flags;
    /// <summary>The raw 16-bit window field (not yet scaled).</summary>
    public ushort Window;
    public ushort UrgentPointer;
    public TcpOptionsRepr Options;
}
