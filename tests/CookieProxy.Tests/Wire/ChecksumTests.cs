using System.Buffers.Binary;
using CookieProxy.Wire;
using static CookieProxy.Tests.Wire.WireTestFrames;

namespace CookieProxy.Tests.Wire;

public class ChecksumTests
{
    [Fact]
    public void Rfc1071_numerical_example_sums_to_ddf2()
    {
        // RFC 1071 3: 0001 f203 f4f5 f6f7 sums to 2ddf0, folded ddf2; the checksum is its complement.
        byte[] data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        Assert.Equal(0xddf2u, Checksum.Sum(data));
        Assert.Equal((ushort)0x220d, Checksum.Compute(data));
    }

    [Fact]
    public void Empty_input_sums_to_zero()
    {
        Assert.Equal(0u, Checksum.Sum([]));
        Assert.Equal((ushort)0xFFFF, Checksum.Compute([]));
    }

    [Fact]
    public void Sum_matches_the_reference_for_every_length_and_alignment()
    {
        var rng = new Random(1071);
        byte[] buffer = new byte[300];
        for (int round = 0; round < 4; round++)
        {
            rng.NextBytes(buffer);
            if (round == 3)
            {
                Array.Fill(buffer, (byte)0xFF); // worst case for carries
            }
            for (int start = 0; start < 8; start++)
            {
                for (int length = 0; length <= 160; length++)
                {
                    byte[] slice = buffer.AsSpan(start, length).ToArray();
                    Assert.Equal(ReferenceChecksum(slice), Checksum.Compute(buffer.AsSpan(start, length)));
                }
            }
        }
    }

    [Theory]
    [InlineData(1460)]
    [InlineData(1461)]
    [InlineData(9001)]
    [InlineData(65535)]
    public void Sum_matches_the_reference_for_large_segments(int length)
    {
        var rng = new Random(length);
        byte[] data = new byte[length + 3];
        rng.NextBytes(data);
        for (int start = 0; start < 4; start++)
        {
            Assert.Equal(ReferenceChecksum(data.AsSpan(start, length).ToArray()), Checksum.Compute(data.AsSpan(start, length)));
        }
        Array.Fill(data, (byte)0xFF);
        Assert.Equal(ReferenceChecksum(data.AsSpan(0, length).ToArray()), Checksum.Compute(data.AsSpan(0, length)));
    }

    [Fact]
    public void Real_ipv4_header_verifies_and_recomputes_to_its_captured_value()
    {
        byte[] frame = Hex(LinuxSynV4);
        Span<byte> header = frame.AsSpan(14, 20);
        Assert.True(Checksum.VerifyIpv4Header(header));
        var ip = new Ipv4Packet(header);
        Assert.Equal((ushort)0xec73, ip.HeaderChecksum);
        ip.FillChecksum();
        Assert.Equal((ushort)0xec73, ip.HeaderChecksum);
        header[8] = 63;
        Assert.False(Checksum.VerifyIpv4Header(header));
    }

    [Theory]
    [InlineData(LinuxSynV4, 0x6b48)]
    [InlineData(LinuxSynAckV4, 0x2cc8)]
    public void Real_ipv4_tcp_checksums_verify_and_recompute(string hex, int expected)
    {
        byte[] frame = Hex(hex);
        IpAddr src = IpAddr.FromBytes(frame.AsSpan(26, 4));
        IpAddr dst = IpAddr.FromBytes(frame.AsSpan(30, 4));
        Span<byte> segment = frame.AsSpan(34);
        Assert.True(Checksum.VerifyTcp(src, dst, segment));
        BinaryPrimitives.WriteUInt16BigEndian(segment.Slice(16), 0);
        Assert.Equal((ushort)expected, Checksum.Tcp(src, dst, segment));
    }

    [Theory]
    [InlineData(LinuxSynV6, 0x6d80)]
    [InlineData(LinuxSynAckV6, 0x3919)]
    public void Real_ipv6_tcp_checksums_verify_and_recompute(string hex, int expected)
    {
        byte[] frame = Hex(hex);
        IpAddr src = IpAddr.FromBytes(frame.AsSpan(22, 16));
        IpAddr dst = IpAddr.FromBytes(frame.AsSpan(38, 16));
        Span<byte> segment = frame.AsSpan(54);
        Assert.True(Checksum.VerifyTcp(src, dst, segment));
        BinaryPrimitives.WriteUInt16BigEndian(segment.Slice(16), 0);
        Assert.Equal((ushort)expected, Checksum.Tcp(src, dst, segment));
    }

    [Fact]
    public void Pseudo_headers_match_the_reference_layouts()
    {
        var rng = new Random(9293);
        byte[] segment = new byte[77];
        rng.NextBytes(segment);
        segment[16] = 0;
        segment[17] = 0;

        ushort v4 = Checksum.Tcp(IpAddr.FromBytes(ClientV4), IpAddr.FromBytes(ServerV4), segment);
        Assert.Equal(ReferenceChecksum(PseudoHeader(ClientV4, ServerV4, segment.Length), segment), v4);

        ushort v6 = Checksum.Tcp(IpAddr.FromBytes(ClientV6), IpAddr.FromBytes(ServerV6), segment);
        Assert.Equal(ReferenceChecksum(PseudoHeader(ClientV6, ServerV6, segment.Length), segment), v6);
    }

    [Fact]
    public void Incremental_update_equals_full_recompute()
    {
        var rng = new Random(1624);
        byte[] data = new byte[40];
        for (int round = 0; round < 2000; round++)
        {
            rng.NextBytes(data);
            data[10] = 0;
            data[11] = 0;
            ushort before = Checksum.Compute(data);

            int at = 2 * rng.Next(0, 5); // a 16-bit word before the checksum field
            ushort oldWord = BinaryPrimitives.ReadUInt16BigEndian(data.AsSpan(at));
            ushort newWord = round % 7 == 0 ? (ushort)0xFFFF : (ushort)rng.Next(0, 0x10000);
            BinaryPrimitives.WriteUInt16BigEndian(data.AsSpan(at), newWord);
            Assert.Equal(Checksum.Compute(data), Checksum.Update(before, oldWord, newWord));

            ushort before32 = Checksum.Compute(data);
            int at32 = 12 + (4 * rng.Next(0, 6));
            uint oldValue = BinaryPrimitives.ReadUInt32BigEndian(data.AsSpan(at32));
            uint newValue = (uint)rng.NextInt64(0, 1L << 32);
            BinaryPrimitives.WriteUInt32BigEndian(data.AsSpan(at32), newValue);
            Assert.Equal(Checksum.Compute(data), Checksum.Update(before32, oldValue, newValue));
        }
    }
}
