using System.Net;
using CookieProxy.Tests.Support;
using CookieProxy.Wire;
using PacketDotNet;

namespace CookieProxy.Tests.Oracle;

/// <summary>Untagged, one 802.1Q tag (VID 100, PCP 5), QinQ (S-tag 0x88A8 VID 7 over C-tag VID 100, PCP 3).</summary>
public enum Tagging
{
    None,
    Dot1Q,
    QinQ,
}

/// <summary>The addresses and L2 templates the oracle tests send from and to.</summary>
public static class OracleTemplates
{
    public static readonly IPEndPoint ServerV4 = IPEndPoint.Parse("198.18.0.1:80");
    public static readonly IPEndPoint ServerV6 = IPEndPoint.Parse("[fd00:198:18::1]:443");
    public const string ClientV4 = "198.18.0.2";
    public const string ClientV6 = "fd00:198:18::2";

    /// <summary>Client to server (the frames we receive).</summary>
    public static L2L3Template Client(bool v6, Tagging tagging)
    {
        L2L3Template t = Frames.ClientToServer(v6 ? ClientV6 : ClientV4, (v6 ? ServerV6 : ServerV4).Address.ToString());
        Tag(ref t, tagging);
        return t;
    }

    /// <summary>Server to client (the frames a flow sends), as the host derives it from the client's frame.</summary>
    public static L2L3Template Server(bool v6, Tagging tagging)
    {
        L2L3Template c = Client(v6, tagging);
        L2L3Template t = c;
        t.OurMac = c.ClientMac;
        t.ClientMac = c.OurMac;
        t.OurIp = c.ClientIp;
        t.ClientIp = c.OurIp;
        t.Ttl = L2L3Template.DefaultTtl;
        return t;
    }

    private static void Tag(ref L2L3Template t, Tagging tagging)
    {
        switch (tagging)
        {
            case Tagging.Dot1Q:
                t.VlanCount = 1;
                t.OuterVlanTpid = 0x8100;
                t.OuterVlanTci = (5 << 13) | 100;
                break;
            case Tagging.QinQ:
                t.VlanCount = 2;
                t.OuterVlanTpid = 0x88A8;
                t.OuterVlanTci = 7;
                t.InnerVlanTci = (3 << 13) | 100;
                break;
        }
    }

    public static void AssertTags(Tagging tagging, OracleFrame o)
    {
        switch (tagging)
        {
            case Tagging.None:
                Assert.Empty(o.Tags);
                break;
            case Tagging.Dot1Q:
                Assert.Equal([new OracleTag(EthernetType.VLanTaggedFrame, 100, 5)], o.Tags);
                break;
            case Tagging.QinQ:
                Assert.Equal([new OracleTag(EthernetType.ProviderBridging, 7, 0), new OracleTag(EthernetType.VLanTaggedFrame, 100, 3)], o.Tags);
                break;
        }
    }
}
