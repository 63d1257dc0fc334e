using CookieProxy.Tcp;

namespace CookieProxy.Tests.Tcp;

/// <summary>The per-segment send records: flags move bytes between the pipe's counts exactly.</summary>
public class RetransmitQueueTests
{
    private struct Collect : IDeliveredVisitor
    {
        public int Count;
        public long LastXmitNumber;

        public void Delivered(in TxRecord record)
        {
            Count++;
            LastXmitNumber = record.XmitNumber;
        }
    }

    private static RetransmitQueue Ten(out SeqNumber start)
    {
        start = new SeqNumber(0xFFFF_FF00); // wraps inside the queue
        var q = new RetransmitQueue();
        for (int i = 0; i < 10; i++)
        {
            q.Append(start + (i * 100), start + ((i + 1) * 100), xmitMs: i, xmitNumber: i);
        }

        return q;
    }

    [Fact]
    public void Sacked_lost_and_retransmitted_bytes_are_counted_as_the_flags_change()
    {
        RetransmitQueue q = Ten(out _);
        q.MarkSacked(2);
        q.MarkLost(0);
        q.MarkLost(1);
        Assert.Equal((100, 200, 0, 2), (q.SackedBytes, q.LostBytes, q.RetransBytes, q.LostPendingCount));

        q.MarkRetransmitted(0, xmitMs: 50, xmitNumber: 10);
        Assert.Equal((100, 200, 100, 1), (q.SackedBytes, q.LostBytes, q.RetransBytes, q.LostPendingCount));
        Assert.True(q[0].Is(TxFlags.EverRetrans));

        q.MarkLost(0); // the retransmission was lost too: out of the pipe again, waiting
        Assert.Equal((200, 0, 2), (q.LostBytes, q.RetransBytes, q.LostPendingCount));

        q.MarkSacked(1); // SACKed after being marked lost: delivered, no longer lost
        Assert.Equal((200, 100, 0, 1), (q.SackedBytes, q.LostBytes, q.RetransBytes, q.LostPendingCount));
        q.MarkLost(1);   // a SACKed record is never lost again
        Assert.Equal(100, q.LostBytes);
    }

    [Fact]
    public void A_cumulative_ack_removes_whole_records_reports_the_unsacked_ones_and_trims_a_cut_record()
    {
        RetransmitQueue q = Ten(out SeqNumber start);
        q.MarkSacked(1);
        q.MarkLost(3);
        var visitor = new Collect();
        q.RemoveAcked(start + 350, ref visitor);
        Assert.Equal(2, visitor.Count);            // records 0 and 2 (1 was SACKed); half of the lost 3 stays
        Assert.Equal(2, visitor.LastXmitNumber);
        Assert.Equal(7, q.Count);
        Assert.Equal(start + 350, q[0].Start);
        Assert.Equal(50, q.LostBytes);             // half of record 3 left
        Assert.Equal(0, q.SackedBytes);
        Assert.Equal(1, q.LostPendingCount);
    }

    [Fact]
    public void The_index_after_a_sequence_number_is_found_across_the_wrap()
    {
        RetransmitQueue q = Ten(out SeqNumber start);
        Assert.Equal(0, q.IndexAfter(start));
        Assert.Equal(3, q.IndexAfter(start + 300));
        Assert.Equal(3, q.IndexAfter(start + 399));
        Assert.Equal(10, q.IndexAfter(start + 1000));
    }

    [Fact]
    public void Growing_keeps_the_records_in_order_and_clear_forgets_everything()
    {
        var q = new RetransmitQueue();
        var start = new SeqNumber(5);
        var visitor = new Collect();
        for (int i = 0; i < 1000; i++)
        {
            q.Append(start + i, start + i + 1, i, i);
            if (i % 3 == 0)
            {
                q.RemoveAcked(start + (i / 2), ref visitor); // the head moves while the array grows
            }
        }

        for (int i = 1; i < q.Count; i++)
        {
            Assert.Equal(q[i - 1].End, q[i].Start);
        }

        Assert.Equal(start + 1000, q.Last.End);
        q.Clear();
        Assert.Equal((0, 0, 0, 0), (q.Count, q.SackedBytes, q.LostBytes, q.RetransBytes));
        q.Append(start, start + 1, 0, 0); // usable again after Clear
        Assert.Equal(1, q.Count);
    }
}
