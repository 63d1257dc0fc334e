using CookieProxy.Tcp;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Tcp;

/// <summary>The building blocks: ring buffer, range set, RTT estimator.</summary>
public class HelperTypeTests
{
    [Fact]
    public void The_ring_hands_out_its_free_space_in_two_pieces_for_receiving_into()
    {
        var ring = new ByteRing(8);
        ring.Append([1, 2, 3, 4, 5, 6]);
        ring.Consume(4);    // read position 4, count 2: free is [6..8) then [0..4)
        ring.GetFree(out Span<byte> head, out Span<byte> tail);
        Assert.Equal(2, head.Length);
        Assert.Equal(4, tail.Length);
        head.Fill(7);
        tail[..1].Fill(8);
        ring.Commit(3);
        Assert.Equal(5, ring.Count);
        ring.Peek(0, 5, out ReadOnlySpan<byte> h, out ReadOnlySpan<byte> t);
        Assert.Equal(new byte[] { 5, 6, 7, 7, 8 }, h.ToArray().Concat(t.ToArray()).ToArray());

        ring.Append([9, 9, 9]);
        ring.GetFree(out head, out tail);
        Assert.True(head.IsEmpty);
        Assert.True(tail.IsEmpty);
    }

    [Fact]
    public void The_ring_wraps_and_peeks_in_two_pieces()
    {
        var ring = new ByteRing(8);
        Assert.Equal(6, ring.Append([1, 2, 3, 4, 5, 6]));
        ring.Consume(5);
        Assert.Equal(7, ring.Append([7, 8, 9, 10, 11, 12, 13, 14, 15]));
        ring.Peek(0, ring.Count, out ReadOnlySpan<byte> head, out ReadOnlySpan<byte> tail);
        Assert.Equal([6, 7, 8], head.ToArray());
        Assert.Equal([9, 10, 11, 12, 13], tail.ToArray());
        Assert.Equal(0, ring.Free);
    }

    [Fact]
    public void The_ring_accepts_out_of_order_writes_committed_later()
    {
        var ring = new ByteRing(8);
        ring.WriteAt(3, [4, 5]);
        ring.WriteAt(0, [1, 2, 3]);
        ring.Commit(5);
        ring.Peek(0, 5, out ReadOnlySpan<byte> head, out _);
        Assert.Equal([1, 2, 3, 4, 5], head.ToArray());
    }

    [Fact]
    public void The_range_set_merges_overlapping_and_touching_ranges_and_counts_new_bytes()
    {
        var set = new SeqRangeSet(4);
        var b = new SeqNumber(0xFFFF_FFF0); // across the wrap
        Assert.Equal(10, set.Add(b + 10, b + 20));
        Assert.Equal(10, set.Add(b + 30, b + 40));
        Assert.Equal(10, set.Add(b + 20, b + 30));
        Assert.Equal(1, set.Count);
        Assert.Equal(0, set.Add(b + 15, b + 25));
        Assert.Equal(b + 40, set.AdvanceFrom(b + 10));
        Assert.Equal(0, set.Count);
    }

    [Fact]
    public void The_range_set_refuses_a_new_range_when_full()
    {
        var set = new SeqRangeSet(2);
        set.Add(new SeqNumber(10), new SeqNumber(20));
        set.Add(new SeqNumber(30), new SeqNumber(40));
        Assert.Equal(-1, set.Add(new SeqNumber(50), new SeqNumber(60)));
        Assert.Equal(5, set.Add(new SeqNumber(40), new SeqNumber(45)));
    }

    [Fact]
    public void The_range_set_reports_the_most_recent_ranges_first()
    {
        var set = new SeqRangeSet(8);
        set.Add(new SeqNumber(10), new SeqNumber(20));
        set.Add(new SeqNumber(50), new SeqNumber(60));
        set.Add(new SeqNumber(30), new SeqNumber(40));
        SackBlocks blocks = default;
        Assert.Equal(2, set.MostRecent(ref blocks, 2));
        Assert.Equal(new SackBlock(new SeqNumber(30), new SeqNumber(40)), blocks[0]);
        Assert.Equal(new SackBlock(new SeqNumber(50), new SeqNumber(60)), blocks[1]);
    }

    [Fact]
    public void The_rtt_estimator_follows_rfc_6298()
    {
        var rtt = new RttEstimator(1000, 200, 60_000);
        Assert.Equal(1000, rtt.RtoMs);
        rtt.Sample(100);
        Assert.Equal(100, rtt.SmoothedRttMs);
        Assert.Equal(50, rtt.RttVarMs);
        Assert.Equal(300, rtt.RtoMs);
        rtt.Sample(200);
        // RTTVAR = 3/4 * 50 + 1/4 * 100 = 62.5; SRTT = 7/8 * 100 + 1/8 * 200 = 112.5
        Assert.Equal(112, rtt.SmoothedRttMs);
        Assert.Equal(362, rtt.RtoMs);
        rtt.Backoff();
        Assert.Equal(724, rtt.RtoMs);
    }
}
