using CookieProxy.Io;
using CookieProxy.Tcp;

namespace CookieProxy.Wire;

/// <summary>
/// One frame for a device with TCP segmentation offload: consecutive segments of one flow, emitted together,
/// built into a single super-frame that the device (or the kernel's GSO) cuts back into segments. Built in
/// place in the device's send queue: the payload is copied once and never summed (checksum offload).
/// </summary>
/// <remarks>
/// Only what the cut reproduces exactly is merged. Linux's tcp_gso_segment (net/ipv4/tcp_offload.c) copies
/// the first header into every segment, advances SEQ by the segment size, keeps PSH and FIN for the last
/// segment only and CWR for the first only; everything else (ACK, window, options: our TSval is per
/// Dispatch) is repeated. So a segment joins when it starts where the frame ends, carries the same header
/// but for SEQ, PSH and FIN, and every earlier segment is full-sized (the first one's payload length);
/// segments with SACK blocks, URG, SYN or RST, and pure ACKs always travel alone.
/// </remarks>
public ref struct TcpSuperFrame
{
    /// <summary>Linux caps a GSO packet at 64 KiB of IP datagram (the 16-bit length fields) and gso_max_segs.</summary>
    public const int MaxSegments = 64;

    /// <summary>The most TCP payload one frame can carry in either IP version: the 16-bit length fields minus
    /// the largest IPv6 and TCP headers. A sender's <see cref="TcpEndpoint.SegmentOffloadBytes"/>.</summary>
    public const int MaxPayloadBytes = ushort.MaxValue - Ipv6Packet.HeaderLength - TcpPacket.MaxHeaderLength;

    private Span<byte> _frame;
    private L2L3Template _template;
    private TcpRepr _header;
    private int _length;
    private int _l4;
    private int _tcpHeaderLength;
    private int _segmentSize;
    private int _segments;
    private SeqNumber _nextSeq;
    private bool _open;
    private bool _appended;
    private bool _declaredSize;

    /// <summary>True between <see cref="Start"/> and <see cref="Finish"/>.</summary>
    public readonly bool IsStarted => _length > 0;

    /// <summary>More segments may still join (a full-sized data segment without PSH or FIN ends the frame so far).</summary>
    public readonly bool IsOpen => _open;

    /// <summary>Segments in the frame so far.</summary>
    public readonly int Segments => _segments;

    /// <summary>
    /// Writes <paramref name="segment"/> as the frame's first segment into <paramref name="buffer"/> (which the
    /// later segments extend). False, with nothing started, when it does not fit.
    /// </summary>
    /// <param name="segmentSize">The cut size: the sender's MSS for this segment when it already emits
    /// super-segments longer than one MSS (<see cref="TcpEndpoint.SegmentOffloadBytes"/>); 0 = the segment's
    /// own payload length (a sender that emits one MSS at a time).</param>
    public bool Start(Span<byte> buffer, in L2L3Template template, in TcpRepr segment, ReadOnlySpan<byte> payloadHead, ReadOnlySpan<byte> payloadTail,
        int segmentSize = 0)
    {
        this = default;
        int n = TcpFrameBuilder.Write(buffer, template, segment, payloadHead, payloadTail, checksumOffload: true);
        if (n == 0)
        {
            return false;
        }
        int payload = payloadHead.Length + payloadTail.Length;
        _frame = buffer;
        _template = template;
        _header = segment;
        _length = n;
        _l4 = template.HeaderLength;
        _tcpHeaderLength = TcpPacket.HeaderLengthFor(segment);
        _declaredSize = segmentSize > 0;
        _segmentSize = segmentSize > 0 && payload > 0 ? Math.Min(segmentSize, payload) : payload;
        _segments = _segmentSize > 0 ? (payload + _segmentSize - 1) / _segmentSize : 1;
        _nextSeq = segment.Seq + payload;
        // Later segments may join only while every segment so far is full-sized.
        _open = payload > 0 && payload % _segmentSize == 0 && segment.Flags == TcpFlags.Ack && segment.UrgentPointer == 0
            && segment.Options.SackCount == 0;
        return true;
    }

    /// <summary>
    /// Appends <paramref name="segment"/> as the next segment when the device's cut would reproduce it exactly
    /// (see the remarks); false leaves the frame unchanged (finish it and start a new one).
    /// </summary>
    public bool TryAppend(in TcpRepr segment, ReadOnlySpan<byte> payloadHead, ReadOnlySpan<byte> payloadTail)
    {
        int payload = payloadHead.Length + payloadTail.Length;
        int pieces = _segmentSize > 0 ? (payload + _segmentSize - 1) / _segmentSize : 0;
        // A segment longer than the cut size joins only when the sender declared that size (it emits super-
        // segments on purpose); otherwise the cut would split a segment the sender sent whole.
        if (!_open || payload == 0 || _segments + pieces > MaxSegments || (!_declaredSize && payload > _segmentSize)
            || segment.Seq != _nextSeq || (segment.Flags & ~(TcpFlags.Psh | TcpFlags.Fin)) != TcpFlags.Ack
            || !SameHeader(segment)
            || _length + payload > _frame.Length
            || _length - _template.L2Length + payload > ushort.MaxValue + (_template.IpVersion == 6 ? Ipv6Packet.HeaderLength : 0))
        {
            return false;
        }
        payloadHead.CopyTo(_frame.Slice(_length));
        payloadTail.CopyTo(_frame.Slice(_length + payloadHead.Length));
        _length += payload;
        _segments += pieces;
        _nextSeq += payload;
        _appended = true;
        if (segment.Flags != TcpFlags.Ack || payload % _segmentSize != 0)
        {
            // PSH/FIN travel on the last segment of the cut; a short segment can only be the last one.
            _header.Flags |= segment.Flags;
            _open = false;
        }
        return true;
    }

    private readonly bool SameHeader(in TcpRepr s) =>
        s.SrcPort == _header.SrcPort && s.DstPort == _header.DstPort && s.Ack == _header.Ack && s.Window == _header.Window
        && s.UrgentPointer == 0 && s.Options.SackCount == 0 && s.Options.HasTimestamp == _header.Options.HasTimestamp
        && s.Options.TsVal == _header.Options.TsVal && s.Options.TsEcr == _header.Options.TsEcr;

    /// <summary>
    /// Completes the headers (IP length, IPv4 header checksum, flags of the last segment, the TCP pseudo-header
    /// sum for the whole length), returns the frame length and what the device must finish; then resets.
    /// </summary>
    public int Finish(out TxOffload offload)
    {
        int length = _length;
        if (length == 0)
        {
            offload = default;
            return 0;
        }
        int l2 = _template.L2Length;
        int segmentLength = length - _l4;
        if (_appended)
        {
            TcpFrameBuilder.WriteIpHeader(_frame.Slice(l2, _template.L3Length), _template, segmentLength);
            var tcp = new TcpPacket(_frame.Slice(_l4, segmentLength));
            tcp.Flags = _header.Flags;
            tcp.Checksum = TcpFrameBuilder.PartialChecksum(_template, segmentLength);
        }
        offload = new TxOffload(_l4, _l4 + _tcpHeaderLength, _segments > 1 ? _segmentSize : 0, _template.IpVersion);
        this = default;
        return length;
    }
}
