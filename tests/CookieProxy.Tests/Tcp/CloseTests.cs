using CookieProxy.Tcp;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Tcp;

/// <summary>FIN in both orders, half-close, CLOSING, LAST-ACK, TIME-WAIT (RFC 9293 3.6, 3.10.7.4).</summary>
public class CloseTests : TcpTestBase
{
    [Fact]
    public void In_established_a_client_fin_moves_to_close_wait_and_receive_finishes_once_the_backend_has_read()
    {
        InEstablished();
        SeqNumber c = ClientNext;
        SendData(100);
        Send(ClientNext, flags: TcpFlags.Fin | TcpFlags.Ack);
        Recv(OurNext, c + 101);
        Assert.Equal(TcpState.CloseWait, Ep.State);
        Assert.False(Ep.ReceiveFinished);
        Assert.Equal(100, ReadAll().Length);
        Assert.True(Ep.ReceiveFinished);
    }

    [Fact]
    public void In_close_wait_the_backend_can_still_send_and_its_close_sends_fin_then_last_ack_closes()
    {
        InCloseWait();
        Assert.Equal(50, Ep.Send(new byte[50]));
        Recv(OurNext, ClientNext, TcpFlags.Ack | TcpFlags.Psh, length: 50);
        Ep.CloseSend();
        Assert.Equal(TcpState.LastAck, Ep.State);
        Recv(OurNext + 50, ClientNext, TcpFlags.Fin | TcpFlags.Ack, length: 0);
        Send(ClientNext, ack: OurNext + 51);
        Assert.True(Ep.IsClosed);
        Assert.Equal(TcpCloseReason.Graceful, Ep.CloseReason);
        RecvNothing();
    }

    [Fact]
    public void In_last_ack_the_fin_is_retransmitted_on_rto()
    {
        InLastAck();
        Advance(1000);
        Recv(OurNext, ClientNext, TcpFlags.Fin | TcpFlags.Ack, length: 0);
    }

    [Fact]
    public void In_established_backend_close_sends_the_queued_data_with_fin()
    {
        InEstablished();
        Ep.Send(new byte[100]);
        Ep.CloseSend();
        Assert.Equal(TcpState.FinWait1, Ep.State);
        Assert.Equal(0, Ep.Send(new byte[1]));
        Recv(OurNext, ClientNext, TcpFlags.Ack | TcpFlags.Psh | TcpFlags.Fin, length: 100);
    }

    [Fact]
    public void In_fin_wait_1_the_fin_is_retransmitted_on_rto()
    {
        InFinWait1();
        Advance(1000);
        Recv(OurNext, ClientNext, TcpFlags.Fin | TcpFlags.Ack, length: 0);
    }

    [Fact]
    public void In_fin_wait_1_an_ack_of_the_fin_moves_to_fin_wait_2()
    {
        InFinWait2();
        Assert.Equal([(TcpState.Established, TcpState.FinWait1), (TcpState.FinWait1, TcpState.FinWait2)], Transitions);
    }

    [Fact]
    public void In_fin_wait_2_client_data_is_still_received()
    {
        InFinWait2();
        SendData(100);
        SendData(100);
        Recv(OurNext, ClientNext);
        Assert.Equal(200, Ep.ReceiveAvailable);
    }

    [Fact]
    public void In_fin_wait_2_the_client_fin_enters_time_wait_which_expires_into_closed()
    {
        InTimeWait();
        Assert.Equal(Now + 2000, Ep.NextDeadlineMs);
        Advance(1999);
        RecvNothing();
        Assert.False(Ep.IsClosed);
        Advance(1);
        RecvNothing();
        Assert.True(Ep.IsClosed);
        Assert.Equal(TcpCloseReason.Graceful, Ep.CloseReason);
        Assert.Equal((TcpState.TimeWait, TcpState.Closed), Transitions[^1]);
    }

    [Fact]
    public void In_time_wait_a_retransmitted_fin_is_acked_again_and_restarts_the_timer()
    {
        InTimeWait();
        Advance(1500);
        Send(ClientNext - 1, flags: TcpFlags.Fin | TcpFlags.Ack);
        Recv(OurNext, ClientNext);
        Assert.Equal(Now + 2000, Ep.NextDeadlineMs);
    }

    [Fact]
    public void In_fin_wait_1_a_fin_without_the_ack_of_ours_is_a_simultaneous_close_through_closing()
    {
        InFinWait1();
        Send(ClientNext, ack: OurNext, flags: TcpFlags.Fin | TcpFlags.Ack);
        ClientNext += 1;
        Recv(OurNext + 1, ClientNext);
        Assert.Equal(TcpState.Closing, Ep.State);
        Send(ClientNext, ack: OurNext + 1);
        Assert.Equal(TcpState.TimeWait, Ep.State);
    }

    [Fact]
    public void In_fin_wait_1_a_fin_that_also_acks_ours_goes_straight_to_time_wait()
    {
        InFinWait1();
        Send(ClientNext, ack: OurNext + 1, flags: TcpFlags.Fin | TcpFlags.Ack);
        ClientNext += 1;
        Recv(OurNext + 1, ClientNext);
        Assert.Equal(TcpState.TimeWait, Ep.State);
    }

    [Fact]
    public void An_out_of_order_fin_is_applied_when_the_hole_before_it_fills()
    {
        InEstablished();
        SeqNumber c = ClientNext;
        Send(c + 100, payload: Pattern(c + 100, 100), flags: TcpFlags.Fin | TcpFlags.Ack);
        Recv(OurNext, c);
        Assert.Equal(TcpState.Established, Ep.State);
        Send(c, payload: Pattern(c, 100));
        Recv(OurNext, c + 201);
        Assert.Equal(TcpState.CloseWait, Ep.State);
        Assert.Equal(Pattern(c, 200), ReadAll());
        Assert.True(Ep.ReceiveFinished);
    }

    [Fact]
    public void The_passive_close_path_is_traced_through_close_wait_and_last_ack()
    {
        InLastAck();
        Send(ClientNext, ack: OurNext + 1);
        Assert.Equal(
            [(TcpState.Established, TcpState.CloseWait), (TcpState.CloseWait, TcpState.LastAck), (TcpState.LastAck, TcpState.Closed)],
            Transitions);
    }

    [Fact]
    public void In_close_wait_data_beyond_the_fin_is_ignored()
    {
        InCloseWait();
        Send(ClientNext, payload: new byte[10]);
        Assert.Equal(0, Ep.ReceiveAvailable);
    }
}
