using System.Diagnostics;

namespace CookieProxy.Tcp;

/// <summary>
/// The free list of one capture thread's ring buffer arrays, all of one length: a short flow's two
/// 256 KiB rings would otherwise be two Large Object Heap allocations per connection, garbage a moment
/// later (Kestrel's <c>PinnedBlockMemoryPool</c> and smoltcp's caller-provided socket buffers avoid the
/// same churn). Bounded: at most <see cref="MaxPooled"/> free arrays are kept, the rest go back to the GC,
/// so a burst of connections does not pin its peak memory forever.
/// <para>
/// Not thread-safe, by design: every flow of a flow table is created and removed on the table's owner
/// thread, so one pool per capture thread needs no locks (like the per-thread counters).
/// </para>
/// <para>
/// Invariant: every free array is all zero, exactly like <c>new byte[]</c>. <see cref="Return"/> clears the
/// prefix its caller says it may have written, so a rented array cannot show one client's bytes to the
/// next even if a future bug exposed bytes a ring never wrote; without such a bug nothing stale is ever
/// readable anyway (see <see cref="ByteRing"/>). Clearing only the written prefix keeps a short flow's
/// return cheap and leaves the untouched pages of the array untouched (not resident).
/// </para>
/// </summary>
/// <para>
/// Send buffers that autotuning grew (<see cref="TcpEndpoint.ExpandSendBuffer"/>) are kept too, in one free
/// list per doubling of <see cref="ArrayLength"/> (<see cref="RentGrown"/>): every bulk download would
/// otherwise allocate its 512 KiB..4 MiB arrays on the Large Object Heap, have the kernel fault in and zero
/// their pages, and leave them to a gen-2 collection (about one per 100 MiB download in the lab, run on the
/// capture thread). Those lists hold at most <see cref="MaxPooledGrownBytes"/> together.
/// </para>
public sealed class RingBufferPool
{
    /// <summary>Doublings of ArrayLength kept in free lists (256 KiB &lt;&lt; 6 = 16 MiB).</summary>
    private const int GrownClasses = 6;

    private readonly byte[][] _free;
    private int _count;
    private readonly byte[][][] _grownFree = new byte[GrownClasses][][];
    private readonly int[] _grownCount = new int[GrownClasses];

    /// <param name="arrayLength">Length of every array (the ring capacity, <see cref="TcpConfig.ReceiveBufferSize"/>).</param>
    /// <param name="maxPooled">Free arrays kept at most; 0 keeps none (every rent allocates, as without a pool).</param>
    public RingBufferPool(int arrayLength, int maxPooled)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(arrayLength, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(maxPooled);
        ArrayLength = arrayLength;
        _free = new byte[maxPooled][];
        MaxPooledGrownBytes = (long)arrayLength * maxPooled;
        for (int k = 0; k < GrownClasses; k++)
        {
            long length = (long)arrayLength << (k + 1);
            _grownFree[k] = new byte[length > int.MaxValue ? 0 : (int)Math.Min(MaxPooledGrownBytes / length, 64)][];
        }
    }

    /// <summary>Bytes of free grown arrays kept at most (as many bytes as the base-size free list).</summary>
    public long MaxPooledGrownBytes { get; }

    /// <summary>Bytes of free grown arrays held now.</summary>
    public long PooledGrownBytes { get; private set; }

    /// <summary>Grown arrays allocated because their free list was empty.</summary>
    public long GrownCreated { get; private set; }

    /// <summary>
    /// True when <paramref name="length"/> is a size <see cref="RentGrown"/> pools: a doubling of
    /// <see cref="ArrayLength"/> (a ring capped between doublings by a memory budget gets a plain array).
    /// </summary>
    public bool IsGrownSize(int length) => GrownClass(length) >= 0;

    /// <summary>An all-zero array of a grown size (<see cref="IsGrownSize"/>): a free one, or a new one.</summary>
    public byte[] RentGrown(int length)
    {
        int k = GrownClass(length);
        if (k < 0)
        {
            throw new ArgumentOutOfRangeException(nameof(length), length, "Not a doubling of the pool's array length.");
        }

        if (_grownCount[k] > 0)
        {
            byte[] array = _grownFree[k][--_grownCount[k]];
            _grownFree[k][_grownCount[k]] = null!;
            PooledGrownBytes -= array.Length;
            AssertZero(array);
            return array;
        }

        GrownCreated++;
        return new byte[length];
    }

    private int GrownClass(int length)
    {
        for (int k = 0; k < GrownClasses; k++)
        {
            if ((long)ArrayLength << (k + 1) == length)
            {
                return k;
            }
        }

        return -1;
    }

    private void ReturnGrown(byte[] array, int k, int writtenLength)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(writtenLength);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(writtenLength, array.Length);
        if (_grownCount[k] == _grownFree[k].Length || PooledGrownBytes + array.Length > MaxPooledGrownBytes)
        {
            return;    // over the budget: the GC takes it
        }

        array.AsSpan(0, writtenLength).Clear();
        AssertZero(array);
        _grownFree[k][_grownCount[k]++] = array;
        PooledGrownBytes += array.Length;
    }

    public int ArrayLength { get; }

    public int MaxPooled => _free.Length;

    /// <summary>Free arrays held now.</summary>
    public int Pooled => _count;

    /// <summary>Arrays handed out by <see cref="Rent"/> and not yet returned.</summary>
    public long Outstanding => Rented - Returned;

    public long Rented { get; private set; }

    public long Returned { get; private set; }

    /// <summary>Arrays allocated because the free list was empty.</summary>
    public long Created { get; private set; }

    /// <summary>Returned arrays left to the GC because <see cref="MaxPooled"/> were already free.</summary>
    public long Discarded { get; private set; }

    /// <summary>An all-zero array of <see cref="ArrayLength"/> bytes: a free one, or a new one when none is left.</summary>
    public byte[] Rent()
    {
        Rented++;
        if (_count > 0)
        {
            byte[] array = _free[--_count];
            _free[_count] = null!;
            AssertZero(array);
            return array;
        }

        Created++;
        return new byte[ArrayLength];
    }

    /// <summary>
    /// Takes back an array from <see cref="Rent"/>. The caller must not touch it afterwards, and states how
    /// many leading bytes it may have written (<paramref name="writtenLength"/>): they are cleared here.
    /// </summary>
    public void Return(byte[] array, int writtenLength)
    {
        ArgumentNullException.ThrowIfNull(array);
        if (array.Length != ArrayLength && GrownClass(array.Length) is int k and >= 0)
        {
            ReturnGrown(array, k, writtenLength);
            return;
        }

        if (array.Length != ArrayLength)
        {
            throw new ArgumentException($"Array of {array.Length} bytes returned to a pool of {ArrayLength}-byte arrays.", nameof(array));
        }

        ArgumentOutOfRangeException.ThrowIfNegative(writtenLength);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(writtenLength, ArrayLength);
        AssertNotFree(array);
        Returned++;
        if (_count == _free.Length)
        {
            Discarded++;
            return;
        }

        array.AsSpan(0, writtenLength).Clear();
        AssertZero(array);
        _free[_count++] = array;
    }

    /// <summary>Debug builds: the same array returned twice would later serve two flows at once.</summary>
    [Conditional("DEBUG")]
    private void AssertNotFree(byte[] array)
    {
        for (int i = 0; i < _count; i++)
        {
            Debug.Assert(!ReferenceEquals(_free[i], array), "Array returned to the pool twice.");
        }
    }

    /// <summary>Debug builds: a free array is all zero (the caller's writtenLength covered everything it wrote).</summary>
    [Conditional("DEBUG")]
    private static void AssertZero(byte[] array) =>
        Debug.Assert(!array.AsSpan().ContainsAnyExcept((byte)0), "A pooled ring buffer holds bytes its last user did not declare.");
}
