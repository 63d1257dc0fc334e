using System.Buffers.Binary;
using System.Numerics;
using CookieProxy.Crypto;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Fuzz;

/// <summary>
/// An independent check that an ACK carries a valid cookie, written from the layout documented on
/// SynCookieCodec with a plain byte-wise SipHash-2-4 (the reference algorithm, not the product's word-wise or
/// SIMD paths): what the fuzz targets hold every created flow to. A flow created for an ACK this rejects is a bug.
/// </summary>
internal static class CookieOracle
{
    public static bool IsValidCookieAck(in SipKey key, int slotSeconds, in FlowKey tuple, in TcpRepr ack, long unixMs)
    {
        if ((ack.Flags & TcpFlags.Ack) == 0 || (ack.Flags & (TcpFlags.Syn | TcpFlags.Rst)) != 0)
        {
            return false;
        }
        uint isn = ack.Ack.Value - 1;
        uint clientIsn = ack.Seq.Value - 1;
        uint now = (uint)(unixMs / 1000 / slotSeconds);
        uint slot = (isn & 1) == (now & 1) ? now : now - 1;
        ulong mac = Mac(key, tuple, slot, clientIsn);
        if (isn >> 8 != (uint)(mac & 0xFFFFFF))
        {
            return false;
        }
        if (ack.Options.HasTimestamp)
        {
            uint tsEcr = ack.Options.TsEcr;
            return tsEcr >> 8 == (uint)((mac >> 32) & 0xFFFFFF) && (tsEcr & 0xE0) == 0;
        }
        return true;
    }

    private static ulong Mac(in SipKey key, in FlowKey t, uint slot, uint clientIsn)
    {
        Span<byte> m = stackalloc byte[48];
        ulong portsAndSlot = t.SrcPort | ((ulong)t.DstPort << 16) | ((ulong)slot << 32);
        int n;
        if (t.IsV4)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(m, t.SrcAddr.V4 | ((ulong)t.DstAddr.V4 << 32));
            BinaryPrimitives.WriteUInt64LittleEndian(m[8..], portsAndSlot);
            BinaryPrimitives.WriteUInt64LittleEndian(m[16..], clientIsn);
            n = 24;
        }
        else
        {
            BinaryPrimitives.WriteUInt64LittleEndian(m, t.SrcAddr.Hi);
            BinaryPrimitives.WriteUInt64LittleEndian(m[8..], t.SrcAddr.Lo);
            BinaryPrimitives.WriteUInt64LittleEndian(m[16..], t.DstAddr.Hi);
            BinaryPrimitives.WriteUInt64LittleEndian(m[24..], t.DstAddr.Lo);
            BinaryPrimitives.WriteUInt64LittleEndian(m[32..], portsAndSlot);
            BinaryPrimitives.WriteUInt64LittleEndian(m[40..], clientIsn);
            n = 48;
        }
        return SipHash24(key.K0, key.K1, m[..n]);
    }

    /// <summary>SipHash-2-4 as in the paper (Aumasson, Bernstein 2012), one byte-wise block loop.</summary>
    private static ulong SipHash24(ulong k0, ulong k1, ReadOnlySpan<byte> message)
    {
        ulong v0 = k0 ^ 0x736f6d6570736575UL, v1 = k1 ^ 0x646f72616e646f6dUL;
        ulong v2 = k0 ^ 0x6c7967656e657261UL, v3 = k1 ^ 0x7465646279746573UL;
        int blocks = message.Length / 8;
        for (int i = 0; i <= blocks; i++)
        {
            ulong m;
            if (i < blocks)
            {
                m = BinaryPrimitives.ReadUInt64LittleEndian(message[(8 * i)..]);
            }
            else
            {
                m = (ulong)(byte)message.Length << 56;
                for (int j = 0; j < message.Length % 8; j++)
                {
                    m |= (ulong)message[8 * i + j] << (8 * j);
                }
            }
            v3 ^= m;
            Round(ref v0, ref v1, ref v2, ref v3);
            Round(ref v0, ref v1, ref v2, ref v3);
            v0 ^= m;
        }
        v2 ^= 0xFF;
        for (int r = 0; r < 4; r++)
        {
            Round(ref v0, ref v1, ref v2, ref v3);
        }
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
