using static CookieProxy.Platform.Interop.Xdp;

namespace CookieProxy.Platform;

/// <summary>
/// One AF_XDP ring in shared memory (Documentation/networking/af_xdp.rst, "Rings"): a power-of-two array of
/// entries with a producer and a consumer index that only ever grow (they wrap at 2^32; entries are at
/// index &amp; mask). One side only writes the producer, the other only the consumer. As in libxdp's xsk.h,
/// we keep cached copies and touch the shared words once per batch: the other side's index is read with
/// acquire semantics (Volatile.Read) before reading entries, and ours is published with release semantics
/// (Volatile.Write) after writing them.
/// </summary>
/// <remarks>
/// User space produces on the fill and TX rings and consumes the RX and completion rings. A value type
/// held in a field of its device: the methods mutate the cached indices in place.
/// </remarks>
internal unsafe struct XdpRing
{
    private uint* _producer;
    private uint* _consumer;
    private uint* _flags;
    private byte* _entries;
    private uint _mask;
    private uint _cachedProducer;
    private uint _cachedConsumer;

    /// <param name="mapping">The ring's mmap'd area.</param>
    /// <param name="offsets">Its xdp_ring_offset from getsockopt(XDP_MMAP_OFFSETS).</param>
    public XdpRing(byte* mapping, in xdp_ring_offset offsets, uint size)
    {
        _producer = (uint*)(mapping + offsets.producer);
        _consumer = (uint*)(mapping + offsets.consumer);
        _flags = (uint*)(mapping + offsets.flags);
        _entries = mapping + offsets.desc;
        _mask = size - 1;
        Size = size;
        _cachedProducer = Volatile.Read(ref *_producer);
        _cachedConsumer = Volatile.Read(ref *_consumer);
    }

    public uint Size { get; }

    /// <summary>The kernel asks to be kicked (XDP_RING_NEED_WAKEUP; only with XDP_USE_NEED_WAKEUP).</summary>
    public readonly bool NeedsWakeup => (Volatile.Read(ref *_flags) & XDP_RING_NEED_WAKEUP) != 0;

    // ---- producer side (fill, TX)

    /// <summary>Free entries, refreshing the kernel's consumer index only when the cached one says too few.</summary>
    public uint FreeEntries(uint wanted)
    {
        uint free = Size - (_cachedProducer - _cachedConsumer);
        if (free >= wanted)
        {
            return free;
        }
        _cachedConsumer = Volatile.Read(ref *_consumer);
        return Size - (_cachedProducer - _cachedConsumer);
    }

    /// <summary>The fill/completion entry (a UMEM address) at <paramref name="index"/>.</summary>
    public readonly ref ulong Address(uint index) => ref ((ulong*)_entries)[index & _mask];

    /// <summary>The RX/TX descriptor at <paramref name="index"/>.</summary>
    public readonly ref xdp_desc Descriptor(uint index) => ref ((xdp_desc*)_entries)[index & _mask];

    /// <summary>Index of the next entry to produce (write entries at ProducerIndex + i, then <see cref="Submit"/>).</summary>
    public readonly uint ProducerIndex => _cachedProducer;

    /// <summary>Publishes <paramref name="count"/> written entries to the kernel (release: entries before index).</summary>
    public void Submit(uint count)
    {
        _cachedProducer += count;
        Volatile.Write(ref *_producer, _cachedProducer);
    }

    /// <summary>Entries produced by us that the kernel has not consumed yet (TX: not yet sent).</summary>
    public uint Outstanding()
    {
        _cachedConsumer = Volatile.Read(ref *_consumer);
        return _cachedProducer - _cachedConsumer;
    }

    // ---- consumer side (RX, completion)

    /// <summary>Entries ready to read, at most <paramref name="max"/>, starting at <see cref="ConsumerIndex"/>.</summary>
    public uint Peek(uint max)
    {
        uint available = _cachedProducer - _cachedConsumer;
        if (available == 0)
        {
            _cachedProducer = Volatile.Read(ref *_producer);
            available = _cachedProducer - _cachedConsumer;
        }
        return Math.Min(available, max);
    }

    public readonly uint ConsumerIndex => _cachedConsumer;

    /// <summary>Hands <paramref name="count"/> read entries back to the kernel (release: reads before index).</summary>
    public void Release(uint count)
    {
        _cachedConsumer += count;
        Volatile.Write(ref *_consumer, _cachedConsumer);
    }
}
