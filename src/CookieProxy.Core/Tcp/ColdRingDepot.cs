namespace CookieProxy.Tcp;

/// <summary>
/// The free ring arrays whose pages were given back (decommitted: they cost address space, not memory), shared by
/// the <see cref="RingBufferPool"/>s of all capture threads. Each thread keeps its own few resident ("hot") arrays
/// without locks; the cold ones live here so that a wave of connections the threads split differently from the
/// last one reuses the last wave's arrays instead of allocating new ones for the thread that got more (issue 12: the
/// second of two identical waves created ring buffers again because the flow hash gave one thread a few more flows).
/// <para>
/// Locked, but touched only when a thread's hot list is empty (a new flow's rent) or full (a flow's return), never
/// per packet; the decommit itself (a syscall) happens outside the lock.
/// </para>
/// </summary>
public sealed class ColdRingDepot
{
    private readonly object _lock = new();
    private readonly byte[][] _arrays;
    private int _count;

    /// <param name="arrayLength">Length of every array (the pools' <see cref="RingBufferPool.ArrayLength"/>).</param>
    /// <param name="capacity">Arrays kept at most; a return beyond it is left to the GC.</param>
    public ColdRingDepot(int arrayLength, int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(arrayLength, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(capacity);
        ArrayLength = arrayLength;
        _arrays = new byte[capacity][];
    }

    public int ArrayLength { get; }

    public int Capacity => _arrays.Length;

    /// <summary>Arrays held now (read without the lock by the stats: a moment stale at worst).</summary>
    public int Count => Volatile.Read(ref _count);

    /// <summary>Keeps a decommitted, all-zero array of <see cref="ArrayLength"/> bytes; false when full.</summary>
    public bool TryPush(byte[] array)
    {
        if (array.Length != ArrayLength)
        {
            throw new ArgumentException($"Array of {array.Length} bytes for a depot of {ArrayLength}-byte arrays.", nameof(array));
        }

        lock (_lock)
        {
            if (_count == _arrays.Length)
            {
                return false;
            }

            _arrays[_count] = array;
            Volatile.Write(ref _count, _count + 1);
            return true;
        }
    }

    /// <summary>A decommitted, all-zero array, or null when none is left.</summary>
    public byte[]? TryPop()
    {
        lock (_lock)
        {
            if (_count == 0)
            {
                return null;
            }

            int last = _count - 1;
            byte[] array = _arrays[last];
            _arrays[last] = null!;
            Volatile.Write(ref _count, last);
            return array;
        }
    }
}
