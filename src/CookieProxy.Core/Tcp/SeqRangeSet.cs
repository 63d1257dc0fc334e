using CookieProxy.Wire;

namespace CookieProxy.Tcp;

/// <summary>
/// A bounded, sorted set of disjoint, non-adjacent sequence ranges [Left, Right). Used twice:
/// the receiver's out-of-order reassembly map (the bytes themselves sit in the receive ring) and the
/// sender's SACK scoreboard (RFC 6675 2). Each range remembers when it last grew, so the receiver can
/// report the most recently changed block first (RFC 2018 4). No allocation after construction.
/// </summary>
internal sealed class SeqRangeSet
{
    private readonly SeqNumber[] _left;
    private readonly SeqNumber[] _right;
    private readonly uint[] _stamp;
    private int _count;
    private uint _clock;

    public SeqRangeSet(int capacity)
    {
        capacity = Math.Max(capacity, 1);
        _left = new SeqNumber[capacity];
        _right = new SeqNumber[capacity];
        _stamp = new uint[capacity];
    }

    public int Count => _count;

    public int Capacity => _left.Length;

    public SeqNumber Left(int i) => _left[i];

    public SeqNumber Right(int i) => _right[i];

    /// <summary>Highest Right, or <paramref name="fallback"/> when empty.</summary>
    public SeqNumber HighestOr(SeqNumber fallback) => _count == 0 ? fallback : _right[_count - 1];

    /// <summary>Adds [left, right), merging with overlapping or touching ranges. Returns how many bytes were
    /// new, or -1 when a new range was needed but the set is full (the caller drops the data).</summary>
    public int Add(SeqNumber left, SeqNumber right)
    {
        if (right <= left)
        {
            return 0;
        }

        int i = 0;
        while (i < _count && _right[i] < left)
        {
            i++;
        }

        int j = i;
        while (j < _count && _left[j] <= right)
        {
            j++;
        }

        if (i == j)
        {
            if (_count == _left.Length)
            {
                return -1;
            }

            Array.Copy(_left, i, _left, i + 1, _count - i);
            Array.Copy(_right, i, _right, i + 1, _count - i);
            Array.Copy(_stamp, i, _stamp, i + 1, _count - i);
            _left[i] = left;
            _right[i] = right;
            _stamp[i] = ++_clock;
            _count++;
            return right - left;
        }

        int covered = 0;
        for (int k = i; k < j; k++)
        {
            covered += _right[k] - _left[k];
        }

        SeqNumber newLeft = SeqNumber.Min(left, _left[i]);
        SeqNumber newRight = SeqNumber.Max(right, _right[j - 1]);
        int gaps = newRight - newLeft - covered;
        _left[i] = newLeft;
        _right[i] = newRight;
        if (gaps > 0)
        {
            _stamp[i] = ++_clock;
        }

        RemoveAt(i + 1, j - i - 1);
        return gaps;
    }

    /// <summary>Receiver: pops the ranges that <paramref name="next"/> reaches and returns the new RCV.NXT.</summary>
    public SeqNumber AdvanceFrom(SeqNumber next)
    {
        int k = 0;
        while (k < _count && _left[k] <= next)
        {
            next = SeqNumber.Max(next, _right[k]);
            k++;
        }

        RemoveAt(0, k);
        return next;
    }

    /// <summary>Sender: forgets everything below <paramref name="una"/> (cumulatively acknowledged).</summary>
    public void RemoveBelow(SeqNumber una)
    {
        int k = 0;
        while (k < _count && _right[k] <= una)
        {
            k++;
        }

        RemoveAt(0, k);
        if (_count > 0 && _left[0] < una)
        {
            _left[0] = una;
        }
    }

    /// <summary>Index of the range containing <paramref name="seq"/>, or -1.</summary>
    public int IndexContaining(SeqNumber seq)
    {
        for (int i = 0; i < _count; i++)
        {
            if (_left[i] > seq)
            {
                return -1;
            }

            if (seq < _right[i])
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>First sequence number in [left, right) not covered by any range, or <paramref name="right"/>.</summary>
    public SeqNumber FirstUncovered(SeqNumber left, SeqNumber right)
    {
        SeqNumber seq = left;
        for (int i = 0; i < _count && _left[i] <= seq; i++)
        {
            if (_right[i] > seq)
            {
                seq = _right[i];
            }
        }

        return SeqNumber.Min(seq, right);
    }

    /// <summary>Index of the first range whose Left is above <paramref name="seq"/>, or -1.</summary>
    public int IndexAbove(SeqNumber seq)
    {
        for (int i = 0; i < _count; i++)
        {
            if (_left[i] > seq)
            {
                return i;
            }
        }

        return -1;
    }

    /// <summary>
    /// Fills <paramref name="blocks"/> with up to <paramref name="max"/> ranges, most recently grown first
    /// (RFC 2018 4: the first block holds the most recently received segment). Returns the count.
    /// </summary>
    public int MostRecent(ref SackBlocks blocks, int max) => MostRecent(ref blocks, 0, max, skip: -1);

    /// <summary>
    /// As above, writing from <paramref name="start"/> and leaving out range <paramref name="skip"/> (after a
    /// D-SACK block and the range holding it, RFC 2883 4).
    /// </summary>
    public int MostRecent(ref SackBlocks blocks, int start, int max, int skip)
    {
        int n = Math.Min(max, _count - (skip >= 0 ? 1 : 0));
        uint below = uint.MaxValue;
        for (int b = 0; b < n; b++)
        {
            int best = -1;
            for (int i = 0; i < _count; i++)
            {
                if (i != skip && _stamp[i] < below && (best < 0 || _stamp[i] > _stamp[best]))
                {
                    best = i;
                }
            }

            blocks[start + b] = new SackBlock(_left[best], _right[best]);
            below = _stamp[best];
        }

        return n;
    }

    public void Clear() => _count = 0;

    private void RemoveAt(int index, int n)
    {
        if (n <= 0)
        {
            return;
        }

        int tail = _count - index - n;
        Array.Copy(_left, index + n, _left, index, tail);
        Array.Copy(_right, index + n, _right, index, tail);
        Array.Copy(_stamp, index + n, _stamp, index, tail);
        _count -= n;
    }
}
