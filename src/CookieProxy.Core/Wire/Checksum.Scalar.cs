using System.Runtime.InteropServices;

namespace CookieProxy.Wire;

public static partial class Checksum
{
    /// <summary>
    /// Native-order one's complement accumulation of <paramref name="data"/>, not folded. Each 64-bit word
    /// contributes its two 32-bit halves, so the accumulators cannot overflow below 2^31 words.
    /// </summary>
    private static ulong SumScalar(ReadOnlySpan<byte> data)
    {
        ReadOnlySpan<ulong> words = MemoryMarshal.Cast<byte, ulong>(data);
        ulong acc = 0;
        ulong acc2 = 0; // a second accumulator breaks the dependency chain
        int i = 0;
        for (; i + 1 < words.Length; i += 2)
        {
            ulong a = words[i];
            ulong b = words[i + 1];
            acc += (uint)a + (a >> 32);
            acc2 += (uint)b + (b >> 32);
        }
        if (i < words.Length)
        {
            ulong a = words[i];
            acc += (uint)a + (a >> 32);
        }
        acc += acc2;

        int pos = words.Length * 8;
        if (data.Length - pos >= 4)
        {
            acc += MemoryMarshal.Read<uint>(data.Slice(pos));
            pos += 4;
        }
        if (data.Length - pos >= 2)
        {
            acc += MemoryMarshal.Read<ushort>(data.Slice(pos));
            pos += 2;
        }
        if (pos < data.Length)
        {
            // The odd byte is the high-order byte of a zero-padded word (RFC 1071 (4.1)), in network order.
            acc += BitConverter.IsLittleEndian ? data[pos] : (uint)data[pos] << 8;
        }
        return acc;
    }
}
