using CookieProxy.Tcp;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Tcp;

/// <summary>The ring buffer pool, the rings' written prefix, and when an endpoint hands its rings back.</summary>
public class BufferPoolTests : TcpTestBase
{
    private const int RingSize = 16 * 1024;

    private static TcpConfig SmallRings() => new() { ReceiveBufferSize = RingSize, SendBufferSize = RingSize };

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

    // --- the endpoint ---

    [Fact]
    public void Release_buffers_returns_both_rings_and_the_next_endpoint_reuses_the_same_arrays()
    {
        Pool = new RingBufferPool(RingSize, maxPooled: 4);
        InEstablished(SmallRings());
        Assert.Equal((2L, 2L), (Pool.Created, Pool.Outstanding));

        Ep.ReleaseBuffers();
        Assert.Equal((0L, 2), (Pool.Outstanding, Pool.Pooled));

        InEstablished(SmallRings());
        Assert.Equal(2, Pool.Created);
        Assert.Equal(2, Pool.Outstanding);
    }

    [Fact]
    public void Rings_of_another_size_than_the_pools_arrays_are_allocated_and_never_returned()
    {
        Pool = new RingBufferPool(RingSize, maxPooled: 4);
        InEstablished(new TcpConfig { ReceiveBufferSize = RingSize, SendBufferSize = 2 * RingSize });
        Assert.Equal(1, Pool.Outstanding);
        Assert.Equal(2 * RingSize, Ep.SendBufferFree);

        Ep.ReleaseBuffers();
        Assert.Equal((1L, 1), (Pool.Returned, Pool.Pooled));
    }

    [Fact]
    public void After_release_a_live_endpoint_is_closed_and_buffers_nothing()
    {
        Pool = new RingBufferPool(RingSize, maxPooled: 4);
        InEstablished(SmallRings());
        SendData(300);
        Assert.Equal(1000, Ep.Send(Filled(9, 1000)));

        Ep.ReleaseBuffers();
        Assert.Equal(TcpState.Closed, Ep.State);
        Assert.Equal(TcpCloseReason.Aborted, Ep.CloseReason);
        Assert.True(Ep.IsClosed);
        Assert.Equal(0, Ep.ReceiveAvailable);
        Assert.Equal(0, Ep.SendBufferFree);
        Assert.Equal(0, Ep.SendBufferUsed);
        Assert.Equal(0, Ep.Send(Filled(9, 10)));
        Ep.GetSendSpace(out Span<byte> head, out Span<byte> tail);
        Assert.True(head.IsEmpty && tail.IsEmpty);
        Ep.PeekReceived(out ReadOnlySpan<byte> rh, out ReadOnlySpan<byte> rt);
        Assert.True(rh.IsEmpty && rt.IsEmpty);
        Assert.Throws<ArgumentOutOfRangeException>(() => Ep.ConsumeReceived(1));
        Assert.Throws<ArgumentOutOfRangeException>(() => Ep.CommitSend(1));

        long dropped = Ep.SegmentsDropped;
        SendData(100);
        Assert.Equal(dropped + 1, Ep.SegmentsDropped);
        RecvNothing();

        Ep.ReleaseBuffers();
        Assert.Equal(2, Pool.Returned);
    }

    [Fact]
    public void An_abort_still_resets_the_client_after_the_buffers_were_released()
    {
        Pool = new RingBufferPool(RingSize, maxPooled: 4);
        InEstablished(SmallRings());
        SendData(300);
        Ep.Abort();
        Assert.Equal(1, Pool.Outstanding); // the send ring at once; the receive ring still holds 300 bytes

        Ep.ReleaseBuffers();
        Assert.Equal(0, Pool.Outstanding);
        Assert.Equal(TcpFlags.Rst | TcpFlags.Ack, Recv().Flags);
        Assert.True(Ep.IsClosed);
    }

    [Fact]
    public void A_time_wait_endpoint_gives_its_rings_back_and_still_acknowledges_a_retransmitted_fin()
    {
        Pool = new RingBufferPool(256 * 1024, maxPooled: 4);
        InTimeWait();
        Assert.Equal((0L, 2), (Pool.Outstanding, Pool.Pooled));

        Advance(100);
        Send(ClientNext - 1, flags: TcpFlags.Fin | TcpFlags.Ack);
        Recv(OurNext, ClientNext);
        Assert.Equal(TcpState.TimeWait, Ep.State);
    }

    [Fact]
    public void Bytes_the_backend_has_not_taken_keep_the_receive_ring_until_consumed()
    {
        Pool = new RingBufferPool(256 * 1024, maxPooled: 4);
        InFinWait2();
        byte[] data = Pattern(ClientNext, 700);
        Send(ClientNext, payload: data, flags: TcpFlags.Fin | TcpFlags.Ack);
        ClientNext += 701;
        Recv(OurNext, ClientNext);
        Assert.Equal(TcpState.TimeWait, Ep.State);
        Assert.Equal(1, Pool.Outstanding);

        Ep.PeekReceived(out ReadOnlySpan<byte> head, out _);
        Assert.Equal(data.AsSpan(0, 200).ToArray(), head[..200].ToArray());
        Ep.ConsumeReceived(200);
        Assert.Equal(1, Pool.Outstanding);
        Assert.Equal(data.AsSpan(200).ToArray(), ReadAll());
        Assert.Equal(0, Pool.Outstanding);
        Assert.True(Ep.ReceiveFinished);
    }

    /// <summary>
    /// The pool hands the arrays out last-in first-out, so they swap roles from flow to flow: the first flow's
    /// receive ring (with its out-of-order data) becomes the second flow's send ring and vice versa.
    /// </summary>
    [Fact]
    public void A_flow_with_out_of_order_data_and_sack_holes_never_shows_its_bytes_to_the_next_flow()
    {
        Pool = new RingBufferPool(RingSize, maxPooled: 4);

        // Flow A: 1000 bytes taken by the backend, then two out-of-order ranges held for reassembly behind a
        // hole that never fills; 12000 backend bytes sent, a SACK hole in them; then A ends.
        InEstablished(SmallRings(), Handshake(sack: true));
        Send(ClientNext, payload: Filled(0xA1, 1000));
        ClientNext += 1000;
        Assert.Equal(1000, ReadAll().Length);
        Send(ClientNext + 500, payload: Filled(0xA2, 3000));
        Send(ClientNext + 5000, payload: Filled(0xA3, 2000));
        Assert.Equal(2, DispatchAll()[^1].Repr.Options.SackCount);
        Assert.Equal(12_000, Ep.Send(Filled(0xB1, 12_000)));
        Assert.Equal(12_000, DispatchAll().Sum(s => s.Payload.Length));
        Send(ClientNext, ack: OurNext + 1460, sack: new SackBlock(OurNext + 4380, OurNext + 8760));
        Ep.ReleaseBuffers();
        Assert.Equal(2, Pool.Pooled);

        // Flow B gets A's arrays. The free space it offers the backend socket is all zero.
        InEstablished(SmallRings(), Handshake(sack: true));
        Assert.Equal(2, Pool.Created);
        AssertSendSpaceIsZero();

        // Out-of-order data where A's sat, then the hole before it: B reads exactly what its client sent, and
        // its SACK blocks name only its own range.
        SeqNumber c = ClientNext;
        Send(c + 500, payload: Pattern(c + 500, 3000));
        Assert.Equal(0, Ep.ReceiveAvailable);
        SentSegment dupAck = Recv(OurNext, c);
        Assert.Equal(1, dupAck.Repr.Options.SackCount);
        Assert.Equal(new SackBlock(c + 500, c + 3500), dupAck.Repr.Options.Sack[0]);
        Send(c, payload: Pattern(c, 500));
        Assert.Equal(Pattern(c, 3500), ReadAll());
        Assert.Equal(0, Ep.ReceiveAvailable);

        // B's backend bytes, appended and received into the send space: only they go out.
        byte[] appended = Pattern(new SeqNumber(77), 3000);
        Assert.Equal(appended.Length, Ep.Send(appended));
        Ep.GetSendSpace(out Span<byte> head, out _);
        head[..100].Fill(0x5A);
        Ep.CommitSend(100);
        byte[] sent = DispatchAll().SelectMany(s => s.Payload).ToArray();
        Assert.Equal([.. appended, .. Filled(0x5A, 100)], sent);

        // And a third flow, whose send ring is A's (then B's receive) array.
        Ep.ReleaseBuffers();
        InEstablished(SmallRings(), Handshake(sack: true));
        Assert.Equal(2, Pool.Created);
        AssertSendSpaceIsZero();
    }

    private void AssertSendSpaceIsZero()
    {
        Ep.GetSendSpace(out Span<byte> head, out Span<byte> tail);
        Assert.Equal(RingSize, head.Length + tail.Length);
        Assert.False(head.ContainsAnyExcept((byte)0), "the send space holds another flow's bytes");
        Assert.False(tail.ContainsAnyExcept((byte)0), "the send space holds another flow's bytes");
    }

    [Fact]
    public void A_grown_ring_keeps_its_wrapped_bytes_in_order_and_returns_its_old_array()
    {
        var pool = new RingBufferPool(8, maxPooled: 2);
        var ring = new ByteRing(pool);
        ring.Append([1, 2, 3, 4, 5, 6]);
        ring.Consume(4);
        ring.Append([7, 8, 9, 10, 11]);    // wraps: 5 6 | 7 8 9 10 11

        ring.Grow(32);

        Assert.Equal(32, ring.Capacity);
        ring.Peek(0, ring.Count, out ReadOnlySpan<byte> head, out ReadOnlySpan<byte> tail);
        byte[] contents = [.. head, .. tail];
        Assert.Equal(new byte[] { 5, 6, 7, 8, 9, 10, 11 }, contents);
        Assert.Equal((1L, 1), (pool.Returned, pool.Pooled));
        Assert.Equal(25, ring.Free);

        ring.Release();    // a 32-byte array is not the pool's: it goes to the GC, not back (which would throw)
        Assert.Equal((1L, 1), (pool.Returned, pool.Pooled));
    }

    [Fact]
    public void Grown_arrays_are_pooled_per_doubling_cleared_and_only_up_to_the_byte_budget()
    {
        var pool = new RingBufferPool(64, maxPooled: 4);    // 256 bytes of base arrays, so 256 of grown ones
        Assert.Equal(256, pool.MaxPooledGrownBytes);
        Assert.True(pool.IsGrownSize(128) && pool.IsGrownSize(256));
        Assert.False(pool.IsGrownSize(64) || pool.IsGrownSize(100) || pool.IsGrownSize(192));

        byte[] a = pool.RentGrown(128);
        byte[] b = pool.RentGrown(128);
        byte[] c = pool.RentGrown(256);
        a.AsSpan(0, 100).Fill(0xA5);
        pool.Return(a, 100);
        pool.Return(b, 0);
        pool.Return(c, 0);    // 128 + 128 + 256 > 256: the last one goes to the GC
        Assert.Equal(256, pool.PooledGrownBytes);

        byte[] again = pool.RentGrown(128);
        Assert.True(ReferenceEquals(again, a) || ReferenceEquals(again, b));
        Assert.False(again.AsSpan().ContainsAnyExcept((byte)0));
        Assert.NotSame(c, pool.RentGrown(256));
        Assert.Equal(4, pool.GrownCreated);
        Assert.Equal(0, pool.Rented);    // base-size counters are not touched
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.RentGrown(100));
    }

    [Fact]
    public void A_ring_grown_to_a_pooled_size_returns_the_grown_array_to_the_pool_on_release()
    {
        var pool = new RingBufferPool(8, maxPooled: 4);
        var ring = new ByteRing(pool);
        ring.Append([1, 2, 3, 4, 5, 6, 7, 8]);

        ring.Grow(32, pool);
        Assert.Equal((1L, 1L), (pool.Returned, pool.GrownCreated));
        ring.Release();

        Assert.Equal(32, pool.PooledGrownBytes);
    }
}
