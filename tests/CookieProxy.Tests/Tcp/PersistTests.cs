using CookieProxy.Tcp;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Tcp;

/// <summary>ESTABLISHED with the client's window closed: RFC 9293 3.8.6.1 persist timer.</summary>
public class PersistTests : TcpTestBase
{
    private void AckEverythingWithZeroWindow(int sent)
    {
        Advance(10);
        OurNext += sent;
        Send(ClientNext, ack: OurNext, window: 0);
    }

    [Fact]
    public void A_zero_window_stops_sending_and_probes_back_off_until_the_window_opens()
    {
        InEstablished();
        Ep.Send(new byte[100]);
        Recv();
        AckEverythingWithZeroWindow(100);
        Ep.Send(new byte[1000]);
        RecvNothing();
        Assert.Equal(Now + 200, Ep.NextDeadlineMs); // first probe after one RTO
        Advance(200);
        Recv(OurNext - 1, ClientNext, TcpFlags.Ack, length: 0);
        Assert.Equal(Now + 400, Ep.NextDeadlineMs);
        Send(ClientNext, ack: OurNext, window: 0);
        RecvNothing();
        Advance(400);
        Recv(OurNext - 1, ClientNext, TcpFlags.Ack, length: 0);

        Send(ClientNext, ack: OurNext, window: 4000);
        Recv(OurNext, ClientNext, TcpFlags.Ack | TcpFlags.Psh, length: 1000);
        Assert.Equal(2, Ep.WindowProbes);
    }

    [Fact]
    public void Persist_probing_never_gives_up_while_the_client_answers()
    {
        InEstablished(new TcpConfig { MaxRetransmits = 2 });
        Ep.Send(new byte[100]);
        Recv();
        AckEverythingWithZeroWindow(100);
        Ep.Send(new byte[1000]);
        Assert.Equal(0, Ep.NextDeadlineMs); // Send has no clock: the next Dispatch arms the persist timer
        RecvNothing();
        for (int i = 0; i < 30; i++)
        {
            Now = Ep.NextDeadlineMs;
            Recv(OurNext - 1, ClientNext, TcpFlags.Ack, length: 0);
            Send(ClientNext, ack: OurNext, window: 0);
        }

        Assert.Equal(TcpState.Established, Ep.State);
        Assert.Equal(60_000, Ep.NextDeadlineMs - Now); // backoff capped at MaxRto
        Send(ClientNext, ack: OurNext, window: 65535);
        Recv(OurNext, ClientNext, TcpFlags.Ack | TcpFlags.Psh, length: 1000);
    }

    [Fact]
    public void A_window_closed_on_data_in_flight_turns_the_rto_into_probes_that_do_not_count_as_retransmits()
    {
        InEstablished(new TcpConfig { MaxRetransmits = 1 });
        Ep.Send(new byte[3 * Mss]);
        Assert.Equal(3, DispatchAll().Count);
        Send(ClientNext, ack: OurNext + Mss, window: 0);
        for (int i = 0; i < 5; i++)
        {
            Now = Ep.NextDeadlineMs;
            Recv(OurNext + Mss - 1, ClientNext, TcpFlags.Ack, length: 0);
            Send(ClientNext, ack: OurNext + Mss, window: 0);
        }

        Assert.Equal(0, Ep.RetransmitTimeouts);
        Assert.Equal(TcpState.Established, Ep.State);
        Send(ClientNext, ack: OurNext + Mss, window: 65535);
        List<SentSegment> segs = DispatchAll();
        Assert.Equal(OurNext + Mss, segs[0].Seq);
        Assert.Equal(2 * Mss, segs.Sum(s => s.Payload.Length));
    }
}
