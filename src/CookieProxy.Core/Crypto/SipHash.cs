// SipHash-2-4: Aumasson & Bernstein, "SipHash: a fast short-input PRF", INDOCRYPT 2012.
// Reference code and the 64 test vectors: https://github.com/veorq/SipHash (siphash.c, vectors.h).
//
// One partial file per strategy, in the style of System.IO.Hashing's Crc32 / Crc32.Vectorized:
//   SipHash.cs            public API, argument checks, run-time dispatch (this file)
//   SipHash.Scalar.cs     the generic reference, the fixed-arity word helpers, the scalar batch
//   SipHash.Vector256.cs  4 messages per vector, lane i = message i (AVX2); two vectors in flight
//   SipHash.Vector512.cs  8 messages per vector, lane i = message i (AVX-512)
//
// SipHash of one cookie input is a serial chain of dependent rounds, so no single hash gets faster
// with SIMD. Instead the batch API hashes many SYNs at once, one message per vector lane, which is
// how tromp/cuckoo (siphashxN.h) and snabb (siphash.dasl) use AVX2 for SipHash.

using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace CookieProxy.Crypto;

/// <summary>A 128-bit SipHash key as its two little-endian 64-bit halves (k0 = key bytes 0..7).</summary>
public readonly struct SipKey(ulong k0, ulong k1) : IEquatable<SipKey>
{
    /// <summary>Key length in bytes.</summary>
    public const int Size = 16;

    /// <summary>Key bytes 0..7 read little-endian.</summary>
    public ulong K0 { get; } = k0;

    /// <summary>Key bytes 8..15 read little-endian.</summary>
    public ulong K1 { get; } = k1;

    /// <summary>Reads a 16-byte key the way the reference does (two little-endian words).</summary>
    /// <exception cref="ArgumentException"><paramref name="key"/> is not exactly 16 bytes.</exception>
    public static SipKey FromBytes(ReadOnlySpan<byte> key)
    {
        if (key.Length != Size)
        {
            SipHash.ThrowKeyLength(key.Length);
        }

        return new SipKey(
            BinaryPrimitives.ReadUInt64LittleEndian(key),
            BinaryPrimitives.ReadUInt64LittleEndian(key.Slice(8)));
    }

    /// <summary>Writes the key as 16 bytes, the inverse of <see cref="FromBytes"/>.</summary>
    public void WriteBytes(Span<byte> destination)
    {
        if (destination.Length < Size)
        {
            SipHash.ThrowKeyLength(destination.Length);
        }

        BinaryPrimitives.WriteUInt64LittleEndian(destination, K0);
        BinaryPrimitives.WriteUInt64LittleEndian(destination.Slice(8), K1);
    }

    public bool Equals(SipKey other) => K0 == other.K0 && K1 == other.K1;

    public override bool Equals(object? obj) => obj is SipKey other && Equals(other);

    public override int GetHashCode() => HashCode.Combine(K0, K1);

    public static bool operator ==(SipKey left, SipKey right) => left.Equals(right);

    public static bool operator !=(SipKey left, SipKey right) => !left.Equals(right);

    // Never print key material.
    public override string ToString() => nameof(SipKey);
}

/// <summary>SipHash-2-4 with a 64-bit output: single messages and batches of word messages.</summary>
public static partial class SipHash
{
    /// <summary>Which code path hashes a batch (see <see cref="SelectBatchStrategy"/>).</summary>
    internal enum BatchStrategy
    {
        Scalar,
        Vector256,
        Vector512,
    }

    /// <summary>
    /// Hashes <paramref name="count"/> messages of <paramref name="wordsPerMessage"/> 64-bit words each,
    /// stored as structure-of-arrays with stride = <paramref name="count"/>:
    /// <code>
    ///   message i = words[0 * count + i], words[1 * count + i], ..., words[(wordsPerMessage - 1) * count + i]
    ///
    ///   words:  | w0 of msg 0..count-1 | w1 of msg 0..count-1 | ... | w(n-1) of msg 0..count-1 |
    /// </code>
    /// Each word is the message's next 8 bytes read little-endian, so message i is
    /// 8 * <paramref name="wordsPerMessage"/> bytes long and
    /// <c>hashes[i] == Hash(key, bytes of message i)</c>; it also equals <see cref="Hash3"/> /
    /// <see cref="Hash6"/> of the same words. Use the overload with an explicit stride when the
    /// storage holds room for more messages than <paramref name="count"/>.
    /// </summary>
    /// <remarks>
    /// Lane i of a vector register carries message i, so a batch of 64 SYNs is 8 passes of the
    /// AVX-512 path (8 lanes) or 16 vectors of the AVX2 path (4 lanes) rather than 64 serial chains. <paramref name="hashes"/>
    /// must not overlap <paramref name="words"/>. No allocation.
    /// </remarks>
    public static void HashBatch(in SipKey key, ReadOnlySpan<ulong> words, int wordsPerMessage, int count, Span<ulong> hashes)
        => HashBatch(key, words, wordsPerMessage, count, count, hashes);

    /// <summary>
    /// As <see cref="HashBatch(in SipKey, ReadOnlySpan{ulong}, int, int, Span{ulong})"/>, but word w of
    /// message i is <c>words[w * stride + i]</c> with <paramref name="stride"/> &gt;= <paramref name="count"/>,
    /// so a preallocated table sized for a full batch can hash a partial one in place.
    /// </summary>
    public static void HashBatch(in SipKey key, ReadOnlySpan<ulong> words, int wordsPerMessage, int stride, int count, Span<ulong> hashes)
    {
        CheckBatch(words, wordsPerMessage, stride, count, hashes);
        switch (SelectBatchStrategy(count))
        {
            case BatchStrategy.Vector512:
                HashLanesVector512(key, words, wordsPerMessage, stride, count, hashes);
                break;
            case BatchStrategy.Vector256:
                HashLanesVector256(key, words, wordsPerMessage, stride, count, hashes);
                break;
            default:
                HashLanesScalar(key, words, wordsPerMessage, stride, 0, count, hashes);
                break;
        }
    }

    /// <summary>
    /// The strategy <see cref="HashBatch(in SipKey, ReadOnlySpan{ulong}, int, int, int, Span{ulong})"/>
    /// uses for <paramref name="count"/> messages. The <c>IsHardwareAccelerated</c> checks are JIT-time
    /// constants, so the unused branches are folded away. A vector path needs at least one full
    /// vector of messages; a batch that is not a multiple of the width finishes with one extra vector
    /// pass over the last lanes, overlapping lanes already done (hashes are pure, so recomputing a
    /// lane writes the same value). That is cheaper than up to 7 serial scalar hashes for the tail.
    /// </summary>
    internal static BatchStrategy SelectBatchStrategy(int count)
    {
        if (Vector512.IsHardwareAccelerated && count >= Vector512<ulong>.Count)
        {
            return BatchStrategy.Vector512;
        }

        if (Vector256.IsHardwareAccelerated && count >= Vector256<ulong>.Count)
        {
            return BatchStrategy.Vector256;
        }

        return BatchStrategy.Scalar;
    }

    /// <summary>Forces the scalar strategy for every message (tests, benchmarks).</summary>
    internal static void HashBatchScalar(in SipKey key, ReadOnlySpan<ulong> words, int wordsPerMessage, int count, Span<ulong> hashes)
    {
        CheckBatch(words, wordsPerMessage, count, count, hashes);
        HashLanesScalar(key, words, wordsPerMessage, count, 0, count, hashes);
    }

    /// <summary>
    /// Forces the 4-lane strategy (tests, benchmarks): every message goes through a Vector256 lane when
    /// <paramref name="count"/> &gt;= 4; smaller batches are scalar. Correct on any hardware (the
    /// Vector256 API has a software fallback), fast only when <see cref="Vector256.IsHardwareAccelerated"/>.
    /// </summary>
    internal static void HashBatchVector256(in SipKey key, ReadOnlySpan<ulong> words, int wordsPerMessage, int count, Span<ulong> hashes)
    {
        CheckBatch(words, wordsPerMessage, count, count, hashes);
        if (count >= Vector256<ulong>.Count)
        {
            HashLanesVector256(key, words, wordsPerMessage, count, count, hashes);
        }
        else
        {
            HashLanesScalar(key, words, wordsPerMessage, count, 0, count, hashes);
        }
    }

    /// <summary>
    /// Forces the 8-lane strategy (tests, benchmarks): every message goes through a Vector512 lane when
    /// <paramref name="count"/> &gt;= 8; smaller batches are scalar. Correct on any hardware, fast only
    /// when <see cref="Vector512.IsHardwareAccelerated"/>.
    /// </summary>
    internal static void HashBatchVector512(in SipKey key, ReadOnlySpan<ulong> words, int wordsPerMessage, int count, Span<ulong> hashes)
    {
        CheckBatch(words, wordsPerMessage, count, count, hashes);
        if (count >= Vector512<ulong>.Count)
        {
            HashLanesVector512(key, words, wordsPerMessage, count, count, hashes);
        }
        else
        {
            HashLanesScalar(key, words, wordsPerMessage, count, 0, count, hashes);
        }
    }

    // The vector paths read with LoadUnsafe, without bounds checks, so the whole extent is checked here once.
    // A bad shape is a bug in our caller, not hostile input: it throws.
    private static void CheckBatch(ReadOnlySpan<ulong> words, int wordsPerMessage, int stride, int count, Span<ulong> hashes)
    {
        if (wordsPerMessage <= 0)
        {
            ThrowArgumentOutOfRange(nameof(wordsPerMessage));
        }

        if (count < 0)
        {
            ThrowArgumentOutOfRange(nameof(count));
        }

        if (stride < count)
        {
            ThrowArgumentOutOfRange(nameof(stride));
        }

        if (hashes.Length < count)
        {
            ThrowArgumentOutOfRange(nameof(hashes));
        }

        if (count > 0 && ((long)(wordsPerMessage - 1) * stride) + count > words.Length)
        {
            ThrowArgumentOutOfRange(nameof(words));
        }
    }

    /// <summary>The state after key setup (v0..v3 = key XOR the constants), for code that hashes elsewhere
    /// with the same key: the XDP SYN responder keeps it in a map instead of the key.</summary>
    public static (ulong V0, ulong V1, ulong V2, ulong V3) InitialState(in SipKey key) =>
        (key.K0 ^ InitV0, key.K1 ^ InitV1, key.K0 ^ InitV2, key.K1 ^ InitV3);

    // SipHash initialisation constants: "somepseudorandomlygeneratedbytes" (siphash.c).
    private const ulong InitV0 = 0x736f6d6570736575;
    private const ulong InitV1 = 0x646f72616e646f6d;
    private const ulong InitV2 = 0x6c7967656e657261;
    private const ulong InitV3 = 0x7465646279746573;

    // Final block of a message that is whole words: no tail bytes, only the length mod 256 in the top byte.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong LengthBlock(int wordsPerMessage) => (ulong)(uint)wordsPerMessage << 59;

    [MethodImpl(MethodImplOptions.NoInlining)]
    internal static void ThrowKeyLength(int length)
        => throw new ArgumentException($"A SipHash key is {SipKey.Size} bytes, got {length}.", "key");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private static void ThrowArgumentOutOfRange(string paramName) => throw new ArgumentOutOfRangeException(paramName);
}
