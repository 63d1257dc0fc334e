using System.Net;
using CookieProxy.Tcp;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Support;

/// <summary>Builds client frames (towards the protected endpoint) with the production frame builder.</summary>
public static class Frames
{
    public const ulong ClientMac = 0x02_00_00_00_00_02;
    public const ulong ServerMac = 0x02_00_00_00_00_01;

    public static L2L3Template ClientToServer(string client = "198.18.0.2", string server = "198.18.0.1", ushort vlanTci = 0)
    {
        L2L3Template t = default;
        t.OurMac = ClientMac;
        t.ClientMac = ServerMac;
        t.OurIp = IpAddr.FromIPAddress(IPAddress.Parse(client));
        t.ClientIp = IpAddr.FromIPAddress(IPAddress.Parse(server));
        t.IpVersion = (byte)(t.OurIp.IsV4 ? 4 : 6);
        t.Ttl = 64;
        if (vlanTci != 0)
        {
            t.VlanCount = 1;
            t.OuterVlanTpid = 0x8100;
            t.OuterVlanTci = vlanTci;
        }
        return t;
    }

    public static byte[] Build(in L2L3Template tmpl, in TcpRepr tcp, ReadOnlySpan<byte> payload = default)
    {
        var buf = new byte[2048];
        int n = TcpFrameBuilder.Write(buf, tmpl, tcp, payload, default);
        Assert.True(n > 0);
        return buf.AsSpan(0, n).ToArray();
    }

    /// <summary>A Linux-like SYN: mss 1460, sackOK, TS, wscale 7.</summary>
    public static TcpRepr LinuxSyn(ushort sport, uint isn, ushort dport = 80, bool timestamps = true)
    {
        var opts = TcpOptionsRepr.None;
        opts.Mss = 1460;
        opts.SackPermitted = true;
        opts.WindowScale = 7;
        if (timestamps)
        {
            opts.HasTimestamp = true;
            opts.TsVal = 1_000_000;
        }
        return new TcpRepr { SrcPort = sport, DstPort = dport, Seq = new SeqNumber(isn), Flags = TcpFlags.Syn, Window = 64240, Options = opts };
    }

    public static ParsedPacket Parse(byte[] frame)
    {
        Assert.Equal(CookieProxy.Diagnostics.DropReason.None, PacketParser.Parse(frame, out ParsedPacket p, verifyChecksums: true));
        return p;
    }
}
