using CookieProxy.Diagnostics;
using CookieProxy.Wire;
using static CookieProxy.Tests.Wire.WireTestFrames;

namespace CookieProxy.Tests.Wire;

public class HeaderViewTests
{
    [Fact]
    public void Ethernet_view_reads_and_writes_macs_and_type()
    {
        byte[] frame = Hex(LinuxSynV4);
        var eth = new EthernetFrame(frame);
        Assert.Equal(0xae39131312bfUL, eth.DstMac);
        Assert.Equal(0xfa9b4d126a1dUL, eth.SrcMac);
        Assert.Equal(EtherType.Ipv4, eth.EtherType);

        eth.DstMac = 0x0102_0304_0506;
        eth.SrcMac = 0x0A0B_0C0D_0E0F;
        eth.EtherType = EtherType.Ipv6;
        Assert.Equal("0102030405060a0b0c0d0e0f86dd", ToHex(frame.AsSpan(0, 14)));
    }

    [Fact]
    public void Ethernet_walk_reports_tags()
    {
        byte[] frame = BuildV4(LinuxSynSegment(), tags: [(0x9100, 0xE00A), (0x8100, 0x0014)]);
        Assert.Equal(DropReason.None, EthernetFrame.Walk(frame, out EthernetHeaderInfo info));
        Assert.Equal(22, info.HeaderLength);
        Assert.Equal(2, info.VlanCount);
        Assert.Equal(0x9100, info.OuterTpid);
        Assert.Equal(0xE00A, info.OuterTci);
        Assert.Equal(0x8100, info.InnerTpid);
        Assert.Equal(0x0014, info.InnerTci);
        Assert.Equal(EtherType.Ipv4, info.EtherType);
    }

    [Fact]
    public void Ipv4_view_reads_every_field_of_a_real_header()
    {
        byte[] frame = Hex(LinuxSynV4);
        var ip = new Ipv4Packet(frame.AsSpan(14));
        Assert.Equal(DropReason.None, Ipv4Packet.Validate(ip.Buffer));
        Assert.Equal(4, ip.Version);
        Assert.Equal(5, ip.Ihl);
        Assert.Equal(20, ip.HeaderLength);
        Assert.Equal(0, ip.Dscp);
        Assert.Equal(0, ip.Ecn);
        Assert.Equal(60, ip.TotalLength);
        Assert.Equal(0x281e, ip.Identification);
        Assert.True(ip.DontFragment);
        Assert.False(ip.MoreFragments);
        Assert.Equal(0, ip.FragmentOffset);
        Assert.Equal(64, ip.Ttl);
        Assert.Equal(IpProtocol.Tcp, ip.Protocol);
        Assert.Equal(0xec73, ip.HeaderChecksum);
        Assert.Equal(0xc6134d01u, ip.SrcAddress);
        Assert.Equal(0xc6134d02u, ip.DstAddress);
        Assert.Equal(0, ip.Options.Length);
        Assert.Equal(40, ip.Payload.Length);
        Assert.True(ip.VerifyChecksum());
    }

    [Fact]
    public void Ipv4_view_setters_produce_a_header_that_verifies()
    {
        byte[] b = new byte[24];
        Array.Fill(b, (byte)0xA5);
        var ip = new Ipv4Packet(b);
        ip.SetVersionAndHeaderLength(24);
        ip.TrafficClass = 0xB8; // EF
        ip.TotalLength = 24;
        ip.Identification = 7;
        ip.FlagsAndFragmentOffset = Ipv4Packet.FlagDontFragment;
        ip.Ttl = 1;
        ip.Protocol = 6;
        ip.SrcAddress = 0xC6120001;
        ip.DstAddress = 0xC6120002;
        ip.Options.Fill(0);
        ip.FillChecksum();
        Assert.Equal(46, ip.Dscp);
        Assert.True(ip.VerifyChecksum());
        Assert.Equal(ReferenceChecksum([.. b[..10], 0, 0, .. b[12..]]), ip.HeaderChecksum);
    }

    [Fact]
    public void Ipv6_view_reads_and_writes_every_field()
    {
        byte[] frame = Hex(LinuxSynV6);
        var ip = new Ipv6Packet(frame.AsSpan(14));
        Assert.Equal(6, ip.Version);
        Assert.Equal(0, ip.TrafficClass);
        Assert.Equal(0x3dd27u, ip.FlowLabel);
        Assert.Equal(40, ip.PayloadLength);
        Assert.Equal(IpProtocol.Tcp, ip.NextHeader);
        Assert.Equal(64, ip.HopLimit);
        Assert.Equal("fd00:77::1", ip.SrcAddress.ToString());
        Assert.Equal("fd00:77::2", ip.DstAddress.ToString());
        Assert.Equal(40, ip.Payload.Length);

        ip.SetVersionClassFlow(0xB8, 0x12345);
        ip.HopLimit = 255;
        (ip.SrcAddress, ip.DstAddress) = (ip.DstAddress, ip.SrcAddress);
        Assert.Equal(0xB8, ip.TrafficClass);
        Assert.Equal(0x12345u, ip.FlowLabel);
        Assert.Equal("fd00:77::2", ip.SrcAddress.ToString());
        Assert.Equal(255, frame[21]);
    }
}
