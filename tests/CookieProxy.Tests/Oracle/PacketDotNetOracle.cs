using System.Net;
using PacketDotNet;
using PacketDotNet.Tcp;
using Pdn = PacketDotNet;

namespace CookieProxy.Tests.Oracle;

/// <summary>One VLAN tag as PacketDotNet reads it.</summary>
public readonly record struct OracleTag(EthernetType Tpid, ushort VlanId, int Priority);

/// <summary>
/// A frame as PacketDotNet 1.4.8 decodes it: every field read through PacketDotNet's own classes, none through
/// ours, so a test comparing this with what we meant to send has two independent readings of the same bytes.
/// </summary>
public sealed record OracleFrame(
    string SourceMac,
    string DestinationMac,
    IReadOnlyList<OracleTag> Tags,
    int IpVersion,
    IPAddress Source,
    IPAddress Destination,
    int Ttl,
    int TrafficClass,
    int IpTotalLength,
    bool IpChecksumValid,
    bool DontFragment,
    ushort SourcePort,
    ushort DestinationPort,
    uint Seq,
    uint Ack,
    bool Syn,
    bool AckFlag,
    bool Rst,
    bool Psh,
    bool Fin,
    bool Urg,
    ushort Window,
    int TcpHeaderLength,
    ushort TcpChecksum,
    bool TcpChecksumValid,
    ushort? Mss,
    int? WindowScale,
    bool SackPermitted,
    uint? TsVal,
    uint? TsEcr,
    int SackBlocks,
    bool OptionsUnread,
    byte[] Payload)
{
    /// <summary>Both checksums (IPv4 header and TCP with its pseudo-header) are right.</summary>
    public bool ChecksumsValid => IpChecksumValid && TcpChecksumValid;
}

public static class PacketDotNetOracle
{
    /// <summary>Decodes an Ethernet frame down to TCP; fails the test if PacketDotNet finds no TCP segment.</summary>
    public static OracleFrame Decode(byte[] frame)
    {
        Packet packet = Packet.ParsePacket(LinkLayers.Ethernet, frame);
        var eth = Assert.IsType<EthernetPacket>(packet);
        var tags = new List<OracleTag>();
        Packet? next = eth.PayloadPacket;
        EthernetType tpid = eth.Type;
        while (next is Ieee8021QPacket tag)
        {
            tags.Add(new OracleTag(tpid, tag.VlanIdentifier, (int)tag.PriorityControlPoint));
            tpid = tag.Type;
            next = tag.PayloadPacket;
        }
        var ip = Assert.IsAssignableFrom<IPPacket>(next);
        var tcp = Assert.IsType<Pdn.TcpPacket>(ip.PayloadPacket);

        ushort? mss = null;
        int? scale = null;
        bool sackPermitted = false;
        uint? tsVal = null;
        uint? tsEcr = null;
        int sackBlocks = 0;
        // PacketDotNet leaves the collection null for a header without options, and refuses to parse the options
        // of a segment with URG set (NotImplementedException): then the options stay unread, and say so.
        List<TcpOption>? options;
        bool optionsUnread = false;
        try
        {
            options = tcp.OptionsCollection;
        }
        catch (NotImplementedException)
        {
            options = null;
            optionsUnread = true;
        }
        foreach (TcpOption option in options ?? [])
        {
            switch (option)
            {
                case MaximumSegmentSizeOption m:
                    mss = m.Value;
                    break;
                case WindowScaleFactorOption w:
                    scale = w.ScaleFactor;
                    break;
                case SelectiveAcknowledgmentPermittedOption:
                    sackPermitted = true;
                    break;
                case TimeStampOption t:
                    tsVal = t.Value;
                    tsEcr = t.EchoReply;
                    break;
                case SelectiveAcknowledgmentOption s:
                    sackBlocks = (s.Length - 2) / 8;
                    break;
            }
        }

        bool ipValid = true;
        bool dontFragment = false;
        int trafficClass;
        if (ip is IPv4Packet v4)
        {
            ipValid = v4.ValidIPChecksum;
            dontFragment = (v4.FragmentFlags & 0x2) != 0;
            trafficClass = v4.TypeOfService;
        }
        else
        {
            trafficClass = ((IPv6Packet)ip).TrafficClass;
        }

        return new OracleFrame(
            eth.SourceHardwareAddress.ToString(),
            eth.DestinationHardwareAddress.ToString(),
            tags,
            ip.Version == IPVersion.IPv4 ? 4 : 6,
            ip.SourceAddress,
            ip.DestinationAddress,
            ip.TimeToLive,
            trafficClass,
            ip.TotalLength,
            ipValid,
            dontFragment,
            tcp.SourcePort,
            tcp.DestinationPort,
            tcp.SequenceNumber,
            tcp.AcknowledgmentNumber,
            tcp.Synchronize,
            tcp.Acknowledgment,
            tcp.Reset,
            tcp.Push,
            tcp.Finished,
            tcp.Urgent,
            tcp.WindowSize,
            tcp.DataOffset * 4,
            tcp.Checksum,
            tcp.ValidTcpChecksum,
            mss,
            scale,
            sackPermitted,
            tsVal,
            tsEcr,
            sackBlocks,
            optionsUnread,
            tcp.PayloadData ?? []);
    }
}
