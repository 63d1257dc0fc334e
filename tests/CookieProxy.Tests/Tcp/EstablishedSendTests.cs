using CookieProxy.Tcp;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Tcp;

/// <summary>ESTABLISHED, send direction: segmentation, rwnd and cwnd limits, slow start.</summary>
public class EstablishedSendTests : TcpTestBase
{
    [Fact]
    public void A_short_response_goes_out_at_once_with_psh()
    {
        InEstablished();
        Assert.Equal(100, Ep.Send(new byte[100]));
        Recv(OurNext, ClientNext, TcpFlags.Ack | TcpFlags.Psh, length: 100);
        Assert.Equal(Now + 1000, Ep.NextDeadlineMs); // RFC 6298 initial RTO
    }

    [Fact]
    public void Bytes_received_straight_into_the_send_space_go_out_like_sent_ones()
    {
        InEstablished();
        Ep.GetSendSpace(out Span<byte> head, out Span<byte> tail);
        Assert.Equal(Ep.SendBufferFree, head.Length + tail.Length);
        head[..100].Fill(0x5A);
        Ep.CommitSend(100);
        Assert.Throws<ArgumentOutOfRangeException>(() => Ep.CommitSend(Ep.SendBufferFree + 1));
        SentSegment seg = Recv(OurNext, ClientNext, TcpFlags.Ack | TcpFlags.Psh, length: 100);
        Assert.All(seg.Payload, b => Assert.Equal(0x5A, b));

        Ep.CloseSend();    // FIN queued: no more space is offered
        Ep.GetSendSpace(out head, out tail);
        Assert.True(head.IsEmpty && tail.IsEmpty);
    }

    [Fact]
    public void With_segmentation_offload_new_data_leaves_as_super_segments_of_whole_MSS_pieces()
    {
        InEstablished();
        Ep.SegmentOffloadBytes = TcpSuperFrame.MaxPayloadBytes;
        Ep.Send(new byte[30_000]);
        // The initial window (10 MSS) in one emission, to be cut at the MSS.
        SentSegment first = Recv(OurNext, ClientNext, TcpFlags.Ack, length: 10 * Mss);
        Assert.Equal(Mss, Ep.EmitSegmentSize);
        Assert.Equal(10 * Mss, first.Payload.Length);

        // An ACK for 3 MSS (slow start: cwnd 13 MSS, flight 7): 6 more MSS, again whole pieces.
        Send(ClientNext, ack: OurNext + (3 * Mss));
        Recv(OurNext + (10 * Mss), ClientNext, TcpFlags.Ack, length: 6 * Mss);
    }

    [Fact]
    public void With_segmentation_offload_only_the_tail_of_the_data_is_a_runt_and_carries_PSH()
    {
        InEstablished();
        Ep.SegmentOffloadBytes = TcpSuperFrame.MaxPayloadBytes;
        Ep.Send(new byte[(3 * Mss) + 100]);
        Recv(OurNext, ClientNext, TcpFlags.Ack | TcpFlags.Psh, length: (3 * Mss) + 100);
    }

    [Fact]
    public void With_segmentation_offload_a_window_limit_trims_to_whole_pieces()
    {
        InEstablished(handshake: Handshake(window: (5 * Mss) / 2));
        Ep.SegmentOffloadBytes = TcpSuperFrame.MaxPayloadBytes;
        Ep.Send(new byte[20_000]);
        Recv(OurNext, ClientNext, TcpFlags.Ack, length: 2 * Mss);    // not 2.5 MSS: the half waits
    }

    [Fact]
    public void With_segmentation_offload_a_retransmission_is_still_one_MSS()
    {
        InEstablished();
        Ep.SegmentOffloadBytes = TcpSuperFrame.MaxPayloadBytes;
        Ep.Send(new byte[20_000]);
        DispatchAll();
        Advance(1_100);    // past the initial RTO
        SentSegment rtx = Recv();
        Assert.Equal(OurNext, rtx.Seq);
        Assert.Equal(Mss, rtx.Payload.Length);
    }

    [Fact]
    public void The_initial_window_is_ten_segments()
    {
        InEstablished();
        Ep.Send(new byte[20_000]);
        List<SentSegment> segs = DispatchAll();
        Assert.Equal(10, segs.Count);
        for (int i = 0; i < 10; i++)
        {
            Assert.Equal(OurNext + (i * Mss), segs[i].Seq);
            Assert.Equal(Mss, segs[i].Payload.Length);
            Assert.Equal(TcpFlags.Ack, segs[i].Flags);
        }

        RecvNothing();
    }

    [Fact]
    public void Slow_start_grows_cwnd_by_the_bytes_each_ack_covers()
    {
        InEstablished();
        Ep.Send(new byte[30_000]);
        Assert.Equal(10, DispatchAll().Count);
        Send(ClientNext, ack: OurNext + (2 * Mss));
        Assert.Equal(12 * Mss, Ep.CongestionWindow);
        // flight 8 segments, cwnd 12: four more.
        List<SentSegment> segs = DispatchAll();
        Assert.Equal(4, segs.Count);
        Assert.Equal(OurNext + (10 * Mss), segs[0].Seq);
    }

    [Fact]
    public void Sending_stops_at_the_client_window_and_holds_a_runt_while_data_is_in_flight()
    {
        InEstablished(handshake: Handshake(window: 3000));
        Ep.Send(new byte[10_000]);
        List<SentSegment> segs = DispatchAll();
        Assert.Equal(2, segs.Count);
        RecvNothing();
        Send(ClientNext, ack: OurNext + (2 * Mss), window: 3000);
        Assert.Equal(2, DispatchAll().Count);
    }

    [Fact]
    public void With_nothing_in_flight_a_small_window_is_used_rather_than_stalling()
    {
        InEstablished(handshake: Handshake(window: 500));
        Ep.Send(new byte[10_000]);
        Recv(OurNext, ClientNext, TcpFlags.Ack, length: 500);
        RecvNothing();
    }

    [Fact]
    public void Segments_leave_room_for_the_timestamp_option()
    {
        InEstablished(handshake: Handshake(ts: true));
        Ep.Send(new byte[3000]);
        List<SentSegment> segs = DispatchAll();
        Assert.Equal([1448, 1448, 104], segs.Select(s => s.Payload.Length));
        Assert.Equal(1448, Ep.EffectiveSendMss);
    }

    [Fact]
    public void The_client_window_is_scaled_by_its_window_scale()
    {
        InEstablished(handshake: Handshake(sendScale: 3, recvScale: 0, window: 1000));
        Assert.Equal(8000, Ep.SendWindow);
        Send(ClientNext, window: 2000);
        Assert.Equal(16_000, Ep.SendWindow);
    }

    [Fact]
    public void An_older_segment_does_not_update_the_send_window()
    {
        InEstablished();
        SeqNumber c = ClientNext;
        SendData(10, window: 5000);
        SendData(10, window: 5000);
        Assert.Equal(5000, Ep.SendWindow);
        Send(c, payload: Pattern(c, 30), window: 100); // overlapping retransmission: SEG.SEQ < SND.WL1
        Assert.Equal(30, Ep.ReceiveAvailable);
        Assert.Equal(5000, Ep.SendWindow);
    }

    [Fact]
    public void The_send_buffer_is_bounded()
    {
        InEstablished(new TcpConfig { SendBufferSize = 1000 });
        Assert.Equal(1000, Ep.Send(new byte[1500]));
        Assert.Equal(0, Ep.SendBufferFree);
        Recv(OurNext, ClientNext, TcpFlags.Ack | TcpFlags.Psh, length: 1000);
        Send(ClientNext, ack: OurNext + 400);
        Assert.Equal(400, Ep.SendBufferFree);
    }

    [Fact]
    public void Payload_bytes_come_out_in_order_across_the_ring_wrap()
    {
        InEstablished(new TcpConfig { SendBufferSize = 1000 });
        byte[] a = Pattern(new SeqNumber(1), 700);
        byte[] b = Pattern(new SeqNumber(2), 700);
        Ep.Send(a);
        Recv();
        Send(ClientNext, ack: OurNext + 700);
        Assert.Equal(700, Ep.Send(b));
        SentSegment s = Recv(OurNext + 700, ClientNext, TcpFlags.Ack | TcpFlags.Psh, length: 700);
        Assert.Equal(b, s.Payload);
    }

    [Fact]
    public void Acked_data_with_a_fresh_rtt_sample_sets_srtt_and_rto()
    {
        InEstablished();
        Ep.Send(new byte[100]);
        Recv();
        Advance(50);
        Send(ClientNext, ack: OurNext + 100);
        Assert.Equal(50, Ep.SmoothedRttMs);
        Assert.Equal(200, Ep.RtoMs); // 50 + 4 * 25 = 150, clamped to MinRto
        Assert.Equal(100, Ep.BytesAcked);
    }
}
