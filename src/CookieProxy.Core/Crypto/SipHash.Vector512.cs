// SipHash-2-4 over 8 messages at once: lane i of each Vector512<ulong> holds the state of message i.
// With AVX-512F every rotation is a single VPROLQ. Without acceleration the same code runs on the
// cross-platform API's software fallback, which the tests use to check it on any machine; dispatch
// never picks it then.

using System.Diagnostics;
using System.Diagnostics.CodeAnalysis;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace CookieProxy.Crypto;

public static partial class SipHash
{
    // Messages [0, count) in passes of 8; if count is not a multiple of 8 the last pass covers
    // [count - 8, count), overlapping lanes already hashed. Requires count >= 8; bounds checked by CheckBatch.
    private static void HashLanesVector512(in SipKey key, ReadOnlySpan<ulong> words, int wordsPerMessage, int stride, int count, Span<ulong> hashes)
    {
        Debug.Assert(count >= Vector512<ulong>.Count);
        Debug.Assert(hashes.Length >= count);

        Vector512<ulong> i0 = Vector512.Create(key.K0 ^ InitV0);
        Vector512<ulong> i1 = Vector512.Create(key.K1 ^ InitV1);
        Vector512<ulong> i2 = Vector512.Create(key.K0 ^ InitV2);
        Vector512<ulong> i3 = Vector512.Create(key.K1 ^ InitV3);
        Vector512<ulong> last = Vector512.Create(LengthBlock(wordsPerMessage));

        ref ulong source = ref MemoryMarshal.GetReference(words);
        ref ulong destination = ref MemoryMarshal.GetReference(hashes);
        int lastLane = count - Vector512<ulong>.Count;
        int lane = 0;
        while (true)
        {
            Vector512<ulong> v0 = i0;
            Vector512<ulong> v1 = i1;
            Vector512<ulong> v2 = i2;
            Vector512<ulong> v3 = i3;

            // Word w of messages lane..lane+7 is contiguous in the SoA layout: one unaligned load.
            nuint offset = (nuint)lane;
            for (int w = 0; w < wordsPerMessage; w++)
            {
                Compress512(ref v0, ref v1, ref v2, ref v3, Vector512.LoadUnsafe(ref source, offset));
                offset += (nuint)stride;
            }

            Compress512(ref v0, ref v1, ref v2, ref v3, last);
            Finalize512(v0, v1, v2, v3).StoreUnsafe(ref destination, (nuint)lane);

            if (lane == lastLane)
            {
                break;
            }

            lane = Math.Min(lane + Vector512<ulong>.Count, lastLane);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void Compress512(ref Vector512<ulong> v0, ref Vector512<ulong> v1, ref Vector512<ulong> v2, ref Vector512<ulong> v3, Vector512<ulong> m)
    {
        v3 ^= m;
        SipRound512(ref v0, ref v1, ref v2, ref v3);
        SipRound512(ref v0, ref v1, ref v2, ref v3);
        v0 ^= m;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<ulong> Finalize512(Vector512<ulong> v0, Vector512<ulong> v1, Vector512<ulong> v2, Vector512<ulong> v3)
    {
        v2 ^= Vector512.Create(0xffUL);
        SipRound512(ref v0, ref v1, ref v2, ref v3);
        SipRound512(ref v0, ref v1, ref v2, ref v3);
        SipRound512(ref v0, ref v1, ref v2, ref v3);
        SipRound512(ref v0, ref v1, ref v2, ref v3);
        return v0 ^ v1 ^ v2 ^ v3;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static void SipRound512(ref Vector512<ulong> v0, ref Vector512<ulong> v1, ref Vector512<ulong> v2, ref Vector512<ulong> v3)
    {
        v0 += v1;
        v1 = RotateLeft512(v1, 13);
        v1 ^= v0;
        v0 = RotateLeft512(v0, 32);
        v2 += v3;
        v3 = RotateLeft512(v3, 16);
        v3 ^= v2;
        v0 += v3;
        v3 = RotateLeft512(v3, 21);
        v3 ^= v0;
        v2 += v1;
        v1 = RotateLeft512(v1, 17);
        v1 ^= v2;
        v2 = RotateLeft512(v2, 32);
    }

    // Avx512F.IsSupported is a JIT-time constant: with AVX-512 this is one VPROLQ (n is a constant
    // after inlining), otherwise shift, shift, or on the software fallback.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<ulong> RotateLeft512(Vector512<ulong> x, [ConstantExpected] byte n)
    {
        if (Avx512F.IsSupported)
        {
            return Avx512F.RotateLeft(x, n);
        }

        return Vector512.ShiftLeft(x, n) | Vector512.ShiftRightLogical(x, 64 - n);
    }
}
