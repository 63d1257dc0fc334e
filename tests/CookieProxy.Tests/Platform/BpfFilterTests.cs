using System.Net;
using CookieProxy.Platform;

namespace CookieProxy.Tests.Platform;

public class BpfFilterTests
{
    [Fact]
    public void OneIPv4EndpointGivesUntaggedThenVlanArm()
    {
        string filter = BpfFilter.ForProtectedEndpoints(new IPEndPoint(IPAddress.Parse("198.18.0.1"), 80));
        Assert.Equal(
            "(tcp and dst host 198.18.0.1 and dst port 80) or (vlan and tcp and dst host 198.18.0.1 and dst port 80)",
            filter);
    }

    [Fact]
    public void SeveralEndpointsAreOredInsideEachArm()
    {
        string filter = BpfFilter.ForProtectedEndpoints(
            new IPEndPoint(IPAddress.Parse("198.18.0.1"), 80),
            new IPEndPoint(IPAddress.Parse("fd00:198:18::1"), 443),
            new IPEndPoint(IPAddress.Parse("198.18.0.1"), 80));
        const string Match = "tcp and ((dst host 198.18.0.1 and dst port 80) or (dst host fd00:198:18::1 and dst port 443))";
        Assert.Equal($"({Match}) or (vlan and {Match})", filter);
    }

    [Fact]
    public void UnspecifiedAddressesMatchThePortOnTheirFamily()
    {
        string filter = BpfFilter.ForProtectedEndpoints(new IPEndPoint(IPAddress.Any, 80), new IPEndPoint(IPAddress.IPv6Any, 80));
        Assert.StartsWith("(tcp and ((ip and dst port 80) or (ip6 and dst port 80)))", filter);
    }

    [Fact]
    public void MappedAndScopedAddressesAreNormalised()
    {
        string filter = BpfFilter.ForProtectedEndpoints(
            new IPEndPoint(IPAddress.Parse("::ffff:198.18.0.1"), 80),
            new IPEndPoint(IPAddress.Parse("fe80::1%2"), 80));
        Assert.Contains("dst host 198.18.0.1 and", filter);
        Assert.Contains("dst host fe80::1 and", filter);
        Assert.DoesNotContain("%", filter);
    }

    [Fact]
    public void TheSynAndTheFlowFiltersNarrowBothArmsWithTheSamePredicate()
    {
        var endpoint = new IPEndPoint(IPAddress.Parse("198.18.0.1"), 80);
        const string Match = "tcp and dst host 198.18.0.1 and dst port 80";

        Assert.Equal($"({Match} and {BpfFilter.BareSyn}) or (vlan and {Match} and {BpfFilter.BareSyn})",
            BpfFilter.ForProtectedEndpoints([endpoint], SegmentClass.Syn));
        Assert.Equal($"({Match} and not {BpfFilter.BareSyn}) or (vlan and {Match} and not {BpfFilter.BareSyn})",
            BpfFilter.ForProtectedEndpoints([endpoint], SegmentClass.AllButSyn));
        Assert.Equal(BpfFilter.ForProtectedEndpoints(endpoint), BpfFilter.ForProtectedEndpoints([endpoint], SegmentClass.All));
    }

    [Theory]
    [InlineData(SegmentClass.Syn)]
    [InlineData(SegmentClass.AllButSyn)]
    public void SegmentClassFiltersCompileWithLibpcapForBothFamilies(SegmentClass segments)
    {
        string filter = BpfFilter.ForProtectedEndpoints(
            [new IPEndPoint(IPAddress.Parse("198.18.0.1"), 80), new IPEndPoint(IPAddress.Parse("fd00:198:18::1"), 443), new IPEndPoint(IPAddress.IPv6Any, 8443)],
            segments);
        using BpfProgram program = BpfProgram.Compile(filter);
        Assert.InRange(program.InstructionCount, 10, 400);
    }

    [Fact]
    public void NoEndpointsIsAnArgumentError() =>
        Assert.Throws<ArgumentException>(() => BpfFilter.ForProtectedEndpoints(Array.Empty<IPEndPoint>()));

    [Theory]
    [InlineData("198.18.0.1", 80)]
    [InlineData("fd00:198:18::1", 8443)]
    [InlineData("0.0.0.0", 80)]
    public void GeneratedFiltersCompileWithLibpcap(string address, int port)
    {
        string filter = BpfFilter.ForProtectedEndpoints(
            new IPEndPoint(IPAddress.Parse(address), port),
            new IPEndPoint(IPAddress.Parse("198.18.0.2"), 443));
        using BpfProgram program = BpfProgram.Compile(filter);
        Assert.InRange(program.InstructionCount, 10, 200);
    }

    [Fact]
    public void CompiledProgramAcceptsOnlyTheProtectedEndpoint()
    {
        using BpfProgram program = BpfProgram.Compile(BpfFilter.ForProtectedEndpoints(new IPEndPoint(IPAddress.Parse("198.18.0.1"), 80)));
        Interop.Pcap.bpf_insn[] code = program.ToArray();
        // Last instructions are "ret #snaplen" (accept) and "ret #0" (reject); 0xC6120001 = 198.18.0.1.
        Assert.Contains(code, i => i.code == 0x06 && i.k == 65535);
        Assert.Contains(code, i => i.code == 0x06 && i.k == 0);
        Assert.Contains(code, i => i.k == 0xC6120001);
        Assert.Contains(code, i => i.k == 80);
        Assert.Contains(code, i => i.k == 0x8100);
    }

    [Fact]
    public void SyntaxErrorCarriesLibpcapText()
    {
        PacketDeviceException error = Assert.Throws<PacketDeviceException>(() => BpfFilter.Validate("tcp and (dst port 80"));
        Assert.Contains("tcp and (dst port 80", error.Message);
        Assert.Contains("syntax error", error.Message);
    }

    [Fact]
    public void UnknownWordCarriesLibpcapText()
    {
        PacketDeviceException error = Assert.Throws<PacketDeviceException>(() => BpfFilter.Validate("tcp and dst prot 80"));
        Assert.Contains("unknown host 'prot'", error.Message);
    }
}
