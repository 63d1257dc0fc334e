using System.Buffers;
using System.Numerics;

namespace CookieProxy.Tcp;

/// <summary>What the sender knows about one transmitted segment (Linux TCPCB_* sacked bits).</summary>
[Flags]
internal enum TxFlags : byte
{
    None = 0,
    /// <summary>Delivered, reported by a SACK block (RFC 2018); never counted in the pipe again.</summary>
    Sacked = 1,
    /// <summary>Deemed lost (RACK, RFC 8985 6.2; NewReno; RTO): waits for a retransmission, not in the pipe.</summary>
    Lost = 2,
    /// <summary>A retransmitted copy is in flight (Linux TCPCB_SACKED_RETRANS).</summary>
    Retrans = 4,
    /// <summary>Retransmitted at least once: its ACK is ambiguous (Karn, RFC 6298 3; RFC 8985 6.2 step 2).</summary>
    EverRetrans = 8,
}

/// <summary>One transmitted segment [Start, End) (End counts the FIN), with its last transmission time and order.</summary>
internal struct TxRecord
{
    public SeqNumber Start;
    public SeqNumber End;
    /// <summary>When it was last (re)transmitted, on the endpoint's millisecond clock.</summary>
    public long XmitMs;
    /// <summary>Transmission order of that last (re)transmission: RACK's "sent after" (RFC 8985 6.2) without ties.</summary>
    public long XmitNumber;
    public TxFlags Flags;

    public readonly int Length => End - Start;

    public readonly bool Is(TxFlags flag) => (Flags & flag) != 0;
}

/// <summary>
/// The sender's retransmission queue (Linux's rtx queue): one record per segment in flight, in sequence
/// order, contiguous from SND.UNA to SND.NXT. It holds no payload (the bytes stay in the send ring) and keeps
/// the byte counts of the RFC 6675 / Linux "pipe" (packets_in_flight = out - (sacked + lost) + retrans) exact as
/// flags change, so neither the pipe nor loss detection needs a scan. Records are cut where the wire segments
/// are (one per MSS piece of a super-segment), so SACK blocks cover whole records. The array is rented from
/// <see cref="ArrayPool{T}.Shared"/> on the first segment, doubled by renting a larger one, and returned by
/// <see cref="Clear"/> when the connection ends: a warm capture thread allocates nothing for it.
/// </summary>
internal sealed class RetransmitQueue
{
    private const int InitialCapacity = 16;

    /// <summary>Enough for a 4 MiB window of 64-byte segments; beyond it the sender waits for ACKs.</summary>
    public const int MaxCapacity = 1 << 16;

    private TxRecord[] _items = [];
    /// <summary>The power of two of <see cref="_items"/> in use (a rented array may be longer).</summary>
    private int _capacity;
    private int _head;
    private int _count;

    public int Count => _count;

    /// <summary>Bytes SACKed above SND.UNA (Linux sacked_out, in bytes).</summary>
    public int SackedBytes { get; private set; }

    /// <summary>Bytes marked lost and not yet retransmitted (Linux lost_out minus the retransmitted ones).</summary>
    public int LostBytes { get; private set; }

    /// <summary>Bytes whose retransmitted copy is in flight (Linux retrans_out).</summary>
    public int RetransBytes { get; private set; }

    /// <summary>Records that are Lost and not yet retransmitted.</summary>
    public int LostPendingCount { get; private set; }

    public bool IsFull => _count >= MaxCapacity;

    public ref TxRecord this[int index] => ref _items[(_head + index) & (_capacity - 1)];

    public ref TxRecord Last => ref this[_count - 1];

    /// <summary>Appends a freshly sent segment (sequence order: it starts where the last one ended).</summary>
    public void Append(SeqNumber start, SeqNumber end, long xmitMs, long xmitNumber)
    {
        if (_count == _capacity)
        {
            Grow();
        }

        ref TxRecord r = ref this[_count];
        r.Start = start;
        r.End = end;
        r.XmitMs = xmitMs;
        r.XmitNumber = xmitNumber;
        r.Flags = TxFlags.None;
        _count++;
    }

    /// <summary>
    /// Removes what a cumulative ACK covers: whole records ending at or below <paramref name="ack"/>, and the
    /// acknowledged head of a record it cuts. Calls <paramref name="onDelivered"/> for each record that was
    /// not already SACKed (RACK's newly delivered segments, RFC 8985 6.2 step 2) before dropping it.
    /// </summary>
    public void RemoveAcked<TVisitor>(SeqNumber ack, ref TVisitor onDelivered) where TVisitor : struct, IDeliveredVisitor
    {
        while (_count > 0)
        {
            ref TxRecord r = ref this[0];
            if (r.End <= ack)
            {
                if (!r.Is(TxFlags.Sacked))
                {
                    onDelivered.Delivered(in r);
                }

                Account(in r, -1);
                r = default;
                _head = (_head + 1) & (_capacity - 1);
                _count--;
                continue;
            }

            if (r.Start < ack)
            {
                // A partial ACK into the record (a resegmenting middlebox): trim its head like Linux tcp_trim_head.
                Account(in r, -1);
                r.Start = ack;
                Account(in r, +1);
            }

            break;
        }
    }

    /// <summary>Index of the first record with End &gt; <paramref name="seq"/> (binary search); Count when none.</summary>
    public int IndexAfter(SeqNumber seq)
    {
        int lo = 0;
        int hi = _count;
        while (lo < hi)
        {
            int mid = (lo + hi) >>> 1;
            if (this[mid].End <= seq)
            {
                lo = mid + 1;
            }
            else
            {
                hi = mid;
            }
        }

        return lo;
    }

    /// <summary>RFC 2018 / Linux tcp_sacktag_one: the record was SACKed; it leaves the pipe and the loss counts.</summary>
    public void MarkSacked(int index)
    {
        ref TxRecord r = ref this[index];
        Account(in r, -1);
        r.Flags = (r.Flags & TxFlags.EverRetrans) | TxFlags.Sacked;
        Account(in r, +1);
    }

    /// <summary>Linux tcp_mark_skb_lost: a lost retransmission leaves the pipe; the record waits to be sent again.</summary>
    public void MarkLost(int index)
    {
        ref TxRecord r = ref this[index];
        if (r.Is(TxFlags.Sacked))
        {
            return;
        }

        Account(in r, -1);
        r.Flags = (r.Flags & ~TxFlags.Retrans) | TxFlags.Lost;
        Account(in r, +1);
    }

    /// <summary>A (re)transmission of the record left now; a lost record is back in the pipe as a retransmission.</summary>
    public void MarkRetransmitted(int index, long xmitMs, long xmitNumber)
    {
        ref TxRecord r = ref this[index];
        Account(in r, -1);
        r.Flags = (r.Flags & ~TxFlags.Sacked) | TxFlags.Retrans | TxFlags.EverRetrans;
        r.XmitMs = xmitMs;
        r.XmitNumber = xmitNumber;
        Account(in r, +1);
    }

    /// <summary>True when the record is lost and no retransmission of it is in flight: it needs sending.</summary>
    public static bool NeedsRetransmission(in TxRecord r) => (r.Flags & (TxFlags.Lost | TxFlags.Retrans | TxFlags.Sacked)) == TxFlags.Lost;

    /// <summary>Undo (Linux tcp_undo_cwnd_reduction with unmark_loss): no record is lost any more.</summary>
    public void ClearLost()
    {
        if (LostBytes == 0)
        {
            return;
        }

        for (int i = 0; i < _count; i++)
        {
            ref TxRecord r = ref this[i];
            r.Flags &= ~TxFlags.Lost;
        }

        LostBytes = 0;
        LostPendingCount = 0;
    }

    /// <summary>RFC 2018 8 (reneging): forget every SACK; the records are in the pipe again until marked otherwise.</summary>
    public void ClearSacked()
    {
        if (SackedBytes == 0)
        {
            return;
        }

        for (int i = 0; i < _count; i++)
        {
            ref TxRecord r = ref this[i];
            r.Flags &= ~TxFlags.Sacked;
        }

        SackedBytes = 0;
    }

    /// <summary>Forgets every record and returns the array to the pool (the connection sends no more).</summary>
    public void Clear()
    {
        if (_capacity > 0)
        {
            ArrayPool<TxRecord>.Shared.Return(_items);
            _items = [];
            _capacity = 0;
        }

        _head = 0;
        _count = 0;
        SackedBytes = 0;
        LostBytes = 0;
        RetransBytes = 0;
        LostPendingCount = 0;
    }

    /// <summary>Adds (<paramref name="sign"/> = +1) or removes (-1) the record's share of the counts its flags put it in.</summary>
    private void Account(in TxRecord r, int sign)
    {
        int bytes = sign * r.Length;
        if (r.Is(TxFlags.Sacked))
        {
            SackedBytes += bytes;
            return;
        }

        if (r.Is(TxFlags.Lost))
        {
            LostBytes += bytes;
            if (!r.Is(TxFlags.Retrans))
            {
                LostPendingCount += sign;
            }
        }

        if (r.Is(TxFlags.Retrans))
        {
            RetransBytes += bytes;
        }
    }

    private void Grow()
    {
        TxRecord[] items = ArrayPool<TxRecord>.Shared.Rent(Math.Max(_capacity * 2, InitialCapacity));
        int capacity = (int)BitOperations.RoundUpToPowerOf2((uint)items.Length);
        if (capacity != items.Length)
        {
            capacity >>= 1; // use the largest power of two the rented array holds
        }

        for (int i = 0; i < _count; i++)
        {
            items[i] = this[i];
        }

        if (_capacity > 0)
        {
            ArrayPool<TxRecord>.Shared.Return(_items);
        }

        _items = items;
        _capacity = capacity;
        _head = 0;
    }
}

/// <summary>Struct callback for records a cumulative ACK delivers (the JIT specialises it; no delegate, no allocation).</summary>
internal interface IDeliveredVisitor
{
    void Delivered(in TxRecord record);
}
