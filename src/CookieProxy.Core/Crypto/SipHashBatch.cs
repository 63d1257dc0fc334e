namespace CookieProxy.Crypto;

/// <summary>
/// Preallocated structure-of-arrays storage for a batch of word messages (e.g. the cookie inputs of
/// the SYNs in one capture batch): add each message's words, <see cref="Compute"/> once, read hash i.
/// Allocates only in the constructor. Not thread-safe: one per capture thread.
/// </summary>
/// <example>
/// <code>
/// var batch = new SipHashBatch(wordsPerMessage: 3);
/// foreach (SYN) { int i = batch.Add(w0, w1, w2); ... }
/// batch.Compute(key);
/// ulong h = batch.GetHash(i);
/// batch.Clear();
/// </code>
/// </example>
public sealed class SipHashBatch
{
    /// <summary>Default capacity: one capture batch of SYNs.</summary>
    public const int DefaultCapacity = 64;

    // words[w * Capacity + i] = word w of message i (the stride is the capacity, not the count).
    private readonly ulong[] _words;
    private readonly ulong[] _hashes;
    private int _count;
    private bool _computed;

    /// <param name="wordsPerMessage">Words (8 bytes each) in every message: 3 for IPv4 cookies, 6 for IPv6.</param>
    /// <param name="capacity">Most messages per batch.</param>
    public SipHashBatch(int wordsPerMessage, int capacity = DefaultCapacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(wordsPerMessage);
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(capacity);
        WordsPerMessage = wordsPerMessage;
        Capacity = capacity;
        _words = new ulong[checked(wordsPerMessage * capacity)];
        _hashes = new ulong[capacity];
    }

    public int WordsPerMessage { get; }

    public int Capacity { get; }

    /// <summary>Messages added since the last <see cref="Clear"/>.</summary>
    public int Count => _count;

    public bool IsFull => _count == Capacity;

    /// <summary>Adds a message of <see cref="WordsPerMessage"/> words; returns its index.</summary>
    /// <exception cref="InvalidOperationException">The batch is full (check <see cref="IsFull"/>).</exception>
    public int Add(ReadOnlySpan<ulong> message)
    {
        if (message.Length != WordsPerMessage)
        {
            throw new ArgumentException($"Expected {WordsPerMessage} words, got {message.Length}.", nameof(message));
        }

        int index = Reserve();
        for (int w = 0; w < message.Length; w++)
        {
            _words[(w * Capacity) + index] = message[w];
        }

        return index;
    }

    /// <summary>Adds a 3-word message (the IPv4 cookie input); returns its index.</summary>
    public int Add(ulong w0, ulong w1, ulong w2)
    {
        CheckArity(3);
        int index = Reserve();
        ulong[] words = _words;
        int stride = Capacity;
        words[index] = w0;
        words[stride + index] = w1;
        words[(2 * stride) + index] = w2;
        return index;
    }

    /// <summary>Adds a 6-word message (the IPv6 cookie input); returns its index.</summary>
    public int Add(ulong w0, ulong w1, ulong w2, ulong w3, ulong w4, ulong w5)
    {
        CheckArity(6);
        int index = Reserve();
        ulong[] words = _words;
        int stride = Capacity;
        words[index] = w0;
        words[stride + index] = w1;
        words[(2 * stride) + index] = w2;
        words[(3 * stride) + index] = w3;
        words[(4 * stride) + index] = w4;
        words[(5 * stride) + index] = w5;
        return index;
    }

    /// <summary>Hashes every message added so far with <paramref name="key"/>.</summary>
    public void Compute(in SipKey key)
    {
        SipHash.HashBatch(key, _words, WordsPerMessage, Capacity, _count, _hashes);
        _computed = true;
    }

    /// <summary>The hash of message <paramref name="index"/>, after <see cref="Compute"/>.</summary>
    public ulong GetHash(int index)
    {
        if (!_computed)
        {
            ThrowNotComputed();
        }

        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)_count, nameof(index));

        return _hashes[index];
    }

    /// <summary>Hashes of messages 0..Count-1, after <see cref="Compute"/>.</summary>
    public ReadOnlySpan<ulong> Hashes => _computed ? _hashes.AsSpan(0, _count) : default;

    /// <summary>Empties the batch for reuse (no allocation, no zeroing needed).</summary>
    public void Clear()
    {
        _count = 0;
        _computed = false;
    }

    private int Reserve()
    {
        if (_count == Capacity)
        {
            throw new InvalidOperationException($"The batch already holds {Capacity} messages.");
        }

        _computed = false;
        return _count++;
    }

    private void CheckArity(int words)
    {
        if (WordsPerMessage != words)
        {
            throw new InvalidOperationException($"This batch holds {WordsPerMessage}-word messages, not {words}-word ones.");
        }
    }

    private static void ThrowNotComputed() => throw new InvalidOperationException("Call Compute after the last Add.");
}
