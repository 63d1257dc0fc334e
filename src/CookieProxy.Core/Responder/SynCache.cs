using CookieProxy.Diagnostics;
using CookieProxy.Io;
using CookieProxy.Wire;

namespace CookieProxy.Responder;

/// <summary>How a capture thread answers SYNs right now.</summary>
public enum SynCacheMode : byte
{
    /// <summary>Each answered SYN is remembered and its SYN+ACK retransmitted until the ACK comes.</summary>
    Remember,

    /// <summary>Pure SYN cookies: nothing is kept per SYN (the SYN rate is above the threshold).</summary>
    PureCookies,
}

/// <summary>
/// The hybrid syncache: while the SYN rate is low, every answered SYN is remembered together with its cookie
/// SYN+ACK, which goes out again after 1 s and 3 s unless the client's ACK (or RST) comes first; above the rate,
/// or when the table is full, SYNs get pure cookies. The SYN+ACK is the same cookie SYN+ACK either way, so a
/// flow always validates from its ACK and never from this table: the table only adds retransmissions.
/// </summary>
/// <remarks>
/// <para>Why: with pure cookies nobody retransmits a lost SYN+ACK's handshake end. When the client's final ACK is
/// lost, a client-speaks-first protocol recovers (its first data segment carries the ACK), but a
/// server-speaks-first one (SMTP, SSH, FTP, IMAP) waits for a banner forever. RFC 4987 3.3 and 3.6 (SYN cache,
/// hybrid approaches); FreeBSD's syncache falls back to cookies when its buckets overflow, Linux sends cookies
/// only when the listen queue overflows.</para>
/// <para>Bounded and allocation-free: fixed arrays sized at construction, a ring in insertion order (every entry
/// has the same retransmission schedule, so insertion order is deadline order for each stage: one cursor per
/// stage, no timer heap) and a chained hash index over the ring's slots (FlowKey's hash, which is seeded per
/// process, so chains cannot be aimed at). Sans-IO: the clock comes in as milliseconds, frames go out through
/// the <see cref="IPacketDevice"/> the caller passes. One instance per capture thread, used by that thread only.</para>
/// <para>The mode and its hysteresis are in SynCache.Mode.cs.</para>
/// </remarks>
public sealed partial class SynCache
{
    private const int NoEntry = -1;

    private readonly ProxyCounters _counters;
    private readonly int _capacity;
    private readonly long[] _retransmitAfterMs;

    // Per slot (ring position % capacity).
    private readonly byte[] _frames;
    private readonly ushort[] _frameLength;   // 0 = no live entry in the slot
    private readonly FlowKey[] _keys;
    private readonly uint[] _clientIsn;
    private readonly long[] _rememberedMs;
    private readonly int[] _next;             // hash chain

    private readonly int[] _buckets;
    private readonly int _bucketMask;

    // Ring positions (monotonic; slot = position % capacity). _due[s] is the oldest entry still waiting for its
    // retransmission s: _due[last] <= ... <= _due[0] <= _tail, and _tail - _due[last] <= capacity.
    private readonly long[] _due;
    private long _tail;
    private int _live;

    public SynCache(SynCacheConfig config, ProxyCounters counters, long nowMs)
    {
        ArgumentNullException.ThrowIfNull(config);
        config.Validate();
        if (config.Capacity == 0)
        {
            throw new ArgumentOutOfRangeException(nameof(config), "a syncache of 0 entries is no syncache: pass none");
        }
        _counters = counters;
        _capacity = config.Capacity;
        _retransmitAfterMs = SynCacheConfig.RetransmitAfterMs;
        _frames = new byte[_capacity * SynCacheConfig.FrameSlotBytes];
        _frameLength = new ushort[_capacity];
        _keys = new FlowKey[_capacity];
        _clientIsn = new uint[_capacity];
        _rememberedMs = new long[_capacity];
        _next = new int[_capacity];
        int buckets = (int)Math.Min(1 << 30, System.Numerics.BitOperations.RoundUpToPowerOf2((uint)_capacity));
        _buckets = new int[buckets];
        _bucketMask = buckets - 1;
        Array.Fill(_buckets, NoEntry);
        _due = new long[_retransmitAfterMs.Length];
        InitMode(config, nowMs);
    }

    /// <summary>Entries per capture thread.</summary>
    public int Capacity => _capacity;

    /// <summary>SYNs remembered now (waiting for their ACK or their next retransmission).</summary>
    public int Count => _live;

    /// <summary>The earliest retransmission due, or <see cref="long.MaxValue"/> with nothing waiting.</summary>
    public long NextDeadlineMs
    {
        get
        {
            long next = long.MaxValue;
            for (int s = 0; s < _due.Length; s++)
            {
                long limit = s == 0 ? _tail : _due[s - 1];
                if (_due[s] < limit)
                {
                    next = Math.Min(next, _rememberedMs[Slot(_due[s])] + _retransmitAfterMs[s]);
                }
            }
            return next;
        }
    }

    /// <summary>
    /// Remembers the SYN of <paramref name="key"/> (client ISN <paramref name="clientIsn"/>) answered with
    /// <paramref name="synAck"/>, a complete frame. A SYN seen again (the client retransmitted it) replaces the
    /// stored SYN+ACK and keeps its schedule. False when the table is full or the frame does not fit: that SYN
    /// then has a pure cookie (counted as syncache_overflow).
    /// </summary>
    public bool Remember(in FlowKey key, uint clientIsn, ReadOnlySpan<byte> synAck, long nowMs)
    {
        if (synAck.Length is 0 or > SynCacheConfig.FrameSlotBytes)
        {
            _counters[Counter.SynCacheOverflow]++;
            return false;
        }
        int slot = Find(key, out int bucket);
        if (slot == NoEntry)
        {
            if (_tail - _due[^1] == _capacity && !ReclaimOldest())
            {
                _counters[Counter.SynCacheOverflow]++;
                return false;
            }
            slot = Slot(_tail);
            _tail++;
            _keys[slot] = key;
            _rememberedMs[slot] = nowMs;
            _next[slot] = _buckets[bucket];
            _buckets[bucket] = slot;
            _live++;
            _counters[Counter.SynCacheAdded]++;
            _counters[Counter.SynCacheEntries] = _live;
        }
        _clientIsn[slot] = clientIsn;
        synAck.CopyTo(_frames.AsSpan(slot * SynCacheConfig.FrameSlotBytes, SynCacheConfig.FrameSlotBytes));
        _frameLength[slot] = (ushort)synAck.Length;
        return true;
    }

    /// <summary>The ACK of <paramref name="key"/> validated (RecvClientAck): no more retransmissions.</summary>
    public bool ForgetAcked(in FlowKey key)
    {
        int slot = Find(key, out int bucket);
        if (slot == NoEntry)
        {
            return false;
        }
        Remove(slot, bucket);
        _counters[Counter.SynCacheAcked]++;
        return true;
    }

    /// <summary>
    /// A RST for <paramref name="key"/> with sequence number <paramref name="seq"/> and no flow: in SYN-RECEIVED it
    /// ends the attempt (RFC 9293 3.10.7.3) when it is exactly the next sequence number, RCV.NXT = client ISN + 1
    /// (RFC 5961 3.2; we send no challenge ACK for one merely in the window, it is just ignored).
    /// </summary>
    public bool ForgetReset(in FlowKey key, uint seq)
    {
        int slot = Find(key, out int bucket);
        if (slot == NoEntry || seq != unchecked(_clientIsn[slot] + 1))
        {
            return false;
        }
        Remove(slot, bucket);
        _counters[Counter.SynCacheReset]++;
        return true;
    }

    /// <summary>
    /// Sends every stored SYN+ACK whose retransmission is due at <paramref name="nowMs"/> on <paramref name="tx"/>
    /// (the caller flushes) and drops the entries that had their last one; also closes the rate window.
    /// </summary>
    public void Tick(long nowMs, IPacketDevice tx)
    {
        AdvanceWindow(nowMs);
        int last = _due.Length - 1;
        for (int s = 0; s < _due.Length; s++)
        {
            long limit = s == 0 ? _tail : _due[s - 1];
            long after = _retransmitAfterMs[s];
            while (_due[s] < limit)
            {
                int slot = Slot(_due[s]);
                int length = _frameLength[slot];
                if (length != 0)
                {
                    if (_rememberedMs[slot] + after > nowMs)
                    {
                        break;
                    }
                    if (tx.Send(_frames.AsSpan(slot * SynCacheConfig.FrameSlotBytes, length)))
                    {
                        _counters[Counter.SynCacheRetransmits]++;
                        _counters[Counter.SynAckSent]++;
                    }
                    else
                    {
                        _counters.Drop(DropReason.TxFailed);
                    }
                    if (s == last)
                    {
                        Remove(slot, Bucket(_keys[slot]));
                        _counters[Counter.SynCacheExpired]++;
                    }
                }
                // A removed entry (ACKed, reset) is stepped over at once, whatever its deadline.
                _due[s]++;
            }
        }
    }

    /// <summary>The table is full of positions: the oldest ones may be entries removed already (ACKed, reset),
    /// which only wait for the last cursor to step over them. Steps over them now; true if there is room then.</summary>
    private bool ReclaimOldest()
    {
        int last = _due.Length - 1;
        while (_due[last] < _tail && _frameLength[Slot(_due[last])] == 0)
        {
            long position = ++_due[last];
            for (int s = 0; s < last; s++)
            {
                _due[s] = Math.Max(_due[s], position);
            }
        }
        return _tail - _due[last] < _capacity;
    }

    private int Slot(long position) => (int)(position % _capacity);

    private int Bucket(in FlowKey key) => key.GetHashCode() & _bucketMask;

    private int Find(in FlowKey key, out int bucket)
    {
        bucket = Bucket(key);
        for (int slot = _buckets[bucket]; slot != NoEntry; slot = _next[slot])
        {
            if (_keys[slot].Equals(key))
            {
                return slot;
            }
        }
        return NoEntry;
    }

    private void Remove(int slot, int bucket)
    {
        ref int link = ref _buckets[bucket];
        while (link != slot)
        {
            link = ref _next[link];
        }
        link = _next[slot];
        _frameLength[slot] = 0;
        _keys[slot] = default;
        _live--;
        _counters[Counter.SynCacheEntries] = _live;
    }
}
