using CookieProxy.Tcp;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Tcp;

/// <summary>ESTABLISHED with data outstanding: RFC 6298 RTO, Karn, RFC 5681 loss window, give-up.</summary>
public class RetransmissionTests : TcpTestBase
{
    [Fact]
    public void The_rto_retransmits_the_first_unacked_segment_and_doubles_the_timeout()
    {
        InEstablished();
        Ep.Send(new byte[100]);
        Recv(OurNext, ClientNext, TcpFlags.Ack | TcpFlags.Psh, length: 100);
        Advance(999);
        RecvNothing();
        Advance(1);
        Recv(OurNext, ClientNext, TcpFlags.Ack | TcpFlags.Psh, length: 100);
        Assert.Equal(Now + 2000, Ep.NextDeadlineMs);
        Advance(2000);
        Recv(OurNext, ClientNext, TcpFlags.Ack | TcpFlags.Psh, length: 100);
        Assert.Equal(Now + 4000, Ep.NextDeadlineMs);
        Assert.Equal(2, Ep.RetransmitTimeouts);
    }

    [Fact]
    public void The_rto_collapses_cwnd_to_one_segment_and_goes_back_n_from_snd_una()
    {
        InEstablished(NewRenoConfig);
        Ep.Send(new byte[5 * Mss]);
        Assert.Equal(5, DispatchAll().Count);
        Advance(1000);
        Recv(OurNext, ClientNext, TcpFlags.Ack, length: Mss);
        Assert.Equal(Mss, Ep.CongestionWindow);
        Assert.Equal(5 * Mss / 2, Ep.SlowStartThreshold); // max(FlightSize / 2, 2 * SMSS)
        Send(ClientNext, ack: OurNext + Mss);
        List<SentSegment> segs = DispatchAll();
        Assert.Equal(2, segs.Count);
        Assert.Equal(OurNext + Mss, segs[0].Seq);
        Assert.Equal(OurNext + (2 * Mss), segs[1].Seq);
    }

    [Fact]
    public void Karns_rule_takes_no_rtt_sample_from_a_retransmitted_segment()
    {
        InEstablished();
        Ep.Send(new byte[100]);
        Recv();
        Advance(1000);
        Recv();
        Advance(10);
        Send(ClientNext, ack: OurNext + 100);
        Assert.Equal(0, Ep.SmoothedRttMs);
        Assert.Equal(2000, Ep.RtoMs); // the backed-off RTO stays until a valid sample
    }

    [Fact]
    public void Timestamps_give_an_rtt_sample_even_for_a_retransmission()
    {
        InEstablished(handshake: Handshake(ts: true));
        Ep.Send(new byte[100]);
        Recv();
        Advance(1000);
        SentSegment rtx = Recv();
        Advance(30);
        Send(ClientNext, ack: OurNext + 100, tsVal: 6000, tsEcr: rtx.Repr.Options.TsVal);
        Assert.Equal(30, Ep.SmoothedRttMs);
    }

    [Fact]
    public void A_new_ack_restarts_the_retransmission_timer_and_the_last_ack_stops_it()
    {
        InEstablished(new TcpConfig { IdleTimeoutMs = 0 });
        Ep.Send(new byte[2 * Mss]);
        Assert.Equal(2, DispatchAll().Count);
        Advance(500);
        Send(ClientNext, ack: OurNext + Mss);
        Assert.Equal(Now + Ep.RtoMs, Ep.NextDeadlineMs);
        Send(ClientNext, ack: OurNext + (2 * Mss));
        Assert.Equal(long.MaxValue, Ep.NextDeadlineMs);
    }

    [Fact]
    public void After_max_retransmits_the_connection_is_reset()
    {
        InEstablished(new TcpConfig { MaxRetransmits = 2 });
        Ep.Send(new byte[100]);
        Recv();
        Advance(1000);
        Recv();
        Advance(2000);
        Recv();
        Advance(4000);
        Recv(OurNext + 100, ClientNext, TcpFlags.Rst | TcpFlags.Ack);
        Assert.True(Ep.IsClosed);
        Assert.Equal(TcpCloseReason.RetransmitLimit, Ep.CloseReason);
        RecvNothing();
    }

    [Fact]
    public void Three_duplicate_acks_trigger_a_fast_retransmit_and_newreno_partial_acks_retransmit_the_next_hole()
    {
        InEstablished(NewRenoConfig);
        Ep.Send(new byte[10 * Mss]);
        Assert.Equal(10, DispatchAll().Count);
        SeqNumber s1 = OurNext + Mss;
        Send(ClientNext, ack: s1);
        RecvNothing();
        Send(ClientNext, ack: s1);
        Send(ClientNext, ack: s1);
        RecvNothing();
        Send(ClientNext, ack: s1);
        Recv(s1, ClientNext, TcpFlags.Ack, length: Mss);
        Assert.True(Ep.InRecovery);
        Assert.Equal(9 * Mss / 2, Ep.SlowStartThreshold);
        // RFC 6937 (PRR), not RFC 6582's inflation: cwnd = pipe (9 out - 3 duplicate-ACKed - 1 lost) + one segment.
        Assert.Equal(6 * Mss, Ep.CongestionWindow);

        // Partial ACK (RFC 6582 3.2 (5)): retransmit the next unacknowledged segment at once.
        SeqNumber s3 = OurNext + (3 * Mss);
        Send(ClientNext, ack: s3);
        Recv(s3, ClientNext, TcpFlags.Ack, length: Mss);
        Assert.True(Ep.InRecovery);

        // Full ACK: recovery ends with cwnd = ssthresh (RFC 6937 3, RFC 6582 3.2 (3) option 2).
        Send(ClientNext, ack: OurNext + (10 * Mss));
        Assert.False(Ep.InRecovery);
        Assert.Equal(9 * Mss / 2, Ep.CongestionWindow);
        Assert.Equal(1, Ep.FastRecoveries);
    }

    [Fact]
    public void Acks_carrying_data_are_not_duplicate_acks_without_sack()
    {
        InEstablished();
        Ep.Send(new byte[10 * Mss]);
        DispatchAll();
        for (int i = 0; i < 4; i++)
        {
            SendData(10);
        }

        Assert.False(Ep.InRecovery);
        Assert.DoesNotContain(DispatchAll(), s => s.Payload.Length > 0);
    }

    [Fact]
    public void Sack_recovery_retransmits_only_the_holes_judged_lost()
    {
        InEstablished(NewRenoConfig, Handshake(sack: true));
        Ep.Send(new byte[10 * Mss]);
        Assert.Equal(10, DispatchAll().Count);
        SeqNumber S(int i) => OurNext + (i * Mss);

        // S0 and S2 are lost; each ACK brings new SACK information (RFC 6675 duplicate ACKs).
        Send(ClientNext, ack: S(0), sack: [new SackBlock(S(1), S(2))]);
        Send(ClientNext, ack: S(0), sack: [new SackBlock(S(3), S(4)), new SackBlock(S(1), S(2))]);
        RecvNothing();
        Send(ClientNext, ack: S(0), sack: [new SackBlock(S(3), S(5)), new SackBlock(S(1), S(2))]);
        Recv(S(0), ClientNext, TcpFlags.Ack, length: Mss);
        Assert.True(Ep.InRecovery);
        Assert.Equal(5 * Mss, Ep.SlowStartThreshold); // RFC 5681 (4): FlightSize / 2

        // Three segments SACKed and no reordering seen: RACK's window is zero (RFC 8985 6.2 step 4), so S2 is
        // lost too; PRR (RFC 6937) sends it once the deliveries make room in the pipe.
        Send(ClientNext, ack: S(0), sack: [new SackBlock(S(3), S(6)), new SackBlock(S(1), S(2))]);
        RecvNothing();
        Send(ClientNext, ack: S(0), sack: [new SackBlock(S(3), S(7)), new SackBlock(S(1), S(2))]);
        Recv(S(2), ClientNext, TcpFlags.Ack, length: Mss);

        // S7..S9 arrive, then the retransmitted S0 (sent after them): a partial ACK; nothing else is missing
        // below the SACKed data and nothing new is queued.
        Send(ClientNext, ack: S(0), sack: [new SackBlock(S(3), S(10)), new SackBlock(S(1), S(2))]);
        RecvNothing();
        Send(ClientNext, ack: S(2), sack: [new SackBlock(S(3), S(10))]);
        RecvNothing();
        Send(ClientNext, ack: S(10));
        Assert.False(Ep.InRecovery);
        Assert.Equal(2, Ep.Retransmissions);
    }
}

/// <summary>More ESTABLISHED send-side behaviour under loss with SACK.</summary>
public class SackGoBackNTests : TcpTestBase
{
    [Fact]
    public void After_an_rto_the_retransmissions_skip_the_ranges_the_client_sacked()
    {
        InEstablished(NewRenoConfig, Handshake(sack: true));
        Ep.Send(new byte[5 * Mss]);
        Assert.Equal(5, DispatchAll().Count);
        long rtoAt = Now + 1000;
        SeqNumber S(int i) => OurNext + (i * Mss);

        // S2 and S3 arrive: RACK's reordering timer finds S0 (and S1) lost, the retransmission of S0 is lost too.
        Send(ClientNext, ack: S(0), sack: [new SackBlock(S(2), S(4))]);
        Advance(Ep.NextDeadlineMs - Now);
        Assert.Equal([S(0)], DispatchAll().Select(s => s.Seq));
        Assert.True(Ep.InRecovery);

        // Nothing more comes back: the RTO (RFC 6298 5.5) marks all but the SACKed ranges lost and starts over.
        Now = rtoAt;
        Recv(S(0), ClientNext, TcpFlags.Ack, length: Mss);
        Assert.Equal(1, Ep.RetransmitTimeouts);
        Assert.True(Ep.InLossRecovery);
        Send(ClientNext, ack: S(1), sack: [new SackBlock(S(2), S(4))]);
        List<SentSegment> segs = DispatchAll();
        Assert.Equal([S(1), S(4)], segs.Select(s => s.Seq));
        Assert.Equal(TcpFlags.Ack | TcpFlags.Psh, segs[1].Flags);
    }
}
