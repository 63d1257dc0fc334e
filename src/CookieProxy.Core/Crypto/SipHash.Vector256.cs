// SipHash-2-4 over 4 messages at once: lane i of each Vector256<ulong> holds the state of message i
// (the layout of tromp/cuckoo siphashxN.h, siphash24x4). Cross-platform System.Runtime.Intrinsics API;
// on x64 with AVX2 every operation below is one instruction (vpaddq, vpxor, vpsllq, vpsrlq, vpor,
// vpshufd for ROT32, vpshufb for ROT16). Without acceleration the same code runs on the API's software
// fallback, which the tests use to check it on any machine; dispatch never picks it then.

using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace CookieProxy.Crypto;

public static partial class SipHash
{
    // Messages [0, count) in passes of 8 (two states), then passes of 4; if count is not a multiple of 4
    // the last pass covers [count - 4, count), overlapping lanes already hashed. Requires count >= 4;
    // bounds checked by CheckBatch.
    private static void HashLanesVector256(in SipKey key, ReadOnlySpan<ulong> words, int wordsPerMessage, int stride, int count, Span<ulong> hashes)
    {
        Debug.Assert(count >= Vector256<ulong>.Count);
        Debug.Assert(hashes.Length >= count);

        Vector256<ulong> i0 = Vector256.Create(key.K0 ^ InitV0);
        Vector256<ulong> i1 = Vector256.Create(key.K1 ^ InitV1);
        Vector256<ulong> i2 = Vector256.Create(key.K0 ^ InitV2);
        Vector256<ulong> i3 = Vector256.Create(key.K1 ^ InitV3);
        Vector256<ulong> last = Vector256.Create(LengthBlock(wordsPerMessage));

        ref ulong source = ref MemoryMarshal.GetReference(words);
        ref ulong destination = ref MemoryMarshal.GetReference(hashes);
        int lane = 0;

        // Two independent 4-lane states per pass: one SipRound is a serial chain (add, rotate, xor, ...)
        // of about 8 cycles, which leaves the vector ports half idle with a single state.
        for (; lane <= count - (2 * Vector256<ulong>.Count); lane += 2 * Vector256<ulong>.Count)
        {
            Vector256<ulong> a0 = i0;
            Vector256<ulong> a1 = i1;
            Vector256<ulong> a2 = i2;
            Vector256<ulong> a3 = i3;
            Vector256<ulong> b0 = i0;
            Vector256<ulong> b1 = i1;
            Vector256<ulong> b2 = i2;
            Vector256<ulong> b3 = i3;

            // Word w of messages lane..lane+7 is contiguous in the SoA layout: two unaligned loads.
            nuint offset = (nuint)lane;
            for (int w = 0; w < wordsPerMessage; w++)
            {
                Vector256<ulong> ma = Vector256.LoadUnsafe(ref source, offset);
                Vector256<ulong> mb = Vector256.LoadUnsafe(ref source, offset + (nuint)Vector256<ulong>.Count);
                a3 ^= ma;
                b3 ^= mb;
                SipRound256x2(ref a0, ref a1, ref a2, ref a3, ref b0, ref b1, ref b2, ref b3);
                SipRound256x2(ref a0, ref a1, ref a2, ref a3, ref b0, ref b1, ref b2, ref b3);
                a0 ^= ma;
                b0 ^= mb;
                offset += (nuint)stride;
            }

            a3 ^= last;
            b3 ^= last;
            SipRound256x2(ref a0, ref a1, ref a2, ref a3, ref b0, ref b1, ref b2, ref b3);
            SipRound256x2(ref a0, ref a1, ref a2, ref a3, ref b0, ref b1, ref b2, ref b3);
            a0 ^= last;
            b0 ^= last;

            Vector256<ulong> ff = Vector256.Create(0xffUL);
            a2 ^= ff;
            b2 ^= ff;
            SipRound256x2(ref a0, ref a1, ref a2, ref a3, ref b0, ref b1, ref b2, ref b3);
            SipRound256x2(ref a0, ref a1, ref a2, ref a3, ref b0, ref b1, ref b2, ref b3);
            SipRound256x2(ref a0, ref a1, ref a2, ref a3, ref b0, ref b1, ref b2, ref b3);
            SipRound256x2(ref a0, ref a1, ref a2, ref a3, ref b0, ref b1, ref b2, ref b3);
            (a0 ^ a1 ^ a2 ^ a3).StoreUnsafe(ref destination, (nuint)lane);
            (b0 ^ b1 ^ b2 ^ b3).StoreUnsafe(ref destination, (nuint)(lane + Vector256<ulong>.Count));
        }

        if (lane == count)
        {
            return;
        }

        // 1..7 messages left: single-state passes, the last one ending at count (it may overlap).
        int lastLane = count - Vector256<ulong>.Count;
        lane = Math.Min(lane, lastLane);
        while (true)
        {
            Vector256<ulong> v0 = i0;
            Vector256<ulong> v1 = i1;
            Vector256<ulong> v2 = i2;
            Vector256<ulong> v3 = i3;

            nuint offset = (nuint)lane;
            for (int w = 0; w < wordsPerMessage; w++)
            {
                Compress256(ref v0, ref v1, ref v2, ref v3, Vector256.LoadUnsafe(ref source, offset));
                offset += (nuint)stride;
            }

            Compress256(ref v0, ref v1, ref v2, ref v3, last);
            Finalize256(v0, v1, v2, v3).StoreUnsafe(ref destination, (nuint)lane);

            if (lane == lastLane)
            {
                break;
            }

            lane = Math.Min(lane + Vector256<ulong>.Count, lastLane);
        }
    }

    // Two SipRounds on independent states, interleaved statement by statement so that each
    // dependent step of one state has the other's step to overlap with.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SipRound256x2(
        ref Vector256<ulong> a0, ref Vector256<ulong> a1, ref Vector256<ulong> a2, ref Vector256<ulong> a3,
        ref Vector256<ulong> b0, ref Vector256<ulong> b1, ref Vector256<ulong> b2, ref Vector256<ulong> b3)
    {
        a0 += a1;
        b0 += b1;
        a1 = RotateLeft256(a1, 13);
        b1 = RotateLeft256(b1, 13);
        a1 ^= a0;
        b1 ^= b0;
        a0 = RotateLeft32x256(a0);
        b0 = RotateLeft32x256(b0);
        a2 += a3;
        b2 += b3;
        a3 = RotateLeft16x256(a3);
        b3 = RotateLeft16x256(b3);
        a3 ^= a2;
        b3 ^= b2;
        a0 += a3;
        b0 += b3;
        a3 = RotateLeft256(a3, 21);
        b3 = RotateLeft256(b3, 21);
        a3 ^= a0;
        b3 ^= b0;
        a2 += a1;
        b2 += b1;
        a1 = RotateLeft256(a1, 17);
        b1 = RotateLeft256(b1, 17);
        a1 ^= a2;
        b1 ^= b2;
        a2 = RotateLeft32x256(a2);
        b2 = RotateLeft32x256(b2);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Compress256(ref Vector256<ulong> v0, ref Vector256<ulong> v1, ref Vector256<ulong> v2, ref Vector256<ulong> v3, Vector256<ulong> m)
    {
        v3 ^= m;
        SipRound256(ref v0, ref v1, ref v2, ref v3);
        SipRound256(ref v0, ref v1, ref v2, ref v3);
        v0 ^= m;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<ulong> Finalize256(Vector256<ulong> v0, Vector256<ulong> v1, Vector256<ulong> v2, Vector256<ulong> v3)
    {
        v2 ^= Vector256.Create(0xffUL);
        SipRound256(ref v0, ref v1, ref v2, ref v3);
        SipRound256(ref v0, ref v1, ref v2, ref v3);
        SipRound256(ref v0, ref v1, ref v2, ref v3);
        SipRound256(ref v0, ref v1, ref v2, ref v3);
        return v0 ^ v1 ^ v2 ^ v3;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SipRound256(ref Vector256<ulong> v0, ref Vector256<ulong> v1, ref Vector256<ulong> v2, ref Vector256<ulong> v3)
    {
        v0 += v1;
        v1 = RotateLeft256(v1, 13);
        v1 ^= v0;
        v0 = RotateLeft32x256(v0);
        v2 += v3;
        v3 = RotateLeft16x256(v3);
        v3 ^= v2;
        v0 += v3;
        v3 = RotateLeft256(v3, 21);
        v3 ^= v0;
        v2 += v1;
        v1 = RotateLeft256(v1, 17);
        v1 ^= v2;
        v2 = RotateLeft32x256(v2);
    }

    // AVX2 has no 64-bit rotate (AVX-512 VPROLQ would do it in one): shift, shift, or.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<ulong> RotateLeft256(Vector256<ulong> x, [ConstantExpected] int n)
        => Vector256.ShiftLeft(x, n) | Vector256.ShiftRightLogical(x, 64 - n);

    // Rotating a 64-bit lane by 32 swaps its two 32-bit halves: one in-lane dword shuffle (vpshufd).
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<ulong> RotateLeft32x256(Vector256<ulong> x)
        => Vector256.Shuffle(x.AsUInt32(), Vector256.Create(1u, 0, 3, 2, 5, 4, 7, 6)).AsUInt64();

    // Rotating by 16 moves every byte up two places within its 8-byte lane: one in-lane byte shuffle
    // (vpshufb), as siphashxN.h does with _mm256_shuffle_epi8.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<ulong> RotateLeft16x256(Vector256<ulong> x)
        => Vector256.Shuffle(
            x.AsByte(),
            Vector256.Create(
                (byte)6, 7, 0, 1, 2, 3, 4, 5,
                14, 15, 8, 9, 10, 11, 12, 13,
                22, 23, 16, 17, 18, 19, 20, 21,
                30, 31, 24, 25, 26, 27, 28, 29)).AsUInt64();
}
