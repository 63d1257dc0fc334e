using System.Buffers;
using System.Collections.Concurrent;

namespace CookieProxy.Host.Backend;

/// <summary>
/// Fixed-size pinned blocks for the backend pipes, after Kestrel's PinnedBlockMemoryPool. ArrayPool.Shared
/// keeps returned arrays in the returning thread's slot, and our blocks are rented on one thread (the capture
/// thread for output, a pool thread for input) and returned on another, so it misses now and then; this pool
/// is one lock-free queue, so in steady state renting allocates nothing. Blocks live on the pinned object heap
/// (no pinning cost for socket I/O). The free list is bounded (<see cref="MaxFreeBlocks"/>): a burst of thousands
/// of flows with full pipes does not keep its peak for ever; blocks returned beyond it go to the GC.
/// </summary>
public sealed class BlockMemoryPool : MemoryPool<byte>
{
    /// <summary>16 KiB: a few MSS-sized client segments per block, and a reasonable receive size.</summary>
    public const int BlockSize = 16 * 1024;

    /// <summary>Free blocks kept at most by <see cref="Shared"/>: 32 MiB, a few hundred busy pipes' worth.</summary>
    public const int DefaultMaxFreeBlocks = 2048;

    public static new BlockMemoryPool Shared { get; } = new();

    private readonly ConcurrentQueue<Block> _free = new();
    private int _freeCount;

    public BlockMemoryPool(int maxFreeBlocks = DefaultMaxFreeBlocks)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(maxFreeBlocks);
        MaxFreeBlocks = maxFreeBlocks;
    }

    /// <summary>Free blocks kept at most; more are left to the GC.</summary>
    public int MaxFreeBlocks { get; }

    /// <summary>Free blocks held now.</summary>
    public int FreeBlocks => Volatile.Read(ref _freeCount);

    public override int MaxBufferSize => BlockSize;

    /// <summary>Blocks ever allocated (for tests and stats).</summary>
    public long BlocksAllocated => Volatile.Read(ref _blocksAllocated);

    private long _blocksAllocated;

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, BlockSize);
        if (_free.TryDequeue(out Block? block))
        {
            Interlocked.Decrement(ref _freeCount);
            block.Rented = true;
            return block;
        }
        Interlocked.Increment(ref _blocksAllocated);
        return new Block(this) { Rented = true };
    }

    protected override void Dispose(bool disposing)
    {
        // Shared for the process lifetime; blocks are reclaimed by the GC with the pool.
    }

    private void Return(Block block)
    {
        // Counted before the enqueue, so concurrent returns never keep more than MaxFreeBlocks.
        if (Interlocked.Increment(ref _freeCount) > MaxFreeBlocks)
        {
            Interlocked.Decrement(ref _freeCount);
            return;    // beyond the bound: the GC takes it
        }
        _free.Enqueue(block);
    }

    private sealed class Block : IMemoryOwner<byte>
    {
        private readonly BlockMemoryPool _pool;
        private readonly byte[] _array = GC.AllocateUninitializedArray<byte>(BlockSize, pinned: true);

        public Block(BlockMemoryPool pool) => _pool = pool;

        public bool Rented;

        public Memory<byte> Memory => _array;

        public void Dispose()
        {
            if (Rented)
            {
                Rented = false;
                _pool.Return(this);
            }
        }
    }
}
