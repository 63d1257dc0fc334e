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
    private readonly byte[][] _cold;
    private int _coldCount;
    private readonly Func<byte[], int, bool>? _decommit;
    /// <summary>Cold arrays shared with the other threads' pools (then <see cref="_cold"/> is empty).</summary>
    private readonly ColdRingDepot? _depot;
    private readonly byte[][][] _grownFree = new byte[GrownClasses][][];
    private readonly int[] _grownCount = new int[GrownClasses];

    /// <param name="arrayLength">Length of every array (the ring capacity, <see cref="TcpConfig.ReceiveBufferSize"/>).</param>
    /// <param name="maxPooled">Free resident arrays kept at most; 0 keeps none (every rent allocates, as without a pool).</param>
    /// <param name="maxColdPooled">Free arrays kept beyond those with their pages decommitted (needs <paramref name="decommit"/>).</param>
    /// <param name="decommit">Gives the pages of <c>array[0..length)</c> back and leaves the range reading zero; false
    /// when it could not (the pool then clears the range itself and keeps the array hot or drops it).</param>
    /// <param name="depot">Keep the cold arrays there, shared with other pools, instead of <paramref name="maxColdPooled"/>
    /// of this pool's own (needs <paramref name="decommit"/>; its arrays must be <paramref name="arrayLength"/> long).</param>
    public RingBufferPool(int arrayLength, int maxPooled, int maxColdPooled = 0, Func<byte[], int, bool>? decommit = null,
        ColdRingDepot? depot = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(arrayLength, 1);
        ArgumentOutOfRangeException.ThrowIfNegative(maxPooled);
        ArgumentOutOfRangeException.ThrowIfNegative(maxColdPooled);
        ArrayLength = arrayLength;
        _free = new byte[maxPooled][];
        _decommit = decommit;
        if (depot is not null && (decommit is null || depot.ArrayLength != arrayLength))
        {
            throw new ArgumentException("A shared cold depot needs a decommit function and arrays of the pool's length.", nameof(depot));
        }
        _depot = depot;
        _cold = new byte[decommit is null || depot is not null ? 0 : maxColdPooled][];
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
        return _decommit is null ? new byte[length] : GC.AllocateArray<byte>(length, pinned: true);
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

    /// <summary>Free resident ("hot") arrays kept at most.</summary>
    public int MaxPooled => _free.Length;

    /// <summary>Free decommitted ("cold") arrays kept at most beyond the hot ones (0 without a decommit function; the
    /// shared depot's capacity with one).</summary>
    public int MaxColdPooled => _depot?.Capacity ?? _cold.Length;

    /// <summary>Free arrays this pool holds now, hot and cold (not counting a shared depot's: see <see cref="SharedColdPooled"/>).</summary>
    public int Pooled => _count + _coldCount;

    /// <summary>Free arrays this pool holds now whose pages were given back (no resident memory).</summary>
    public int ColdPooled => _coldCount;

    /// <summary>The cold arrays of the shared depot (all pools together), 0 without one.</summary>
    public int SharedColdPooled => _depot?.Count ?? 0;

    /// <summary>Times pages were given back: a cold return, a new array, or <see cref="Decommit"/>.</summary>
    public long Decommits { get; private set; }

    /// <summary>Arrays handed out by <see cref="Rent"/> and not yet returned.</summary>
    public long Outstanding => Rented - Returned;

    public long Rented { get; private set; }

    public long Returned { get; private set; }

    /// <summary>Arrays allocated because the free list was empty.</summary>
    public long Created { get; private set; }

    /// <summary>Returned arrays left to the GC because <see cref="MaxPooled"/> were already free.</summary>
    public long Discarded { get; private set; }

    /// <summary>An all-zero array of <see cref="ArrayLength"/> bytes: a free one (hot first), or a new one when none is left.</summary>
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

        if (_coldCount > 0)
        {
            byte[] array = _cold[--_coldCount];
            _cold[_coldCount] = null!;
            AssertZero(array);
            return array;
        }

        if (_depot?.TryPop() is { } shared)
        {
            AssertZero(shared);
            return shared;
        }

        Created++;
        if (_decommit is null)
        {
            return new byte[ArrayLength];
        }

        // Pinned: its pages are given back by address later. Decommitted at once: the GC may have cleared (and so
        // touched) reused heap memory for it, which would be resident for nothing.
        byte[] fresh = GC.AllocateArray<byte>(ArrayLength, pinned: true);
        if (_decommit(fresh, ArrayLength))
        {
            Decommits++;
        }
        return fresh;
    }

    /// <summary>
    /// Gives back the pages of <c>array[0..writtenLength)</c> of an array a ring holds but has emptied (a flow gone
    /// idle): they read zero afterwards. False when this pool cannot (no decommit function, or an array it did not
    /// allocate pinned); the caller then keeps its bytes as they are.
    /// </summary>
    public bool Decommit(byte[] array, int writtenLength)
    {
        ArgumentNullException.ThrowIfNull(array);
        if (_decommit is null || writtenLength <= 0 || !IsPinnedArray(array) || !_decommit(array, writtenLength))
        {
            return false;
        }
        Decommits++;
        return true;
    }

    /// <summary>Every array of the pool's sizes that it allocated while it has a decommit function is pinned; the
    /// rings rent only from their pool, so an array of those sizes handed back here is one of them.</summary>
    private bool IsPinnedArray(byte[] array) => array.Length == ArrayLength || IsGrownSize(array.Length);

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
        if (_count < _free.Length)
        {
            array.AsSpan(0, writtenLength).Clear();
            AssertZero(array);
            _free[_count++] = array;
            return;
        }

        if (_coldCount < _cold.Length && _decommit!(array, writtenLength))
        {
            Decommits++;
            AssertZero(array);
            _cold[_coldCount++] = array;
            return;
        }

        if (_depot is not null && _depot.Count < _depot.Capacity && _decommit!(array, writtenLength))
        {
            Decommits++;
            AssertZero(array);
            if (_depot.TryPush(array))
            {
                return;
            }
        }

        Discarded++;
    }

    /// <summary>Debug builds: the same array returned twice would later serve two flows at once.</summary>
    [Conditional("DEBUG")]
    private void AssertNotFree(byte[] array)
    {
        for (int i = 0; i < _count; i++)
        {
            Debug.Assert(!ReferenceEquals(_free[i], array), "Array returned to the pool twice.");
        }
        for (int i = 0; i < _coldCount; i++)
        {
            Debug.Assert(!ReferenceEquals(_cold[i], array), "Array returned to the pool twice.");
        }
    }

    /// <summary>Debug builds: a free array is all zero (the caller's writtenLength covered everything it wrote).</summary>
    [Conditional("DEBUG")]
    private static void AssertZero(byte[] array) =>
        Debug.Assert(!array.AsSpan().ContainsAnyExcept((byte)0), "A pooled ring buffer holds bytes its last user did not declare.");
}
