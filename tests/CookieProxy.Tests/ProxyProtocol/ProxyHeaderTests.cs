using System.Net;
using System.Text;
using CookieProxy.ProxyProtocol;
using CookieProxy.Wire;

namespace CookieProxy.Tests.ProxyProtocol;

[Collection(CookieProxy.Tests.Support.SerialCollection.Name)]
public class ProxyHeaderTests
{
    private static IpAddr Ip(string s) => IpAddr.FromIPAddress(IPAddress.Parse(s));

    private static FlowKey Key(string src, ushort sport, string dst, ushort dport) => new(Ip(src), Ip(dst), sport, dport);

    private static byte[] Hex(string hex) => Convert.FromHexString(hex.Replace(" ", "", StringComparison.Ordinal));

    // proxy-protocol.txt 2.1 example line.
    [Fact]
    public void V1_tcp4_matches_the_spec_example()
    {
        byte[] buffer = new byte[ProxyHeaderWriter.V1MaxLength];
        int n = ProxyHeaderWriter.Write(ProxyProtocolVersion.V1, buffer, Key("192.168.0.1", 56324, "192.168.0.11", 443));
        Assert.Equal("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", Encoding.ASCII.GetString(buffer, 0, n));
    }

    [Fact]
    public void V1_tcp6_worst_case_fits_the_108_byte_buffer()
    {
        byte[] buffer = new byte[ProxyHeaderWriter.V1MaxLength];
        string all = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";
        int n = ProxyHeaderWriter.Write(ProxyProtocolVersion.V1, buffer, Key(all, 65535, all, 65535));
        Assert.Equal($"PROXY TCP6 {all} {all} 65535 65535\r\n", Encoding.ASCII.GetString(buffer, 0, n));
        Assert.Equal(104, n);
    }

    [Theory]
    [InlineData("2001:db8::1")]
    [InlineData("::1")]
    [InlineData("fe80::")]
    [InlineData("2001:db8:0:1:1:1:1:1")]      // RFC 5952 4.2.2: a single zero group is not shortened
    [InlineData("2001:0:0:1::1")]             // RFC 5952 4.2.3: the longest run is shortened
    [InlineData("1::2:0:0:3:4")]              // RFC 5952 4.2.3: on a tie, the first run
    [InlineData("fd00:198:18::2")]
    public void V1_ipv6_text_is_rfc5952_canonical(string address)
    {
        byte[] buffer = new byte[64];
        int n = ProxyHeaderWriter.WriteAddressText(buffer, Ip(address));
        string text = Encoding.ASCII.GetString(buffer, 0, n);
        Assert.Equal(address, text);
        Assert.Equal(IPAddress.Parse(address).ToString(), text);
    }

    // A v2 TCP4 header captured from haproxy (172.19.0.1:42578 -> 172.19.0.3:80).
    private const string HaproxyV2Tcp4 = "0d0a0d0a000d0a515549540a 21 11 000c ac130001 ac130003 a652 0050";

    [Fact]
    public void V2_tcp4_matches_haproxy_bytes()
    {
        byte[] buffer = new byte[ProxyHeaderWriter.V2Tcp6Length];
        Array.Fill(buffer, (byte)0xA5);
        int n = ProxyHeaderWriter.Write(ProxyProtocolVersion.V2, buffer, Key("172.19.0.1", 42578, "172.19.0.3", 80));
        Assert.Equal(ProxyHeaderWriter.V2Tcp4Length, n);
        Assert.Equal(Hex(HaproxyV2Tcp4), buffer[..n]);
        Assert.All(buffer[n..], b => Assert.Equal(0xA5, b));
    }

    [Fact]
    public void V2_tcp4_haproxy_bytes_parse()
    {
        byte[] bytes = [.. Hex(HaproxyV2Tcp4), .. "GET "u8.ToArray()];
        Assert.Equal(ProxyParseResult.Success, ProxyHeaderParser.TryParse(bytes, out ProxyHeader h));
        Assert.Equal(ProxyProtocolVersion.V2, h.Version);
        Assert.Equal(ProxyCommand.Proxy, h.Command);
        Assert.Equal(ProxyTransport.Tcp4, h.Transport);
        Assert.Equal(Ip("172.19.0.1"), h.SourceAddress);
        Assert.Equal(Ip("172.19.0.3"), h.DestinationAddress);
        Assert.Equal(42578, h.SourcePort);
        Assert.Equal(80, h.DestinationPort);
        Assert.Equal(28, h.Length);
    }

    [Fact]
    public void V2_tcp6_layout_is_family_0x21_and_36_address_bytes()
    {
        byte[] buffer = new byte[ProxyHeaderWriter.V2Tcp6Length];
        int n = ProxyHeaderWriter.Write(ProxyProtocolVersion.V2, buffer, Key("fd00:198:18::2", 40000, "fd00:198:18::1", 80));
        string expected = "0d0a0d0a000d0a515549540a 21 21 0024"
            + " fd000198001800000000000000000002"
            + " fd000198001800000000000000000001"
            + " 9c40 0050";
        Assert.Equal(Hex(expected), buffer[..n]);
    }

    [Fact]
    public void V2_skips_tlvs_after_the_addresses()
    {
        // Length 12 + a 7-byte TLV (PP2_TYPE_AUTHORITY "a.b.c").
        byte[] bytes = Hex("0d0a0d0a000d0a515549540a 21 11 0013 c0000201 c0000202 1f90 0050 02 0004 612e622e");
        Assert.Equal(ProxyParseResult.Success, ProxyHeaderParser.TryParse(bytes, out ProxyHeader h));
        Assert.Equal(bytes.Length, h.Length);
        Assert.Equal(8080, h.SourcePort);
    }

    [Fact]
    public void V2_local_command_is_accepted_without_addresses()
    {
        byte[] bytes = Hex("0d0a0d0a000d0a515549540a 20 00 0000");
        Assert.Equal(ProxyParseResult.Success, ProxyHeaderParser.TryParse(bytes, out ProxyHeader h));
        Assert.Equal(ProxyCommand.Local, h.Command);
        Assert.Equal(ProxyTransport.Unknown, h.Transport);
        Assert.Equal(16, h.Length);
    }

    [Fact]
    public void V1_unknown_ignores_the_rest_of_the_line()
    {
        byte[] bytes = "PROXY UNKNOWN ffff::1 whatever\r\nGET"u8.ToArray();
        Assert.Equal(ProxyParseResult.Success, ProxyHeaderParser.TryParse(bytes, out ProxyHeader h));
        Assert.Equal(ProxyTransport.Unknown, h.Transport);
        Assert.Equal(bytes.Length - 3, h.Length);
    }

    [Theory]
    [InlineData("", ProxyParseResult.NeedMoreData)]
    [InlineData("PROX", ProxyParseResult.NeedMoreData)]
    [InlineData("PROXY TCP4 1.2.3.4 5.6.7.8 1 2", ProxyParseResult.NeedMoreData)]
    [InlineData("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r", ProxyParseResult.NeedMoreData)]
    [InlineData("GET / HTTP/1.1\r\n", ProxyParseResult.NotProxyProtocol)]
    [InlineData("PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", ProxyParseResult.V1BadProtocol)]
    [InlineData("PROXY TCP4 1.2.3 5.6.7.8 1 2\r\n", ProxyParseResult.V1BadAddress)]
    [InlineData("PROXY TCP4 1.2.3.256 5.6.7.8 1 2\r\n", ProxyParseResult.V1BadAddress)]
    [InlineData("PROXY TCP4 ::1 5.6.7.8 1 2\r\n", ProxyParseResult.V1BadAddress)]
    [InlineData("PROXY TCP6 1.2.3.4 ::1 1 2\r\n", ProxyParseResult.V1BadAddress)]
    [InlineData("PROXY TCP6 1::2::3 ::1 1 2\r\n", ProxyParseResult.V1BadAddress)]
    [InlineData("PROXY TCP6 1:2:3:4:5:6:7:8:9 ::1 1 2\r\n", ProxyParseResult.V1BadAddress)]
    [InlineData("PROXY TCP4 1.2.3.4 5.6.7.8 1 65536\r\n", ProxyParseResult.V1BadPort)]
    [InlineData("PROXY TCP4 1.2.3.4 5.6.7.8 -1 2\r\n", ProxyParseResult.V1BadPort)]
    [InlineData("PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", ProxyParseResult.V1BadSyntax)]
    [InlineData("PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", ProxyParseResult.V1BadSyntax)]
    [InlineData("PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", ProxyParseResult.V1BadSyntax)]
    [InlineData("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", ProxyParseResult.V1BadSyntax)]
    [InlineData("PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", ProxyParseResult.V1BadSyntax)]
    public void V1_malformed_input_gets_a_result_code(string text, ProxyParseResult expected)
    {
        Assert.Equal(expected, ProxyHeaderParser.TryParse(Encoding.ASCII.GetBytes(text), out _));
    }

    [Fact]
    public void V1_line_without_crlf_in_107_bytes_is_too_long()
    {
        byte[] bytes = Encoding.ASCII.GetBytes("PROXY UNKNOWN " + new string('x', 200));
        Assert.Equal(ProxyParseResult.V1LineTooLong, ProxyHeaderParser.TryParse(bytes, out _));
    }

    [Theory]
    [InlineData("0d0a0d0a00", ProxyParseResult.NeedMoreData)]
    [InlineData("0d0a0d0a000d0a515549540a 21 11 000c ac13", ProxyParseResult.NeedMoreData)]
    [InlineData("0d0a0d0a010d0a515549540a 21 11 000c", ProxyParseResult.NotProxyProtocol)]
    [InlineData("0d0a0d0a000d0a515549540a 11 11 000c ac130001 ac130003 a652 0050", ProxyParseResult.V2BadVersion)]
    [InlineData("0d0a0d0a000d0a515549540a 22 11 000c ac130001 ac130003 a652 0050", ProxyParseResult.V2BadCommand)]
    [InlineData("0d0a0d0a000d0a515549540a 21 41 000c ac130001 ac130003 a652 0050", ProxyParseResult.V2BadFamily)]
    [InlineData("0d0a0d0a000d0a515549540a 21 13 000c ac130001 ac130003 a652 0050", ProxyParseResult.V2BadFamily)]
    [InlineData("0d0a0d0a000d0a515549540a 21 11 0008 ac130001 ac130003", ProxyParseResult.V2BadLength)]
    [InlineData("0d0a0d0a000d0a515549540a 21 21 000c ac130001 ac130003 a652 0050", ProxyParseResult.V2BadLength)]
    public void V2_malformed_input_gets_a_result_code(string hex, ProxyParseResult expected)
    {
        Assert.Equal(expected, ProxyHeaderParser.TryParse(Hex(hex), out _));
    }

    [Theory]
    [InlineData(ProxyProtocolVersion.V1)]
    [InlineData(ProxyProtocolVersion.V2)]
    public void Random_v4_and_v6_keys_round_trip(ProxyProtocolVersion version)
    {
        var random = new Random(1234);
        byte[] buffer = new byte[ProxyHeaderWriter.MaxLength(version) + 8];
        Span<byte> raw = stackalloc byte[16];
        for (int i = 0; i < 2000; i++)
        {
            bool v4 = (i & 1) == 0;
            random.NextBytes(raw);
            if ((i & 6) == 2)
            {
                raw[2..10].Clear();    // exercise "::" compression
            }
            IpAddr src = IpAddr.FromBytes(v4 ? raw[..4] : raw);
            random.NextBytes(raw);
            IpAddr dst = IpAddr.FromBytes(v4 ? raw[..4] : raw);
            if (!v4 && (src.IsV4 || dst.IsV4))
            {
                continue;
            }
            var key = new FlowKey(src, dst, (ushort)random.Next(65536), (ushort)random.Next(65536));

            int n = ProxyHeaderWriter.Write(version, buffer, key);
            buffer[n] = (byte)'X';    // application bytes follow
            Assert.Equal(ProxyParseResult.Success, ProxyHeaderParser.TryParse(buffer.AsSpan(0, n + 1), out ProxyHeader h));
            Assert.Equal(n, h.Length);
            Assert.Equal(version, h.Version);
            Assert.Equal(v4 ? ProxyTransport.Tcp4 : ProxyTransport.Tcp6, h.Transport);
            Assert.Equal(key.SrcAddr, h.SourceAddress);
            Assert.Equal(key.DstAddr, h.DestinationAddress);
            Assert.Equal(key.SrcPort, h.SourcePort);
            Assert.Equal(key.DstPort, h.DestinationPort);

            // Every strict prefix asks for more data rather than failing.
            int cut = random.Next(n);
            Assert.Equal(ProxyParseResult.NeedMoreData, ProxyHeaderParser.TryParse(buffer.AsSpan(0, cut), out _));
        }
    }

    [Fact]
    public void Writers_do_not_allocate()
    {
        byte[] buffer = new byte[ProxyHeaderWriter.V1MaxLength];
        FlowKey v4 = Key("198.18.1.7", 40000, "198.18.0.1", 80);
        FlowKey v6 = Key("fd00:198:18::2", 40000, "fd00:198:18::1", 80);
        ProxyHeaderWriter.Write(ProxyProtocolVersion.V1, buffer, v6);
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int i = 0; i < 100; i++)
        {
            ProxyHeaderWriter.Write(ProxyProtocolVersion.V1, buffer, v4);
            ProxyHeaderWriter.Write(ProxyProtocolVersion.V1, buffer, v6);
            ProxyHeaderWriter.Write(ProxyProtocolVersion.V2, buffer, v4);
            ProxyHeaderWriter.Write(ProxyProtocolVersion.V2, buffer, v6);
            ProxyHeaderParser.TryParse(buffer, out _);
        }
        Assert.Equal(0, GC.GetAllocatedBytesForCurrentThread() - before);
    }

    [Fact]
    public void Mutated_headers_never_throw()
    {
        var random = new Random(42);
        byte[] v1 = new byte[ProxyHeaderWriter.V1MaxLength];
        byte[] v2 = new byte[ProxyHeaderWriter.V2Tcp6Length];
        int n1 = ProxyHeaderWriter.Write(ProxyProtocolVersion.V1, v1, Key("fd00::1", 1, "fd00::2", 2));
        int n2 = ProxyHeaderWriter.Write(ProxyProtocolVersion.V2, v2, Key("fd00::1", 1, "fd00::2", 2));
        for (int i = 0; i < 20_000; i++)
        {
            byte[] source = (i & 1) == 0 ? v1[..n1] : v2[..n2];
            byte[] mutated = source[..random.Next(source.Length + 1)];
            for (int m = random.Next(1, 4); m > 0 && mutated.Length > 0; m--)
            {
                mutated[random.Next(mutated.Length)] = (byte)random.Next(256);
            }
            ProxyParseResult result = ProxyHeaderParser.TryParse(mutated, out ProxyHeader h);
            if (result == ProxyParseResult.Success)
            {
                Assert.InRange(h.Length, 1, mutated.Length);
            }
        }
    }
}
