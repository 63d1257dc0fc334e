using System.Runtime.CompilerServices;
using CookieProxy.Cookies;
using CookieProxy.Crypto;
using CookieProxy.Diagnostics;
using CookieProxy.Io;
using CookieProxy.Limits;
using CookieProxy.Tcp;
using CookieProxy.Wire;

namespace CookieProxy.Responder;

/// <summary>
/// The stateless half of CookieProxy: classifies every captured frame, answers SYNs to protected endpoints
/// with cookie SYN+ACKs (SendClientSynAck) built in place in the capture buffer, and checks returning ACKs
/// (RecvClientAck). No state is needed per SYN: with a <see cref="SynCache"/> (hybrid mode) answered SYNs are also
/// remembered while the SYN rate is low, only to retransmit their SYN+ACKs; the ACK validates from its cookie either way.
///
/// Work order within a batch (most important first, so legitimate traffic keeps low latency while SYNs are
/// shed): segments of existing flows and cookie ACKs are handled in the first pass; SYNs are only queued,
/// then answered together in the second pass, their MACs computed across SIMD lanes.
/// </summary>
public sealed class SynResponder
{
    private readonly ResponderConfig _config;
    private SynCookieCodec _codec;
    private ProtectedEndpoints _endpoints;
    private readonly ProxyCounters _counters;
    private readonly sbyte _windowScale;
    private readonly ushort _synAckWindow;

    // Second-pass SYN queue: frame index and parsed header per SYN, SoA message words per family.
    private readonly int[] _synFrame;
    private readonly ParsedPacket[] _synPacket;
    private readonly int[] _v4Syns;
    private readonly int[] _v6Syns;
    private readonly ulong[] _v4Words;
    private readonly ulong[] _v6Words;
    private readonly ulong[] _v4Macs;
    private readonly ulong[] _v6Macs;
    private SourceLimiter? _limiter;
    private SourcePrefixSet _allow = SourcePrefixSet.Empty;
    private SourcePrefixSet _deny = SourcePrefixSet.Empty;
    private readonly SynCache? _synCache;

    // Observability (`cookieproxy top`, --sample-pcap): per-listener counts always (one array increment per
    // event); the source sketch and the drop sampler cost a null check each when off.
    private readonly ListenerCounters _listenerCounters;
    private int[] _listenerSlots = [];            // listener index -> slot, for the endpoints below
    private ProtectedEndpoints? _slotsFor;
    private readonly SourceSketch? _sketch;
    private readonly DropSampler? _sampler;

    public SynResponder(ResponderConfig config, SynCookieCodec codec, ProtectedEndpoints endpoints, ProxyCounters counters,
        int maxBatch = 64, SourceLimiter? limiter = null, SynCache? synCache = null, SourceSketch? sketch = null,
        DropSampler? sampler = null)
    {
        _limiter = limiter;
        _synCache = synCache;
        _sketch = sketch;
        _sampler = sampler;
        _listenerCounters = new ListenerCounters();
        _config = config;
        _codec = codec;
        _endpoints = endpoints;
        _counters = counters;
        _windowScale = config.WindowScale;
        _synAckWindow = config.SynAckWindow;
        _synFrame = new int[maxBatch];
        _synPacket = new ParsedPacket[maxBatch];
        _v4Syns = new int[maxBatch];
        _v6Syns = new int[maxBatch];
        _v4Words = new ulong[SynCookieCodec.WordsV4 * maxBatch];
        _v6Words = new ulong[SynCookieCodec.WordsV6 * maxBatch];
        _v4Macs = new ulong[maxBatch];
        _v6Macs = new ulong[maxBatch];
    }

    public ProxyCounters Counters => _counters;

    /// <summary>Per-listener counts (indexed like <see cref="ProtectedEndpoints"/>), written by the owner thread.</summary>
    public ListenerCounters ListenerCounters => _listenerCounters;

    /// <summary>The sampled top SYN sources of this thread, if the host asked for them.</summary>
    public SourceSketch? Sketch => _sketch;

    /// <summary>The dropped-frame sampler (--sample-pcap), if on.</summary>
    public DropSampler? Sampler => _sampler;

    public SourceLimiter? Limiter => _limiter;

    /// <summary>Counts a per-listener event (owner thread); <paramref name="listener"/> indexes <see cref="Endpoints"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void CountListener(int listener, ListenerCounter c)
    {
        if (!ReferenceEquals(_slotsFor, _endpoints) || _listenerSlots.Length != _endpoints.Count)
        {
            MapListenerSlots();    // the endpoints changed (start, a reload)
        }
        int[] slots = _listenerSlots;
        if ((uint)listener < (uint)slots.Length)
        {
            _listenerCounters.Increment(slots[listener], c);
        }
    }

    /// <summary>The endpoints changed (start, a reload): each listener index gets its endpoint's counter slot.</summary>
    private void MapListenerSlots()
    {
        ProtectedEndpoints endpoints = _endpoints;
        var slots = new int[endpoints.Count];
        for (int i = 0; i < slots.Length; i++)
        {
            slots[i] = _listenerCounters.SlotFor(endpoints.Endpoints[i]);
        }
        _listenerSlots = slots;
        _slotsFor = endpoints;
    }

    /// <summary>Whether a SYN or a cookie ACK may open a connection: not on a listener a reload removed (its
    /// flows finish, it takes no new one) and not from a denied source. Counts the drop when not.</summary>
    private bool MayOpen(int listener, in IpAddr source, ReadOnlySpan<byte> frame)
    {
        if (!_endpoints.Accepts(listener))
        {
            Drop(DropReason.NotProtected, frame);
            return false;
        }
        if (!_deny.IsEmpty && _deny.Contains(source))
        {
            Drop(DropReason.SourceDenied, frame);
            return false;
        }
        return true;
    }

    /// <summary>Counts a drop and offers the frame to the sampler: for drops with the frame in hand.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void Drop(DropReason reason, ReadOnlySpan<byte> frame)
    {
        _counters.Drop(reason);
        _sampler?.OnDrop(frame, reason);
    }

    public SynCookieCodec Codec => _codec;

    /// <summary>This thread's syncache (null: pure cookies always, <c>--syncache 0</c>).</summary>
    public SynCache? SynCache => _synCache;

    /// <summary>When <see cref="Tick"/> has work next (a SYN+ACK retransmission), or <see cref="long.MaxValue"/>.</summary>
    public long NextDeadlineMs => !Draining && _synCache is { Count: > 0 } cache ? cache.NextDeadlineMs : long.MaxValue;

    /// <summary>The syncache's retransmissions due at monotonic <paramref name="nowMs"/>, queued on <paramref name="tx"/>.
    /// None while draining: their ACKs would only be refused.</summary>
    public void Tick(long nowMs, IPacketDevice tx)
    {
        if (!Draining)
        {
            _synCache?.Tick(nowMs, tx);
        }
    }

    /// <summary>Our window-scale shift, as announced in every SYN+ACK (the flow's RecvWindowScale).</summary>
    public sbyte WindowScale => _windowScale;

    public ProtectedEndpoints Endpoints => _endpoints;

    /// <summary>Sources exempt from the per-source limits (allow-source).</summary>
    public SourcePrefixSet Allowed => _allow;

    /// <summary>
    /// A reload: new protected endpoints, cookie codec (key rotation), limiter and allow/deny lists, all taken
    /// at once by the owner thread between batches (no locks on the hot path). Established flows are the
    /// handler's and are untouched; an endpoint marked not accepting still reaches them.
    /// </summary>
    public void Reconfigure(ProtectedEndpoints endpoints, SynCookieCodec codec, SourceLimiter? limiter, SourcePrefixSet allow, SourcePrefixSet deny)
    {
        _endpoints = endpoints;
        _codec = codec;
        _limiter = limiter;
        _allow = allow;
        _deny = deny;
    }

    /// <summary>Shutting down: SYNs are no longer answered (DropReason.Draining) so clients go elsewhere while the
    /// established flows finish. Set by the owner thread between batches.</summary>
    public bool Draining { get; set; }

    /// <summary>
    /// Handles one captured batch. <paramref name="unixMs"/> is wall-clock time (cookie slots must agree
    /// across instances sharing a key). Replies are queued on <paramref name="tx"/>; the caller flushes.
    /// </summary>
    public void ProcessBatch<THandler>(FrameBatch batch, ref THandler handler, IPacketDevice tx, long unixMs)
        where THandler : struct, IFlowHandler => ProcessBatch(batch, ref handler, tx, unixMs, unixMs);

    /// <inheritdoc cref="ProcessBatch{THandler}(FrameBatch, ref THandler, IPacketDevice, long)"/>
    /// <param name="nowMs">Monotonic time for the syncache's schedule (the same clock as <see cref="Tick"/>).</param>
    public void ProcessBatch<THandler>(FrameBatch batch, ref THandler handler, IPacketDevice tx, long unixMs, long nowMs)
        where THandler : struct, IFlowHandler
    {
        int synCount = 0;
        int count = Math.Min(batch.Count, _synFrame.Length);
        _sketch?.Advance(unixMs);
        for (int i = 0; i < count; i++)
        {
            _counters[Counter.FramesReceived]++;
            Span<byte> frame = batch[i];
            FrameFlags flags = batch.GetFlags(i);
            // TP_STATUS_CSUM_VALID: the kernel checked it. TP_STATUS_CSUMNOTREADY: a local sender with offload
            // left it unfilled, so verifying would wrongly drop a good frame.
            bool verify = _config.VerifyChecksums && (flags & (FrameFlags.ChecksumValid | FrameFlags.ChecksumNotReady)) == 0;
            DropReason reason = PacketParser.Parse(frame, out ParsedPacket p, verify);
            if (reason != DropReason.None)
            {
                Drop(reason, frame);
                continue;
            }
            int listener = _endpoints.Find(p.Flow.DstAddr, p.Flow.DstPort);
            if (listener < 0)
            {
                Drop(DropReason.NotProtected, frame);
                continue;
            }

            TcpFlags f = p.Tcp.Flags;
            if ((f & (TcpFlags.Syn | TcpFlags.Ack | TcpFlags.Rst)) == TcpFlags.Syn)
            {
                // A SYN on an existing flow is the flow's business (RFC 5961 4: challenge ACK).
                if (handler.TryDeliver(ref p, frame, listener))
                {
                    continue;
                }
                _counters[Counter.SynReceived]++;
                CountListener(listener, ListenerCounter.SynReceived);
                _sketch?.OnSyn(p.Flow.SrcAddr);
                if (Draining)
                {
                    _counters.Drop(DropReason.Draining);    // not sampled: our own shutdown, not attack traffic
                    continue;
                }
                if (!MayOpen(listener, p.Flow.SrcAddr, frame))
                {
                    continue;
                }
                // Per-source SYN budget (nmsynproxy's ratehash): sources are spoofable here, so this only
                // caps what one prefix can make us send; the limiter's table is bounded and seeded.
                if (_limiter is not null && (_allow.IsEmpty || !_allow.Contains(p.Flow.SrcAddr)) && !_limiter.TryAcceptSyn(p.Flow.SrcAddr, unixMs))
                {
                    CountListener(listener, ListenerCounter.SynRateLimited);
                    Drop(DropReason.RateLimited, frame);
                    continue;
                }
                _synFrame[synCount] = i;
                _synPacket[synCount] = p;
                synCount++;
                continue;
            }

            if (handler.TryDeliver(ref p, frame, listener))
            {
                continue;
            }
            if ((f & TcpFlags.Rst) != 0)
            {
                // RFC 9293 3.10.7.1: never answer a RST. One for a remembered SYN ends its retransmissions.
                if (_synCache is { Count: > 0 })
                {
                    _synCache.ForgetReset(p.Flow, p.Tcp.Seq.Value);
                }
                Drop(DropReason.NoFlow, frame);
                continue;
            }
            if ((f & TcpFlags.Syn) != 0)
            {
                // SYN+ACK towards a protected endpoint: nothing we started.
                Drop(DropReason.TcpBadFlags, frame);
                continue;
            }

            if (!MayOpen(listener, p.Flow.SrcAddr, frame))
            {
                continue;
            }
            reason = _codec.Validate(p.Flow, p.Tcp, unixMs, out CookieDecoded cookie);
            if (reason == DropReason.None)
            {
                _counters[Counter.CookieValid]++;
                CountListener(listener, ListenerCounter.CookieValid);
                if (_synCache is { Count: > 0 })
                {
                    _synCache.ForgetAcked(p.Flow);
                }
                handler.OnCookieValid(ref p, frame, listener, cookie);
                continue;
            }
            _counters[Counter.CookieInvalid]++;
            CountListener(listener, ListenerCounter.CookieInvalid);
            Drop(reason, frame);    // before SendReset rewrites the frame
            if (_config.RstInvalid)
            {
                SendReset(p, frame, tx);
            }
        }

        if (synCount > 0)
        {
            // The syncache counts every SYN towards its rate; under a flood that is all it does.
            bool remember = _synCache is not null && _synCache.OnSyns(synCount, nowMs);
            AnswerSyns(batch, synCount, tx, unixMs, remember, nowMs);
        }
    }

    /// <summary>SendClientSynAck for every queued SYN: MACs in SIMD batches per address family, then each
    /// SYN frame is rewritten in place into its SYN+ACK.</summary>
    private void AnswerSyns(FrameBatch batch, int synCount, IPacketDevice tx, long unixMs, bool remember, long nowMs)
    {
        uint slot = _codec.SlotAt(unixMs);
        int v4 = 0, v6 = 0;
        for (int s = 0; s < synCount; s++)
        {
            if (_synPacket[s].IsV4)
            {
                _v4Syns[v4++] = s;
            }
            else
            {
                _v6Syns[v6++] = s;
            }
        }
        AnswerFamily(batch, _v4Syns, v4, _v4Words, SynCookieCodec.WordsV4, _v4Macs, slot, tx, remember, nowMs);
        AnswerFamily(batch, _v6Syns, v6, _v6Words, SynCookieCodec.WordsV6, _v6Macs, slot, tx, remember, nowMs);
    }

    /// <summary>One address family's SYNs: message words in SoA layout, one SIMD batch MAC, then the replies.</summary>
    private void AnswerFamily(FrameBatch batch, int[] syns, int count, ulong[] words, int wordsPerMessage, ulong[] macs, uint slot, IPacketDevice tx,
        bool remember, long nowMs)
    {
        if (count == 0)
        {
            return;
        }
        for (int j = 0; j < count; j++)
        {
            ref ParsedPacket p = ref _synPacket[syns[j]];
            SynCookieCodec.WriteMessage(p.Flow, slot, p.Tcp.Seq.Value, words.AsSpan(j), count);
        }
        SipHash.HashBatch(_codec.Key, words.AsSpan(0, wordsPerMessage * count), wordsPerMessage, count, macs);
        for (int j = 0; j < count; j++)
        {
            SendSynAck(batch, syns[j], macs[j], slot, tx, remember, nowMs);
        }
    }

    private void SendSynAck(FrameBatch batch, int s, ulong mac, uint slot, IPacketDevice tx, bool remember, long nowMs)
    {
        ref ParsedPacket syn = ref _synPacket[s];
        var options = SynOptions.FromSyn(syn.Tcp);
        uint isn = SynCookieCodec.ComposeIsn(mac, slot, options);

        TcpOptionsRepr ours = TcpOptionsRepr.None;
        // RFC 9293 3.7.1 / RFC 6691: announce what we can receive; never more than the client's own MSS
        // is needed, but a larger value is harmless.
        ours.Mss = syn.IsV4 ? _config.Mss : _config.MssV6;
        // RFC 7323 2.2 / RFC 2018: offer only what the client offered. Unknown client options are never
        // reflected (RFC 9293 3.1; DPVS #924).
        if (options.WindowScale >= 0)
        {
            ours.WindowScale = _windowScale;
        }
        ours.SackPermitted = options.SackPermitted;
        if (options.Timestamps)
        {
            ours.HasTimestamp = true;
            ours.TsVal = SynCookieCodec.ComposeTsVal(mac, options);
            ours.TsEcr = syn.Tcp.Options.TsVal;
        }

        int len = SynAckWriter.RewriteInPlace(batch.GetWithTailRoom(_synFrame[s]), syn, isn, ours, _synAckWindow);
        if (len == 0)
        {
            Drop(DropReason.FrameTooShort, batch[_synFrame[s]]);
            return;
        }
        if (remember)
        {
            // Also when the send below fails: the retransmission then is the first copy to leave.
            _synCache!.Remember(syn.Flow, syn.Tcp.Seq.Value, batch.GetWithTailRoom(_synFrame[s])[..len], nowMs);
        }
        if (tx.Send(batch.GetWithTailRoom(_synFrame[s])[..len]))
        {
            _counters[Counter.SynAckSent]++;
        }
        else
        {
            _counters.Drop(DropReason.TxFailed);    // not sampled: the frame is our SYN+ACK by now
        }
    }

    /// <summary>RST for a segment that matches nothing (RFC 9293 3.10.7.1), built in place over the received
    /// frame, which the caller no longer needs.</summary>
    public void SendReset(in ParsedPacket p, Span<byte> frame, IPacketDevice tx)
    {
        int len = RstWriter.RewriteInPlace(frame, p);
        if (len > 0 && tx.Send(frame[..len]))
        {
            _counters[Counter.RstSent]++;
        }
    }
}
