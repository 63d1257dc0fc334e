// Scalar SipHash-2-4, a direct transcription of the reference siphash.c (https://github.com/veorq/SipHash).
// It is the fallback for every batch tail and every machine without SIMD, and the oracle the tests pin
// the vector paths to.

using System.Buffers.Binary;
using System.Numerics;
using System.Runtime.CompilerServices;

namespace CookieProxy.Crypto;

public static partial class SipHash
{
    /// <summary>SipHash-2-4 of any message; the generic reference the other entry points must equal.</summary>
    public static ulong Hash(in SipKey key, ReadOnlySpan<byte> message)
    {
        ulong v0 = key.K0 ^ InitV0;
        ulong v1 = key.K1 ^ InitV1;
        ulong v2 = key.K0 ^ InitV2;
        ulong v3 = key.K1 ^ InitV3;

        int whole = message.Length & ~7;
        for (int i = 0; i < whole; i += 8)
        {
            Compress(ref v0, ref v1, ref v2, ref v3, BinaryPrimitives.ReadUInt64LittleEndian(message.Slice(i)));
        }

        // Last block: the 0..7 remaining bytes little-endian, the length mod 256 in the top byte.
        ulong last = (ulong)(uint)message.Length << 56;
        ReadOnlySpan<byte> tail = message.Slice(whole);
        for (int i = 0; i < tail.Length; i++)
        {
            last |= (ulong)tail[i] << (8 * i);
        }

        Compress(ref v0, ref v1, ref v2, ref v3, last);
        return Finalize(v0, v1, v2, v3);
    }

    /// <summary>
    /// SipHash-2-4 of the 24-byte message <c>LE(w0) || LE(w1) || LE(w2)</c> (the IPv4 cookie input),
    /// without building the bytes. Equals <see cref="Hash"/> of those bytes; like the kernel's
    /// fixed-arity siphash_3u64().
    /// </summary>
    public static ulong Hash3(in SipKey key, ulong w0, ulong w1, ulong w2)
    {
        ulong v0 = key.K0 ^ InitV0;
        ulong v1 = key.K1 ^ InitV1;
        ulong v2 = key.K0 ^ InitV2;
        ulong v3 = key.K1 ^ InitV3;
        Compress(ref v0, ref v1, ref v2, ref v3, w0);
        Compress(ref v0, ref v1, ref v2, ref v3, w1);
        Compress(ref v0, ref v1, ref v2, ref v3, w2);
        Compress(ref v0, ref v1, ref v2, ref v3, LengthBlock(3));
        return Finalize(v0, v1, v2, v3);
    }

    /// <summary>
    /// SipHash-2-4 of the 48-byte message <c>LE(w0) || ... || LE(w5)</c> (the IPv6 cookie input).
    /// Equals <see cref="Hash"/> of those bytes.
    /// </summary>
    public static ulong Hash6(in SipKey key, ulong w0, ulong w1, ulong w2, ulong w3, ulong w4, ulong w5)
    {
        ulong v0 = key.K0 ^ InitV0;
        ulong v1 = key.K1 ^ InitV1;
        ulong v2 = key.K0 ^ InitV2;
        ulong v3 = key.K1 ^ InitV3;
        Compress(ref v0, ref v1, ref v2, ref v3, w0);
        Compress(ref v0, ref v1, ref v2, ref v3, w1);
        Compress(ref v0, ref v1, ref v2, ref v3, w2);
        Compress(ref v0, ref v1, ref v2, ref v3, w3);
        Compress(ref v0, ref v1, ref v2, ref v3, w4);
        Compress(ref v0, ref v1, ref v2, ref v3, w5);
        Compress(ref v0, ref v1, ref v2, ref v3, LengthBlock(6));
        return Finalize(v0, v1, v2, v3);
    }

    // Messages [start, end) of an SoA batch, one serial chain each. Bounds were checked by CheckBatch.
    private static void HashLanesScalar(in SipKey key, ReadOnlySpan<ulong> words, int wordsPerMessage, int stride, int start, int end, Span<ulong> hashes)
    {
        ulong i0 = key.K0 ^ InitV0;
        ulong i1 = key.K1 ^ InitV1;
        ulong i2 = key.K0 ^ InitV2;
        ulong i3 = key.K1 ^ InitV3;
        ulong last = LengthBlock(wordsPerMessage);

        for (int lane = start; lane < end; lane++)
        {
            ulong v0 = i0;
            ulong v1 = i1;
            ulong v2 = i2;
            ulong v3 = i3;
            int offset = lane;
            for (int w = 0; w < wordsPerMessage; w++)
            {
                Compress(ref v0, ref v1, ref v2, ref v3, words[offset]);
                offset += stride;
            }

            Compress(ref v0, ref v1, ref v2, ref v3, last);
            hashes[lane] = Finalize(v0, v1, v2, v3);
        }
    }

    // One message block: v3 ^= m; c = 2 SipRounds; v0 ^= m.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Compress(ref ulong v0, ref ulong v1, ref ulong v2, ref ulong v3, ulong m)
    {
        v3 ^= m;
        SipRound(ref v0, ref v1, ref v2, ref v3);
        SipRound(ref v0, ref v1, ref v2, ref v3);
        v0 ^= m;
    }

    // v2 ^= 0xff; d = 4 SipRounds; output v0 ^ v1 ^ v2 ^ v3.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static ulong Finalize(ulong v0, ulong v1, ulong v2, ulong v3)
    {
        v2 ^= 0xff;
        SipRound(ref v0, ref v1, ref v2, ref v3);
        SipRound(ref v0, ref v1, ref v2, ref v3);
        SipRound(ref v0, ref v1, ref v2, ref v3);
        SipRound(ref v0, ref v1, ref v2, ref v3);
        return v0 ^ v1 ^ v2 ^ v3;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SipRound(ref ulong v0, ref ulong v1, ref ulong v2, ref ulong v3)
    {
        v0 += v1;
        v1 = BitOperations.RotateLeft(v1, 13);
        v1 ^= v0;
        v0 = BitOperations.RotateLeft(v0, 32);
        v2 += v3;
        v3 = BitOperations.RotateLeft(v3, 16);
        v3 ^= v2;
        v0 += v3;
        v3 = BitOperations.RotateLeft(v3, 21);
        v3 ^= v0;
        v2 += v1;
        v1 = BitOperations.RotateLeft(v1, 17);
        v1 ^= v2;
        v2 = BitOperations.RotateLeft(v2, 32);
    }
}
