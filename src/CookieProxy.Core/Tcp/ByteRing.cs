namespace CookieProxy.Tcp;

/// <summary>
/// A fixed-capacity byte ring addressed by offset from the read position. The send side appends and
/// consumes; the receive side also writes out-of-order bytes beyond the contiguous part and commits them
/// once the hole before them fills (smoltcp's <c>write_unallocated</c>/<c>enqueue_unallocated</c>).
/// Allocates once, in the constructor.
/// </summary>
internal sealed class ByteRing
{
    private readonly byte[] _buffer;
    private int _read;
    private int _count;

    public ByteRing(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _buffer = new byte[capacity];
    }

    public int Capacity => _buffer.Length;

    /// <summary>Contiguous bytes readable from the read position.</summary>
    public int Count => _count;

    /// <summary>Space after the contiguous part.</summary>
    public int Free => _buffer.Length - _count;

    /// <summary>Appends as much of <paramref name="data"/> as fits; returns the number of bytes taken.</summary>
    public int Append(ReadOnlySpan<byte> data)
    {
        int n = Math.Min(data.Length, Free);
        WriteAt(_count, data[..n]);
        _count += n;
        return n;
    }

    /// <summary>The free space after the contiguous part as (up to two) writable pieces; <see cref="Commit"/> what was written.</summary>
    public void GetFree(out Span<byte> head, out Span<byte> tail)
    {
        int start = _read + _count;
        if (start >= _buffer.Length)
        {
            start -= _buffer.Length;
        }

        int free = Free;
        int first = Math.Min(free, _buffer.Length - start);
        head = new Span<byte>(_buffer, start, first);
        tail = new Span<byte>(_buffer, 0, free - first);
    }

    /// <summary>Writes at <paramref name="offset"/> from the read position without changing <see cref="Count"/>.</summary>
    public void WriteAt(int offset, ReadOnlySpan<byte> data)
    {
        int start = _read + offset;
        if (start >= _buffer.Length)
        {
            start -= _buffer.Length;
        }

        int first = Math.Min(data.Length, _buffer.Length - start);
        data[..first].CopyTo(_buffer.AsSpan(start));
        data[first..].CopyTo(_buffer);
    }

    /// <summary>Extends the contiguous part over <paramref name="count"/> bytes already placed by <see cref="WriteAt"/>.</summary>
    public void Commit(int count) => _count += count;

    /// <summary>The (up to two) pieces of [offset, offset + length) of the contiguous part.</summary>
    public void Peek(int offset, int length, out ReadOnlySpan<byte> head, out ReadOnlySpan<byte> tail)
    {
        int start = _read + offset;
        if (start >= _buffer.Length)
        {
            start -= _buffer.Length;
        }

        int first = Math.Min(length, _buffer.Length - start);
        head = new ReadOnlySpan<byte>(_buffer, start, first);
        tail = new ReadOnlySpan<byte>(_buffer, 0, length - first);
    }

    public void Consume(int count)
    {
        _read += count;
        if (_read >= _buffer.Length)
        {
            _read -= _buffer.Length;
        }

        _count -= count;
    }

    public void Clear()
    {
        _read = 0;
        _count = 0;
    }
}
