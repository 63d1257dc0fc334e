// The capture thread's half of the sampled pcap of attack traffic (--sample-pcap): it decides which dropped
// frames to keep and copies them into a preallocated single-producer single-consumer ring. A writer thread in
// the host drains the ring into a pcapng file. Nothing here allocates, locks or does I/O after construction.
//
//   slot i:  _data[i * SnapBytes .. +SnapBytes]   the frame, cut at SnapBytes
//            _meta[i]                             captured and original length, reason, timestamp
//
//   _head (written by the capture thread) - _tail (written by the writer) = slots in use, at most Slots.
//   The producer fills slot (_head & mask) and then publishes it with a release write of _head; the consumer
//   reads _head with an acquire read, copies the slot out and releases it with a release write of _tail.

using System.Runtime.CompilerServices;

namespace CookieProxy.Diagnostics;

/// <summary>One sampled frame's facts (the bytes are in the ring slot beside it).</summary>
public readonly record struct DropSample(DropReason Reason, int OriginalLength, long UnixMicroseconds);

/// <summary>
/// Picks 1 in <see cref="Every"/> dropped frames, plus the first <see cref="FirstPerReason"/> frames of every
/// drop reason, and copies each into a ring slot for the host's pcap writer. Owned by one capture thread
/// (<see cref="OnDrop"/>); drained by one other thread (<see cref="TryRead"/>). A full ring loses the sample and
/// counts it (<see cref="Counter.PcapSampleLost"/>): the capture thread never waits for the disk.
/// </summary>
public sealed class DropSampler
{
    /// <summary>Bytes kept of each frame: an Ethernet frame of a 1500-byte MTU with two VLAN tags fits.</summary>
    public const int DefaultSnapBytes = 1536;

    /// <summary>Frames of each drop reason that are always kept, so a new kind of attack shows at once.</summary>
    public const int DefaultFirstPerReason = 8;

    public const int DefaultSlots = 256;

    private readonly byte[] _data;
    private readonly Meta[] _meta;
    private readonly int _mask;
    private readonly int _snap;
    private readonly int _firstPerReason;
    private readonly byte[] _firstTaken = new byte[(int)DropReason.Count];
    private readonly ProxyCounters _counters;
    private uint _countdown;
    private long _head;
    private long _tail;

    /// <param name="counters">The capture thread's counters (samples taken and lost are counted there).</param>
    /// <param name="every">Keep 1 in this many dropped frames (1 = all).</param>
    /// <param name="slots">Ring slots, a power of two: how far the writer may fall behind before samples are lost.</param>
    public DropSampler(ProxyCounters counters, int every, int slots = DefaultSlots, int snapBytes = DefaultSnapBytes,
        int firstPerReason = DefaultFirstPerReason)
    {
        ArgumentNullException.ThrowIfNull(counters);
        ArgumentOutOfRangeException.ThrowIfLessThan(every, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(slots, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(snapBytes, 64);
        ArgumentOutOfRangeException.ThrowIfNegative(firstPerReason);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(firstPerReason, byte.MaxValue);
        if ((slots & (slots - 1)) != 0)
        {
            throw new ArgumentOutOfRangeException(nameof(slots), slots, "The ring's slot count must be a power of two.");
        }
        _counters = counters;
        Every = every;
        _countdown = (uint)every;
        _snap = snapBytes;
        _firstPerReason = firstPerReason;
        _data = new byte[slots * snapBytes];
        _meta = new Meta[slots];
        _mask = slots - 1;
    }

    public int Every { get; }

    public int SnapBytes => _snap;

    public int FirstPerReason => _firstPerReason;

    public int Slots => _meta.Length;

    /// <summary>A frame was dropped for <paramref name="reason"/> (capture thread only). Costs a decrement and a
    /// compare unless the frame is kept.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public void OnDrop(ReadOnlySpan<byte> frame, DropReason reason)
    {
        uint left = --_countdown;
        if (left != 0 && _firstTaken[(int)reason] >= _firstPerReason)
        {
            return;
        }
        Take(frame, reason, left == 0);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void Take(ReadOnlySpan<byte> frame, DropReason reason, bool periodic)
    {
        if (periodic)
        {
            _countdown = (uint)Every;
        }
        if (_firstTaken[(int)reason] < _firstPerReason)
        {
            _firstTaken[(int)reason]++;
        }

        long head = _head;
        if (head - Volatile.Read(ref _tail) >= _meta.Length)
        {
            _counters[Counter.PcapSampleLost]++;
            return;
        }
        int slot = (int)(head & _mask);
        int n = Math.Min(frame.Length, _snap);
        frame[..n].CopyTo(_data.AsSpan(slot * _snap, n));
        // The wall clock through the vDSO: paid per kept frame only.
        long unixUs = (DateTime.UtcNow.Ticks - DateTime.UnixEpoch.Ticks) / 10;
        _meta[slot] = new Meta(n, frame.Length, reason, unixUs);
        Volatile.Write(ref _head, head + 1);
        _counters[Counter.PcapSampled]++;
    }

    /// <summary>
    /// Copies the oldest sample into <paramref name="destination"/> (at least <see cref="SnapBytes"/> long) and
    /// frees its slot (consumer thread only). Returns the number of bytes copied, or -1 when the ring is empty.
    /// </summary>
    public int TryRead(Span<byte> destination, out DropSample sample)
    {
        long tail = _tail;
        if (tail == Volatile.Read(ref _head))
        {
            sample = default;
            return -1;
        }
        int slot = (int)(tail & _mask);
        Meta m = _meta[slot];
        _data.AsSpan(slot * _snap, m.Captured).CopyTo(destination);
        sample = new DropSample(m.Reason, m.Original, m.UnixUs);
        Volatile.Write(ref _tail, tail + 1);
        return m.Captured;
    }

    /// <summary>Samples waiting in the ring (any thread; a moment's view).</summary>
    public int Pending => (int)(Volatile.Read(ref _head) - Volatile.Read(ref _tail));

    private readonly record struct Meta(int Captured, int Original, DropReason Reason, long UnixUs);
}
