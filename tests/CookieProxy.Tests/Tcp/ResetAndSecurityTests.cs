using CookieProxy.Tcp;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Tcp;

/// <summary>RST handling and blind-attack defences (RFC 5961), Abort.</summary>
public class ResetAndSecurityTests : TcpTestBase
{
    [Fact]
    public void In_established_a_rst_at_rcv_nxt_resets_the_connection()
    {
        InEstablished();
        Send(ClientNext, flags: TcpFlags.Rst);
        Assert.True(Ep.IsClosed);
        Assert.Equal(TcpCloseReason.ResetByClient, Ep.CloseReason);
        RecvNothing();
    }

    [Fact]
    public void In_established_a_rst_in_window_but_not_exact_gets_a_challenge_ack()
    {
        InEstablished();
        Send(ClientNext + 10, flags: TcpFlags.Rst);
        Recv(OurNext, ClientNext);
        Assert.Equal(TcpState.Established, Ep.State);
        Assert.Equal(1, Ep.ChallengeAcksSent);
    }

    [Fact]
    public void In_established_a_rst_outside_the_window_is_dropped_silently()
    {
        InEstablished();
        Send(ClientNext + 100_000, flags: TcpFlags.Rst);
        RecvNothing();
        Assert.Equal(TcpState.Established, Ep.State);
    }

    [Fact]
    public void In_fin_wait_2_a_rst_at_rcv_nxt_resets_the_connection()
    {
        InFinWait2();
        Send(ClientNext, flags: TcpFlags.Rst | TcpFlags.Ack);
        Assert.Equal(TcpCloseReason.ResetByClient, Ep.CloseReason);
    }

    [Fact]
    public void In_established_a_syn_gets_a_challenge_ack()
    {
        InEstablished();
        Send(ClientNext + 12345, flags: TcpFlags.Syn);
        Recv(OurNext, ClientNext);
        Assert.Equal(TcpState.Established, Ep.State);
    }

    [Fact]
    public void In_established_an_ack_of_unsent_data_gets_a_challenge_ack_and_the_segment_is_dropped()
    {
        InEstablished();
        Send(ClientNext, ack: OurNext + 100, payload: new byte[10]);
        Recv(OurNext, ClientNext);
        Assert.Equal(0, Ep.ReceiveAvailable);
    }

    [Fact]
    public void In_established_an_ack_older_than_the_max_window_gets_a_challenge_ack()
    {
        InEstablished();
        Send(ClientNext, ack: OurNext - 70_000, payload: new byte[10]);
        Recv(OurNext, ClientNext);
        Assert.Equal(0, Ep.ReceiveAvailable);
    }

    [Fact]
    public void A_recent_old_ack_is_accepted_with_its_data()
    {
        InEstablished();
        SendData(10);
        Send(ClientNext, ack: OurNext - 1000, payload: Pattern(ClientNext, 10));
        ClientNext += 10;
        Assert.Equal(20, Ep.ReceiveAvailable);
    }

    [Fact]
    public void A_segment_without_ack_is_dropped()
    {
        InEstablished();
        Send(ClientNext, flags: TcpFlags.Psh, payload: new byte[10]);
        Assert.Equal(0, Ep.ReceiveAvailable);
        RecvNothing();
    }

    [Fact]
    public void Challenge_acks_are_rate_limited_per_second()
    {
        InEstablished();
        int acks = 0;
        for (int i = 0; i < 25; i++)
        {
            Send(ClientNext, flags: TcpFlags.Syn);
            acks += DispatchAll().Count;
        }

        Assert.Equal(TcpEndpoint.ChallengeAckLimitPerSecond, acks);
        Assert.Equal(15, Ep.ChallengeAcksSuppressed);
        Advance(1000);
        Send(ClientNext, flags: TcpFlags.Syn);
        Recv(OurNext, ClientNext);
    }

    [Fact]
    public void Abort_sends_exactly_one_rst_at_snd_nxt()
    {
        InEstablished();
        Ep.Send(new byte[100]);
        Recv();
        Ep.Abort();
        Assert.False(Ep.IsClosed); // the RST has not gone out yet
        Assert.Equal(0L, Ep.NextDeadlineMs);
        Recv(OurNext + 100, ClientNext, TcpFlags.Rst | TcpFlags.Ack, length: 0);
        Assert.True(Ep.IsClosed);
        Assert.Equal(TcpCloseReason.Aborted, Ep.CloseReason);
        RecvNothing();
        Assert.Equal(long.MaxValue, Ep.NextDeadlineMs);
    }

    [Fact]
    public void After_close_segments_are_ignored()
    {
        InEstablished();
        Send(ClientNext, flags: TcpFlags.Rst);
        SendData(10);
        RecvNothing();
        Assert.Equal(0, Ep.ReceiveAvailable);
    }
}
