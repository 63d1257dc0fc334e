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
public sealed class RingBufferPool
{
    private readonly byte[][] _free;
    private int _count;

    /// <param name="arrayLength">Length of every array (the ring capacity, <see cref="TcpConfig.ReceiveBufferSize"/>).</param>
    /// <param name="maxPooled">Free arrays kept at most; 0 keeps none (every rent allocates, as without a pool).</param>
    public RingBufferPool(int arrayLength, int maxPooled)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(arrayLength, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(maxPooled);
        ArrayLength = arrayLength;
        _free = new byte[maxPooled][];
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
