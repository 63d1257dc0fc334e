using CookieProxy.Tcp;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Tcp;

/// <summary>Idle, first-data and keep-alive timers.</summary>
public class TimeoutTests : TcpTestBase
{
    [Fact]
    public void In_established_an_idle_client_is_reset_after_the_idle_timeout()
    {
        InEstablished(new TcpConfig { IdleTimeoutMs = 5000 });
        Assert.Equal(Now + 5000, Ep.NextDeadlineMs);
        Advance(4999);
        RecvNothing();
        Advance(1);
        Recv(OurNext, ClientNext, TcpFlags.Rst | TcpFlags.Ack);
        Assert.Equal(TcpCloseReason.IdleTimeout, Ep.CloseReason);
        Assert.True(Ep.IsClosed);
    }

    [Fact]
    public void Client_segments_postpone_the_idle_timeout()
    {
        InEstablished(new TcpConfig { IdleTimeoutMs = 5000 });
        Advance(4000);
        Send(ClientNext);
        Advance(4000);
        RecvNothing();
        Assert.Equal(TcpState.Established, Ep.State);
    }

    [Fact]
    public void A_client_that_sends_no_byte_in_time_is_reset()
    {
        InEstablished(new TcpConfig { FirstDataTimeoutMs = 3000 });
        Send(ClientNext); // a bare ACK is not data
        Assert.Equal(Now + 3000, Ep.NextDeadlineMs);
        Advance(3000);
        Recv(OurNext, ClientNext, TcpFlags.Rst | TcpFlags.Ack);
        Assert.Equal(TcpCloseReason.FirstDataTimeout, Ep.CloseReason);
    }

    [Fact]
    public void The_first_data_timeout_ends_with_the_first_byte()
    {
        InEstablished(new TcpConfig { FirstDataTimeoutMs = 3000, DelayedAckMs = 0 });
        SendData(1);
        Recv();
        Advance(3000);
        RecvNothing();
        Assert.Equal(TcpState.Established, Ep.State);
    }

    [Fact]
    public void Keep_alive_probes_an_idle_connection_with_snd_nxt_minus_one()
    {
        InEstablished(new TcpConfig { KeepAlive = true, KeepAliveIdleMs = 10_000 });
        Assert.Equal(Now + 10_000, Ep.NextDeadlineMs);
        Advance(10_000);
        Recv(OurNext - 1, ClientNext, TcpFlags.Ack, length: 0);
        Send(ClientNext);
        Assert.Equal(Now + 10_000, Ep.NextDeadlineMs);
    }

    [Fact]
    public void Next_deadline_is_the_delayed_ack_when_that_comes_first()
    {
        InEstablished();
        SpendQuickAcks();
        SendData(10);
        Assert.Equal(Now + 40, Ep.NextDeadlineMs);
    }
}
