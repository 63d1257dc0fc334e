using CookieProxy.Tcp;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Tcp;

/// <summary>
/// ESTABLISHED, receive direction: Linux's quick ACK mode (tcp_in_quickack_mode) and interactive (pingpong)
/// mode on top of RFC 9293 3.8.6.3 delayed ACKs; a response never waits for a timer.
/// </summary>
public class QuickAckTests : TcpTestBase
{
    [Fact]
    public void The_first_data_segments_are_each_acknowledged_at_once()
    {
        InEstablished();
        for (int i = 0; i < 16; i++)
        {
            SendData(100);
            Recv(OurNext, ClientNext); // Linux TCP_MAX_QUICKACKS = 16
        }

        SendData(100);
        RecvNothing(); // then delayed ACKs: every second segment or 40 ms
        SendData(100);
        Recv(OurNext, ClientNext);
    }

    [Fact]
    public void An_idle_gap_longer_than_the_rto_restarts_quick_acks()
    {
        InEstablished();
        SpendQuickAcks();
        Advance(Ep.RtoMs + 1);
        SendData(100);
        Recv(OurNext, ClientNext);
    }

    [Fact]
    public void Out_of_order_data_turns_quick_acks_back_on()
    {
        InEstablished();
        SpendQuickAcks();
        Send(ClientNext + 100, payload: Pattern(ClientNext + 100, 100));
        Recv(OurNext, ClientNext);      // the duplicate ACK (RFC 5681 4.2)
        SendData(100);                  // fills the hole
        Recv(OurNext, ClientNext + 100);
        SendData(100);
        Recv(OurNext, ClientNext);      // quick ACK mode again (Linux tcp_enter_quickack_mode)
    }

    [Fact]
    public void Once_our_answer_follows_the_request_the_next_request_waits_for_the_answer_to_carry_the_ack()
    {
        InEstablished();
        SendData(80);                   // GET: quick ACK
        Recv(OurNext, ClientNext);
        Advance(2);
        Ep.Send(new byte[300]);         // the response within the delayed-ACK time: interactive
        Recv(OurNext, ClientNext, TcpFlags.Ack | TcpFlags.Psh, length: 300);
        OurNext += 300;
        Advance(5);
        Send(ClientNext, ack: OurNext);
        SendData(80);                   // the next request on the connection
        RecvNothing();                  // no pure ACK: it waits to ride on the answer
        Advance(3);
        Ep.Send(new byte[300]);
        SentSegment answer = Recv(OurNext, ClientNext, TcpFlags.Ack | TcpFlags.Psh, length: 300);
        Assert.Equal(ClientNext, answer.Ack);
    }

    [Fact]
    public void An_answer_that_comes_too_late_for_the_delayed_ack_leaves_interactive_mode()
    {
        InEstablished();
        SendData(80);
        Recv();
        Ep.Send(new byte[300]);
        Recv();
        OurNext += 300;
        Send(ClientNext, ack: OurNext);
        SendData(80);
        RecvNothing();
        Advance(40);
        Recv(OurNext, ClientNext);      // the delayed ACK fired: the backend was slow
        SendData(80);
        Recv(OurNext, ClientNext);      // quick ACKs again (Linux tcp_delack_timer_handler leaves pingpong)
    }

    [Fact]
    public void A_response_queued_by_the_backend_goes_out_on_the_next_dispatch_without_a_timer()
    {
        InEstablished();
        SpendQuickAcks();
        SendData(80);
        long deadline = Ep.NextDeadlineMs;
        Assert.True(deadline > Now);    // a delayed ACK is pending
        Advance(1);
        Ep.Send(new byte[14_000]);      // several segments, within IW10 (14600 bytes)
        Assert.Equal(0, Ep.NextDeadlineMs);
        List<SentSegment> segs = DispatchAll();
        Assert.Equal(14_000, segs.Sum(s => s.Payload.Length)); // all of it at once, the runt tail too: no Nagle wait
        Assert.All(segs, s => Assert.Equal(ClientNext, s.Ack));
        Assert.Equal(TcpFlags.Ack | TcpFlags.Psh, segs[^1].Flags);
    }
}
