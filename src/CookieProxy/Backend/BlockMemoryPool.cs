using System.Buffers;
using System.Collections.Concurrent;

namespace CookieProxy.Host.Backend;

/// <summary>
/// Fixed-size pinned blocks for the backend pipes, after Kestrel's PinnedBlockMemoryPool. ArrayPool.Shared
/// keeps returned arrays in the returning thread's slot, and our blocks are rented on one thread (the capture
/// thread for output, a pool thread for input) and returned on another, so it misses now and then; this pool
/// is one lock-free queue, so in steady state renting allocates nothing. Blocks live on the pinned object heap
/// (no pinning cost for socket I/O). The pool never shrinks: it holds the peak, which the pipe thresholds bound.
/// </summary>
public sealed class BlockMemoryPool : MemoryPool<byte>
{
    /// <summary>16 KiB: a few MSS-sized client segments per block, and a reasonable receive size.</summary>
    public const int BlockSize = 16 * 1024;

    public static new BlockMemoryPool Shared { get; } = new();

    private readonly ConcurrentQueue<Block> _free = new();

    public override int MaxBufferSize => BlockSize;

    /// <summary>Blocks ever allocated (for tests and stats).</summary>
    public long BlocksAllocated => Volatile.Read(ref _blocksAllocated);

    private long _blocksAllocated;

    public override IMemoryOwner<byte> Rent(int minBufferSize = -1)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThan(minBufferSize, BlockSize);
        if (_free.TryDequeue(out Block? block))
        {
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

    private void Return(Block block) => _free.Enqueue(block);

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
