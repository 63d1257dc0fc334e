// TEMPORARY (lead): replaced by the siphash branch at merge. Same API subset.
using System.Buffers.Binary;
using System.Numerics;

namespace CookieProxy.Crypto;

public readonly struct SipKey
{
    public readonly ulong K0;
    public readonly ulong K1;
    public SipKey(ulong k0, ulong k1) { K0 = k0; K1 = k1; }
    public static SipKey FromBytes(ReadOnlySpan<byte> key) =>
        new(BinaryPrimitives.ReadUInt64LittleEndian(key), BinaryPrimitives.ReadUInt64LittleEndian(key[8..]));
}

public static class SipHash
{
    public static ulong Hash3(in SipKey key, ulong w0, ulong w1, ulong w2)
    {
        Span<byte> b = stackalloc byte[24];
        BinaryPrimitives.WriteUInt64LittleEndian(b, w0);
        BinaryPrimitives.WriteUInt64LittleEndian(b[8..], w1);
        BinaryPrimitives.WriteUInt64LittleEndian(b[16..], w2);
        return Hash(key, b);
    }

    public static ulong Hash6(in SipKey key, ulong w0, ulong w1, ulong w2, ulong w3, ulong w4, ulong w5)
    {
        Span<byte> b = stackalloc byte[48];
        BinaryPrimitives.WriteUInt64LittleEndian(b, w0);
        BinaryPrimitives.WriteUInt64LittleEndian(b[8..], w1);
        BinaryPrimitives.WriteUInt64LittleEndian(b[16..], w2);
        BinaryPrimitives.WriteUInt64LittleEndian(b[24..], w3);
        BinaryPrimitives.WriteUInt64LittleEndian(b[32..], w4);
        BinaryPrimitives.WriteUInt64LittleEndian(b[40..], w5);
        return Hash(key, b);
    }

    public static void HashBatch(in SipKey key, ReadOnlySpan<ulong> words, int wordsPerMessage, int count, Span<ulong> hashes)
    {
        Span<byte> b = stackalloc byte[64];
        for (int i = 0; i < count; i++)
        {
            for (int w = 0; w < wordsPerMessage; w++)
            {
                BinaryPrimitives.WriteUInt64LittleEndian(b[(w * 8)..], words[w * count + i]);
            }
            hashes[i] = Hash(key, b[..(wordsPerMessage * 8)]);
        }
    }

    public static ulong Hash(in SipKey key, ReadOnlySpan<byte> m)
    {
        ulong v0 = 0x736f6d6570736575UL ^ key.K0, v1 = 0x646f72616e646f6dUL ^ key.K1;
        ulong v2 = 0x6c7967656e657261UL ^ key.K0, v3 = 0x7465646279746573UL ^ key.K1;
        int end = m.Length & ~7;
        for (int i = 0; i < end; i += 8)
        {
            ulong mi = BinaryPrimitives.ReadUInt64LittleEndian(m[i..]);
            v3 ^= mi; Round(ref v0, ref v1, ref v2, ref v3); Round(ref v0, ref v1, ref v2, ref v3); v0 ^= mi;
        }
        ulong last = (ulong)m.Length << 56;
        for (int i = 0; i < (m.Length & 7); i++) last |= (ulong)m[end + i] << (8 * i);
        v3 ^= last; Round(ref v0, ref v1, ref v2, ref v3); Round(ref v0, ref v1, ref v2, ref v3); v0 ^= last;
        v2 ^= 0xff;
        for (int r = 0; r < 4; r++) Round(ref v0, ref v1, ref v2, ref v3);
        return v0 ^ v1 ^ v2 ^ v3;
    }

    private static void Round(ref ulong v0, ref ulong v1, ref ulong v2, ref ulong v3)
    {
        v0 += v1; v1 = BitOperations.RotateLeft(v1, 13); v1 ^= v0; v0 = BitOperations.RotateLeft(v0, 32);
        v2 += v3; v3 = BitOperations.RotateLeft(v3, 16); v3 ^= v2;
        v0 += v3; v3 = BitOperations.RotateLeft(v3, 21); v3 ^= v0;
        v2 += v1; v1 = BitOperations.RotateLeft(v1, 17); v1 ^= v2; v2 = BitOperations.RotateLeft(v2, 32);
    }
}
