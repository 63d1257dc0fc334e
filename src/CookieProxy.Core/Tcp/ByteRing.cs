using System.Diagnostics;

namespace CookieProxy.Tcp;

/// <summary>
/// A fixed-capacity byte ring addressed by offset from the read position. The send side appends and
/// consumes; the receive side also writes out-of-order bytes beyond the contiguous part and commits them
/// once the hole before them fills (smoltcp's <c>write_unallocated</c>/<c>enqueue_unallocated</c>).
/// Allocates once, in the constructor, or rents its array from a <see cref="RingBufferPool"/> and gives it
/// back in <see cref="Release"/>.
/// <para>
/// Only the contiguous part [read, read + Count) is ever readable (<see cref="Peek"/>), and every byte of it
/// was placed by this ring's owner: <see cref="Append"/> and <see cref="WriteAt"/> write before they count,
/// <see cref="Commit"/> counts bytes the caller wrote (the receiver commits only ranges its reassembly map
/// recorded as written; the send side only what a socket read returned into <see cref="GetFree"/>'s pieces).
/// So a pooled array needs no clearing for correctness. The pool clears what the previous owner wrote anyway
/// (<see cref="Written"/>) as defence in depth: a future Commit bug would then show zeros, never another
/// client's bytes.
/// </para>
/// </summary>
internal sealed class ByteRing
{
    private byte[] _buffer;
    private RingBufferPool? _pool;
    private int _read;
    private int _count;
    private int _written;

    public ByteRing(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(capacity, 1);
        _buffer = new byte[capacity];
    }

    /// <summary>A ring over an array rented from <paramref name="pool"/> (capacity = the pool's array length).</summary>
    public ByteRing(RingBufferPool pool)
    {
        _buffer = pool.Rent();
        _pool = pool;
    }

    public int Capacity => _buffer.Length;

    /// <summary>Contiguous bytes readable from the read position.</summary>
    public int Count => _count;

    /// <summary>Space after the contiguous part.</summary>
    public int Free => _buffer.Length - _count;

    /// <summary>Every byte ever written into the array lies in its prefix [0, Written).</summary>
    public int Written => _written;

    /// <summary>Appends as much of <paramref name="data"/> as fits; returns the number of bytes taken.</summary>
    public int Append(ReadOnlySpan<byte> data)
    {
        int n = Math.Min(data.Length, Free);
        WriteAt(_count, data[..n]);
        _count += n;
        return n;
    }

    /// <summary>
    /// The free space after the contiguous part as (up to two) writable pieces; <see cref="Commit"/> exactly
    /// what was written. Never read from them: they may hold bytes this ring has not written.
    /// </summary>
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
        if (data.Length > 0)
        {
            // A write that wraps ends at the array's end (first = Length - start), so this covers it too.
            _written = Math.Max(_written, start + first);
        }
    }

    /// <summary>Extends the contiguous part over <paramref name="count"/> bytes already placed by <see cref="WriteAt"/> or into <see cref="GetFree"/>'s pieces.</summary>
    public void Commit(int count)
    {
        Debug.Assert(count >= 0 && count <= Free, "Commit beyond the free space (or into a released ring).");
        int start = _read + _count;
        if (start >= _buffer.Length)
        {
            start -= _buffer.Length;
        }

        _written = Math.Max(_written, Math.Min(start + count, _buffer.Length));
        _count += count;
    }

    /// <summary>The (up to two) pieces of [offset, offset + length) of the contiguous part.</summary>
    public void Peek(int offset, int length, out ReadOnlySpan<byte> head, out ReadOnlySpan<byte> tail)
    {
        Debug.Assert(length == 0 || (offset >= 0 && length > 0 && offset + length <= _count), "Peek outside the contiguous part.");
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
        Debug.Assert(count >= 0 && count <= _count, "Consume beyond the contiguous part.");
        _read += count;
        if (_read >= _buffer.Length)
        {
            _read -= _buffer.Length;
        }

        _count -= count;
    }

    /// <summary>
    /// Moves the contiguous part into a larger array of <paramref name="capacity"/> bytes (starting at offset
    /// 0) and hands the old array back to its pool. The new array comes from <paramref name="pool"/> when it
    /// pools that size (<see cref="RingBufferPool.IsGrownSize"/>), and goes back there on
    /// <see cref="Release"/>; otherwise it is allocated and left to the GC. Only for a ring with nothing
    /// beyond its contiguous part (the send side): bytes written past <see cref="Count"/> are not carried over.
    /// </summary>
    public void Grow(int capacity, RingBufferPool? pool = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThanOrEqual(capacity, _buffer.Length);
        bool pooled = pool is not null && pool.IsGrownSize(capacity);
        byte[] bigger = pooled ? pool!.RentGrown(capacity) : new byte[capacity];
        Peek(0, _count, out ReadOnlySpan<byte> head, out ReadOnlySpan<byte> tail);
        head.CopyTo(bigger);
        tail.CopyTo(bigger.AsSpan(head.Length));
        _pool?.Return(_buffer, _written);
        _pool = pooled ? pool : null;
        _buffer = bigger;
        _read = 0;
        _written = _count;
    }

    public void Clear()
    {
        _read = 0;
        _count = 0;
    }

    /// <summary>
    /// An empty ring starts its next write at the array's start, so the pages it touches stay those of its fill
    /// level instead of wandering over the whole array (memory follows use, like Linux's freed skbs). Only for a
    /// ring with nothing written beyond its contiguous part; no-op unless empty.
    /// </summary>
    public void Rewind()
    {
        if (_count == 0)
        {
            _read = 0;
        }
    }

    /// <summary>
    /// Bytes of the array touched once <paramref name="extra"/> more bytes are written after the contiguous part:
    /// at most <see cref="Capacity"/> (a write that would wrap counts the whole array).
    /// </summary>
    public int TouchedAfter(int extra)
    {
        long end = (long)_read + _count + Math.Max(extra, 0);
        return end > _buffer.Length ? _buffer.Length : Math.Max(_written, (int)end);
    }

    /// <summary>
    /// How far past the contiguous part writes may go while the array's touched bytes stay within
    /// <paramref name="touchedLimit"/> (long.MaxValue: any distance). Writes into pages already touched cost
    /// nothing: once the write position has wrapped it is below the read position, inside what was written.
    /// </summary>
    public long ExtentWithin(long touchedLimit)
    {
        long writeAt = (long)_read + _count;
        if (touchedLimit >= _buffer.Length || writeAt >= _buffer.Length)
        {
            return long.MaxValue;
        }
        return Math.Max(0, touchedLimit - writeAt);
    }

    /// <summary>
    /// An empty ring gives the pages it wrote back to its pool's kernel (the array stays, reading zero). Returns the
    /// bytes released; 0 when not empty, nothing written, or the pool cannot decommit.
    /// </summary>
    public int Trim()
    {
        if (_count != 0 || _written == 0 || _pool is null || !_pool.Decommit(_buffer, _written))
        {
            return 0;
        }
        int released = _written;
        _written = 0;
        _read = 0;
        return released;
    }

    /// <summary>
    /// Done for good: the array goes back to its pool (when rented from one) with its written prefix, and the
    /// ring becomes empty with capacity 0, so reads see nothing and any write fails. Idempotent.
    /// </summary>
    public void Release()
    {
        _pool?.Return(_buffer, _written);
        _pool = null;
        _buffer = [];
        _read = 0;
        _count = 0;
        _written = 0;
    }
}
