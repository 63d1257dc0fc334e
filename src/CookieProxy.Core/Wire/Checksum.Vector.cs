using System.Runtime.Intrinsics;

namespace CookieProxy.Wire;

public static partial class Checksum
{
    private const int VectorThreshold = 64;

    /// <summary>
    /// 32 bytes per step: each 64-bit lane adds its low and high 32-bit halves into 64-bit accumulators, which
    /// is the scalar algorithm done four lanes at a time. Consumes a multiple of 32 bytes.
    /// </summary>
    private static ulong SumVector256(ReadOnlySpan<byte> data, out int consumed)
    {
        Vector256<ulong> low = Vector256<ulong>.Zero;
        Vector256<ulong> high = Vector256<ulong>.Zero;
        Vector256<ulong> low2 = Vector256<ulong>.Zero;
        Vector256<ulong> high2 = Vector256<ulong>.Zero;
        Vector256<ulong> mask = Vector256.Create(0xFFFF_FFFFUL);
        int i = 0;
        for (; i <= data.Length - 64; i += 64)
        {
            Vector256<ulong> a = Vector256.Create(data.Slice(i, 32)).AsUInt64();
            Vector256<ulong> b = Vector256.Create(data.Slice(i + 32, 32)).AsUInt64();
            low += a & mask;
            high += a >>> 32;
            low2 += b & mask;
            high2 += b >>> 32;
        }
        if (i <= data.Length - 32)
        {
            Vector256<ulong> a = Vector256.Create(data.Slice(i, 32)).AsUInt64();
            low += a & mask;
            high += a >>> 32;
            i += 32;
        }
        consumed = i;
        return Vector256.Sum(low + high + low2 + high2);
    }

    /// <summary>The 16-byte variant of <see cref="SumVector256"/> (SSE2, AdvSimd). Consumes a multiple of 32 bytes.</summary>
    private static ulong SumVector128(ReadOnlySpan<byte> data, out int consumed)
    {
        Vector128<ulong> low = Vector128<ulong>.Zero;
        Vector128<ulong> high = Vector128<ulong>.Zero;
        Vector128<ulong> mask = Vector128.Create(0xFFFF_FFFFUL);
        int i = 0;
        for (; i <= data.Length - 32; i += 32)
        {
            Vector128<ulong> a = Vector128.Create(data.Slice(i, 16)).AsUInt64();
            Vector128<ulong> b = Vector128.Create(data.Slice(i + 16, 16)).AsUInt64();
            low += (a & mask) + (b & mask);
            high += (a >>> 32) + (b >>> 32);
        }
        consumed = i;
        return Vector128.Sum(low + high);
    }
}
