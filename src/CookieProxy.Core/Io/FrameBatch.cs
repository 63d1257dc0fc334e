namespace CookieProxy.Io;

/// <summary>Per-frame facts a capture backend knows besides the bytes.</summary>
[Flags]
public enum FrameFlags : byte
{
    None = 0,
    /// <summary>The kernel or NIC vouched for the L4 checksum (TP_STATUS_CSUM_VALID).</summary>
    ChecksumValid = 1,
    /// <summary>The checksum is not filled in yet (TP_STATUS_CSUMNOTREADY: a locally generated frame with
    /// checksum offload, e.g. a veth peer). Verifying it would wrongly drop the frame.</summary>
    ChecksumNotReady = 2,
    /// <summary>The capture truncated the frame (caplen &lt; len).</summary>
    Truncated = 4,
}

/// <summary>
/// A batch of received frames in one pinned buffer, reused for every receive: no allocation per frame.
/// Frames stay valid (and writable, so a SYN+ACK can be built in place) until <see cref="Clear"/>.
/// </summary>
public sealed class FrameBatch
{
    private readonly byte[] _buffer;
    private readonly int[] _offsets;
    private readonly int[] _lengths;
    private readonly FrameFlags[] _flags;
    private int _used;

    /// <summary>Bytes kept free after every frame so a reply can be built in place even when it is longer
    /// than the frame it answers (a bare SYN grows by our SYN+ACK options: at most 40 bytes).</summary>
    public const int TailRoom = 64;

    /// <param name="maxFrames">Frame slots.</param>
    /// <param name="maxFrameBytes">Largest single frame.</param>
    /// <param name="bufferBytes">Total buffer; at least room for a full batch of MTU-sized frames plus one
    /// maximal (GRO) frame, which is the default. More lets several maximal frames queue (TX super-frames).</param>
    public FrameBatch(int maxFrames = 64, int maxFrameBytes = 65536 + 64, int bufferBytes = 0)
    {
        if (maxFrames <= 0) throw new ArgumentOutOfRangeException(nameof(maxFrames));
        if (maxFrameBytes < 64) throw new ArgumentOutOfRangeException(nameof(maxFrameBytes));
        MaxFrameBytes = maxFrameBytes;
        int capacity = Math.Max(checked(maxFrames * (2048 + TailRoom) + maxFrameBytes + TailRoom), bufferBytes);
        _buffer = GC.AllocateArray<byte>(capacity, pinned: true);
        _offsets = new int[maxFrames];
        _lengths = new int[maxFrames];
        _flags = new FrameFlags[maxFrames];
    }

    public int Count { get; private set; }
    public int MaxFrames => _offsets.Length;
    public int MaxFrameBytes { get; }
    public bool IsFull => Count == _offsets.Length;

    /// <summary>The frame bytes, writable in place.</summary>
    public Span<byte> this[int index] => _buffer.AsSpan(_offsets[index], _lengths[index]);

    public FrameFlags GetFlags(int index) => _flags[index];

    /// <summary>The frame plus its <see cref="TailRoom"/> bytes: for rewriting a frame in place into a longer reply.</summary>
    public Span<byte> GetWithTailRoom(int index) => _buffer.AsSpan(_offsets[index], _lengths[index] + TailRoom);

    public void Clear()
    {
        Count = 0;
        _used = 0;
    }

    /// <summary>Copies one frame in. False when the batch has no room left (the caller stops receiving).</summary>
    public bool TryAdd(ReadOnlySpan<byte> frame, FrameFlags flags = FrameFlags.None)
    {
        if (!TryReserve(frame.Length, out Span<byte> dst))
        {
            return false;
        }
        frame.CopyTo(dst);
        Commit(frame.Length, flags);
        return true;
    }

    /// <summary>Reserves <paramref name="length"/> bytes for the next frame; call <see cref="Commit"/> after filling it.</summary>
    public bool TryReserve(int length, out Span<byte> destination)
    {
        if (Count == _offsets.Length || length > MaxFrameBytes || _used + length + TailRoom > _buffer.Length)
        {
            destination = default;
            return false;
        }
        destination = _buffer.AsSpan(_used, length);
        return true;
    }

    public void Commit(int length, FrameFlags flags)
    {
        _offsets[Count] = _used;
        _lengths[Count] = length;
        _flags[Count] = flags;
        Count++;
        // Keep frames 8-byte aligned: headers are read with unaligned-safe primitives anyway,
        // but aligned starts keep copies fast.
        _used += (length + TailRoom + 7) & ~7;
    }
}
