using CookieProxy.Diagnostics;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Fuzz;

/// <summary>The lab captures the frame fuzzer seeds from (Fuzz/Corpus/*.pcap, scripts/capture-corpus.sh).</summary>
public class LabCaptureTests
{
    [Fact]
    public void The_lab_captures_hold_real_handshakes_moved_onto_the_fuzzers_protected_endpoint()
    {
        List<byte[]> frames = FrameFuzzer.LabCaptures();
        int syns = 0, synAcks = 0, data = 0, v6 = 0;
        foreach (byte[] frame in frames)
        {
            if (PacketParser.Parse(frame, out ParsedPacket p, verifyChecksums: true) != DropReason.None)
            {
                continue;    // hping3's fragments and Xmas probes do not parse, as they should not
            }
            TcpFlags f = p.Tcp.Flags & (TcpFlags.Syn | TcpFlags.Ack);
            bool toServer = p.Tcp.DstPort == 80;
            syns += toServer && f == TcpFlags.Syn ? 1 : 0;
            synAcks += !toServer && f == (TcpFlags.Syn | TcpFlags.Ack) ? 1 : 0;
            data += toServer && p.PayloadLength > 0 && (p.Tcp.Flags & TcpFlags.Syn) == 0 ? 1 : 0;
            v6 += p.IsV4 ? 0 : 1;
            Assert.True(toServer ? p.Flow.DstAddr == FrameFuzzer.ServerV4Key || p.Flow.DstAddr == FrameFuzzer.ServerV6Key
                : p.Flow.SrcAddr == FrameFuzzer.ServerV4Key || p.Flow.SrcAddr == FrameFuzzer.ServerV6Key,
                $"a lab frame still names the lab's server: {p.Flow}");
        }
        Assert.True(syns >= 10 && synAcks >= 10 && data >= 5 && v6 >= 3,
            $"{frames.Count} frames: {syns} SYNs, {synAcks} SYN+ACKs, {data} data segments, {v6} IPv6");
    }
}
