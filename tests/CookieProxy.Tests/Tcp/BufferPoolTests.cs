using CookieProxy.Tcp;

namespace CookieProxy.Tests.Tcp;

/// <summary>The ring buffer pool and the rings' written prefix.</summary>
public class BufferPoolTests
{
    private static byte[] Filled(byte value, int count) => Enumerable.Repeat(value, count).ToArray();

    // --- the pool ---

    [Fact]
    public void A_returned_array_is_the_next_one_rented_and_every_step_is_counted()
    {
        var pool = new RingBufferPool(64, maxPooled: 4);
        byte[] a = pool.Rent();
        byte[] b = pool.Rent();
        Assert.Equal(64, a.Length);
        Assert.NotSame(a, b);
        Assert.Equal((2L, 2L, 0L, 0, 2L), (pool.Rented, pool.Created, pool.Returned, pool.Pooled, pool.Outstanding));

        pool.Return(b, 0);
        pool.Return(a, 0);
        Assert.Equal((2L, 2, 0L), (pool.Returned, pool.Pooled, pool.Outstanding));

        Assert.Same(a, pool.Rent());
        Assert.Same(b, pool.Rent());
        Assert.Equal((4L, 2L, 0), (pool.Rented, pool.Created, pool.Pooled));
        Assert.Equal(2, pool.Outstanding);
    }

    [Fact]
    public void The_pool_keeps_at_most_max_pooled_free_arrays_and_leaves_the_rest_to_the_gc()
    {
        var pool = new RingBufferPool(64, maxPooled: 2);
        byte[][] rented = Enumerable.Range(0, 5).Select(_ => pool.Rent()).ToArray();
        foreach (byte[] array in rented)
        {
            pool.Return(array, 0);
        }

        Assert.Equal(2, pool.Pooled);
        Assert.Equal(3, pool.Discarded);
        Assert.Equal(5, pool.Returned);

        for (int i = 0; i < 3; i++)
        {
            pool.Rent();
        }

        Assert.Equal(6, pool.Created); // two came from the free list, one was new
        Assert.Equal(0, pool.Pooled);
    }

    [Fact]
    public void A_pool_that_keeps_nothing_allocates_every_array_like_no_pool()
    {
        var pool = new RingBufferPool(64, maxPooled: 0);
        byte[] a = pool.Rent();
        pool.Return(a, 64);
        Assert.NotSame(a, pool.Rent());
        Assert.Equal((2L, 1L), (pool.Created, pool.Discarded));
    }

    [Fact]
    public void Return_clears_the_written_prefix_so_every_rented_array_is_all_zero()
    {
        var pool = new RingBufferPool(4096, maxPooled: 1);
        byte[] a = pool.Rent();
        a.AsSpan(0, 3000).Fill(0xA5);
        pool.Return(a, 3000);

        byte[] again = pool.Rent();
        Assert.Same(a, again);
        Assert.False(again.AsSpan().ContainsAnyExcept((byte)0));
    }

    [Fact]
    public void Return_refuses_an_array_of_another_length_or_a_written_length_outside_it()
    {
        var pool = new RingBufferPool(64, maxPooled: 4);
        Assert.Throws<ArgumentException>(() => pool.Return(new byte[65], 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Return(pool.Rent(), 65));
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.Return(pool.Rent(), -1));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RingBufferPool(0, 4));
        Assert.Throws<ArgumentOutOfRangeException>(() => new RingBufferPool(64, -1));
    }

    // --- the ring's written prefix and release ---

    [Fact]
    public void The_ring_tracks_the_prefix_it_wrote_through_appends_out_of_order_writes_and_commits()
    {
        var ring = new ByteRing(100);
        Assert.Equal(0, ring.Written);
        ring.Append(new byte[10]);
        Assert.Equal(10, ring.Written);
        ring.WriteAt(40, new byte[5]);     // out of order, not yet committed: written all the same
        Assert.Equal(45, ring.Written);
        ring.WriteAt(90, ReadOnlySpan<byte>.Empty);
        Assert.Equal(45, ring.Written);

        ring.GetFree(out Span<byte> head, out _);
        head[..20].Fill(1);
        ring.Commit(20);                   // received into the free space: [10, 30)
        Assert.Equal(45, ring.Written);
        ring.Commit(40);                   // [30, 70)
        Assert.Equal(70, ring.Written);

        ring.Consume(70);
        ring.Append(new byte[40]);         // wraps: the whole array has been written
        Assert.Equal(100, ring.Written);
    }

    [Fact]
    public void A_released_ring_gives_its_array_back_once_and_then_holds_nothing()
    {
        var pool = new RingBufferPool(64, maxPooled: 4);
        var ring = new ByteRing(pool);
        ring.Append(Filled(7, 50));
        ring.Consume(20);

        ring.Release();
        Assert.Equal((1L, 1), (pool.Returned, pool.Pooled));
        Assert.Equal((0, 0, 0), (ring.Capacity, ring.Count, ring.Free));
        Assert.Equal(0, ring.Append(Filled(1, 10)));
        ring.Peek(0, 0, out ReadOnlySpan<byte> head, out ReadOnlySpan<byte> tail);
        Assert.True(head.IsEmpty && tail.IsEmpty);
        Assert.ThrowsAny<ArgumentException>(() => ring.WriteAt(0, [1]));

        ring.Release();
        Assert.Equal(1, pool.Returned);
        Assert.False(pool.Rent().AsSpan().ContainsAnyExcept((byte)0));
    }
}
