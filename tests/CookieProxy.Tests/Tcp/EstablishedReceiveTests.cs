using CookieProxy.Tcp;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Tcp;

/// <summary>ESTABLISHED, receive direction: acceptability, reassembly, ACK generation, windows.</summary>
public class EstablishedReceiveTests : TcpTestBase
{
    [Fact]
    public void In_order_data_is_buffered_and_acked_when_the_delayed_ack_timer_fires()
    {
        InEstablished();
        SpendQuickAcks();
        byte[] data = SendData(100);
        RecvNothing();
        Assert.Equal(100, Ep.ReceiveAvailable);
        Assert.Equal(Now + 40, Ep.NextDeadlineMs);
        Advance(39);
        RecvNothing();
        Advance(1);
        Recv(OurNext, ClientNext, TcpFlags.Ack, length: 0);
        Assert.Equal(data, ReadAll());
    }

    [Fact]
    public void Every_second_segment_is_acked_immediately()
    {
        InEstablished();
        SpendQuickAcks();
        SendData(Mss);
        RecvNothing();
        SendData(Mss);
        Recv(OurNext, ClientNext);
        SendData(Mss);
        RecvNothing();
    }

    [Fact]
    public void An_out_of_order_segment_gets_an_immediate_duplicate_ack()
    {
        InEstablished();
        Send(ClientNext + 100, payload: Pattern(ClientNext + 100, 100));
        SentSegment ack = Recv(OurNext, ClientNext);
        Assert.Equal(0, ack.Repr.Options.SackCount);
        Assert.Equal(0, Ep.ReceiveAvailable);
    }

    [Fact]
    public void Filling_the_hole_delivers_everything_and_acks_immediately()
    {
        InEstablished();
        SeqNumber start = ClientNext;
        Send(start + 100, payload: Pattern(start + 100, 100));
        Recv(OurNext, start);
        Send(start, payload: Pattern(start, 100));
        Recv(OurNext, start + 200);
        Assert.Equal(Pattern(start, 200), ReadAll());
    }

    [Fact]
    public void Sack_blocks_report_the_most_recently_received_range_first()
    {
        InEstablished(handshake: Handshake(sack: true));
        SeqNumber c = ClientNext;
        Send(c + 200, payload: Pattern(c + 200, 100));
        SentSegment a1 = Recv(OurNext, c);
        Assert.Equal(1, a1.Repr.Options.SackCount);
        Assert.Equal(new SackBlock(c + 200, c + 300), a1.Repr.Options.Sack[0]);

        Send(c + 500, payload: Pattern(c + 500, 100));
        SentSegment a2 = Recv(OurNext, c);
        Assert.Equal(2, a2.Repr.Options.SackCount);
        Assert.Equal(new SackBlock(c + 500, c + 600), a2.Repr.Options.Sack[0]);
        Assert.Equal(new SackBlock(c + 200, c + 300), a2.Repr.Options.Sack[1]);

        Send(c + 300, payload: Pattern(c + 300, 100));
        SentSegment a3 = Recv(OurNext, c);
        Assert.Equal(new SackBlock(c + 200, c + 400), a3.Repr.Options.Sack[0]);
        Assert.Equal(new SackBlock(c + 500, c + 600), a3.Repr.Options.Sack[1]);

        Send(c, payload: Pattern(c, 200));
        SentSegment a4 = Recv(OurNext, c + 400);
        Assert.Equal(1, a4.Repr.Options.SackCount);
        Assert.Equal(new SackBlock(c + 500, c + 600), a4.Repr.Options.Sack[0]);
        Assert.Equal(Pattern(c, 400), ReadAll());
    }

    [Fact]
    public void A_segment_beyond_the_window_gets_an_ack_and_is_dropped()
    {
        InEstablished();
        Send(ClientNext + 70_000, payload: new byte[10]);
        Recv(OurNext, ClientNext);
        Assert.Equal(0, Ep.ReceiveAvailable);
        Assert.Equal(1, Ep.SegmentsDropped);
    }

    [Fact]
    public void Out_of_window_pure_acks_are_answered_at_most_every_500_ms()
    {
        InEstablished();
        Send(ClientNext + 100_000);
        Recv(OurNext, ClientNext);
        Send(ClientNext + 100_000);
        RecvNothing();
        Advance(499);
        Send(ClientNext + 100_000);
        RecvNothing();
        Advance(1);
        Send(ClientNext + 100_000);
        Recv(OurNext, ClientNext);
    }

    [Fact]
    public void An_old_duplicate_segment_gets_an_immediate_ack()
    {
        InEstablished();
        SeqNumber c = ClientNext;
        SendData(100);
        Advance(40);
        Recv(OurNext, c + 100);
        Send(c, payload: Pattern(c, 100));
        Recv(OurNext, c + 100);
        Assert.Equal(100, Ep.ReceiveAvailable);
    }

    [Fact]
    public void A_segment_overlapping_received_data_delivers_only_the_new_part()
    {
        InEstablished();
        SeqNumber c = ClientNext;
        SendData(100);
        Send(c + 50, payload: Pattern(c + 50, 100));
        Recv(OurNext, c + 150);
        Assert.Equal(Pattern(c, 150), ReadAll());
    }

    [Fact]
    public void Reassembly_keeps_at_most_max_out_of_order_segments()
    {
        InEstablished(new TcpConfig { MaxOutOfOrderSegments = 2 });
        SeqNumber c = ClientNext;
        foreach (int off in new[] { 100, 300, 500 })
        {
            Send(c + off, payload: Pattern(c + off, 100));
            Recv(OurNext, c);
        }

        Assert.Equal(1, Ep.OutOfOrderDropped);
        Send(c, payload: Pattern(c, 100));
        Recv(OurNext, c + 200);
        Send(c + 200, payload: Pattern(c + 200, 100));
        Recv(OurNext, c + 400);
        Assert.Equal(Pattern(c, 400), ReadAll());
    }

    [Fact]
    public void The_window_field_is_free_buffer_space_scaled_by_our_window_scale()
    {
        InEstablished(handshake: Handshake(sendScale: 7, recvScale: 7));
        SendData(100);
        SendData(100);
        // (262144 - 200) / 128 = 2046.4, rounded up so the right edge never moves left.
        Recv(OurNext, ClientNext, window: 2047);
    }

    [Fact]
    public void A_full_buffer_advertises_a_zero_window_and_a_window_update_follows_the_backend_read()
    {
        InEstablished(new TcpConfig { ReceiveBufferSize = 4096, LocalMss = 1000 });
        SendData(2048);
        SendData(2048);
        Recv(OurNext, ClientNext, window: 0);

        // Data into a zero window is unacceptable: ACK, drop.
        Send(ClientNext, payload: new byte[1]);
        Recv(OurNext, ClientNext, window: 0);
        Assert.Equal(4096, Ep.ReceiveAvailable);

        // Receiver SWS avoidance: 500 bytes is below min(RCV.BUFF / 2, MSS) = 1000.
        Ep.ConsumeReceived(500);
        RecvNothing();
        Ep.ConsumeReceived(600);
        Recv(OurNext, ClientNext, window: 1100);

        // A zero-window probe (SEG.SEQ = RCV.NXT - 1) is answered with the current window.
        Send(ClientNext - 1);
        Recv(OurNext, ClientNext, window: 1100);
    }

    [Fact]
    public void Reading_a_little_from_a_large_open_window_sends_no_window_update()
    {
        InEstablished();
        SendData(1000);
        SendData(1000);
        Recv(OurNext, ClientNext);
        ReadAll();
        RecvNothing();
    }

    [Fact]
    public void Data_is_trimmed_to_the_advertised_window()
    {
        InEstablished(new TcpConfig { ReceiveBufferSize = 1000, LocalMss = 500 });
        SeqNumber c = ClientNext;
        Send(c, payload: Pattern(c, 1500));
        Assert.Equal(1000, Ep.ReceiveAvailable);
        Assert.Equal(c + 1000, Ep.ReceiveNext);
    }

    [Fact]
    public void Data_that_wraps_the_client_sequence_space_is_received_in_order()
    {
        InEstablished();
        SeqNumber c = ClientNext;
        Assert.True(c.Value > 0xFFFF_0000); // the fixture's IRS sits just below 2^32
        byte[] a = SendData(3000);
        byte[] b = SendData(3000);
        Assert.True(ClientNext.Value < 0x1000);
        Assert.Equal([.. a, .. b], ReadAll());
    }
}

/// <summary>Receive-window bookkeeping across many segments.</summary>
public class WindowEdgeTests : TcpTestBase
{
    [Fact]
    public void The_advertised_right_edge_never_moves_left_while_the_buffer_fills()
    {
        InEstablished(new TcpConfig { ReceiveBufferSize = 1000, LocalMss = 100, DelayedAckMs = 0 }, Handshake(sendScale: 4, recvScale: 4));
        var rng = new Random(7);
        SeqNumber lastEdge = ClientNext;
        for (int i = 0; i < 40 && Ep.ReceiveAvailable < 1000; i++)
        {
            SendData(rng.Next(1, 60));
            foreach (SentSegment s in DispatchAll())
            {
                SeqNumber edge = s.Ack + (s.Window << 4);
                Assert.True(edge >= lastEdge, $"edge moved left: {edge} < {lastEdge}");
                lastEdge = edge;
            }

            ClientNext = Ep.ReceiveNext;
        }
    }
}
