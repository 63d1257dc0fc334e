using CookieProxy.Tcp;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Tcp;

/// <summary>
/// ESTABLISHED with data outstanding and a reordering network: RFC 2883 D-SACK (both sides), spurious
/// retransmission undo (RFC 3708, RFC 3522 Eifel, RFC 4015), the adaptive DupThresh.
/// </summary>
public class ReorderingTests : TcpTestBase
{
    private const int InitialCwndSegments = 10; // RFC 6928 IW10 at MSS 1460

    private SeqNumber S(int i) => OurNext + (i * Mss);

    /// <summary>Ten segments out with SACK; three ACKs SACKing S1..S3 start recovery and resend S0.</summary>
    private void InSackRecoveryAfterReordering(int sackedAbove)
    {
        InEstablished(NewRenoConfig, Handshake(sack: true));
        Ep.Send(new byte[10 * Mss]);
        Assert.Equal(10, DispatchAll().Count);
        for (int i = 1; i <= 3; i++)
        {
            Send(ClientNext, ack: S(0), sack: [new SackBlock(S(1), S(1 + i))]);
        }

        Recv(S(0), ClientNext, TcpFlags.Ack, length: Mss);
        Assert.True(Ep.InRecovery);
        Assert.Equal(5 * Mss, Ep.SlowStartThreshold);
        for (int i = 4; i <= sackedAbove; i++)
        {
            Send(ClientNext, ack: S(0), sack: [new SackBlock(S(1), S(1 + i))]);
        }

        RecvNothing();
    }

    [Fact]
    public void A_dsack_below_the_cumulative_ack_is_neither_sacked_data_nor_a_duplicate_ack()
    {
        InEstablished(handshake: Handshake(sack: true));
        Ep.Send(new byte[10 * Mss]);
        Assert.Equal(10, DispatchAll().Count);
        Send(ClientNext, ack: S(2));

        // Network duplicates of S0 and S1 arrive: four D-SACKs for data below the ACK (RFC 2883 4.1.1).
        for (int i = 0; i < 4; i++)
        {
            Send(ClientNext, ack: S(2), sack: [new SackBlock(S(i % 2), S((i % 2) + 1))]);
        }

        Assert.Equal(4, Ep.DsacksReceived);
        Assert.False(Ep.InRecovery);
        Assert.Equal(0, Ep.FastRecoveries);
        RecvNothing(); // no retransmission, nothing new to send beyond what cwnd allows
        Assert.Equal(0, Ep.SpuriousRecoveriesUndone); // nothing was retransmitted, so nothing to undo
    }

    [Fact]
    public void A_dsack_inside_the_second_block_reports_a_duplicate_and_adds_nothing_to_the_scoreboard()
    {
        InEstablished(handshake: Handshake(sack: true));
        Ep.Send(new byte[10 * Mss]);
        Assert.Equal(10, DispatchAll().Count);
        Send(ClientNext, ack: S(0), sack: [new SackBlock(S(2), S(4))]);

        // RFC 2883 4.1.2: duplicate of S3, reported inside the block that holds it; not new SACK information.
        Send(ClientNext, ack: S(0), sack: [new SackBlock(S(3), S(4)), new SackBlock(S(2), S(4))]);
        Send(ClientNext, ack: S(0), sack: [new SackBlock(S(2), S(3)), new SackBlock(S(2), S(4))]);
        Send(ClientNext, ack: S(0), sack: [new SackBlock(S(3), S(4)), new SackBlock(S(2), S(4))]);

        Assert.Equal(3, Ep.DsacksReceived);
        Assert.False(Ep.InRecovery); // only the first ACK was a duplicate ACK in RFC 6675's sense
        RecvNothing();
    }

    [Fact]
    public void A_duplicate_of_delivered_data_is_acked_at_once_with_a_dsack_block_reported_once()
    {
        InEstablished(handshake: Handshake(sack: true));
        SeqNumber c = ClientNext;
        Send(c, payload: Pattern(c, 100));
        Send(c + 100, payload: Pattern(c + 100, 100));
        Recv(OurNext, c + 200);

        // The network duplicates the first segment: RFC 2883 4.1.1, D-SACK below the cumulative ACK.
        Send(c, payload: Pattern(c, 100));
        SentSegment dup = Recv(OurNext, c + 200);
        Assert.Equal(1, dup.Repr.Options.SackCount);
        Assert.Equal(new SackBlock(c, c + 100), dup.Repr.Options.Sack[0]);

        // Reported once only.
        Send(c + 300, payload: Pattern(c + 300, 100));
        SentSegment next = Recv(OurNext, c + 200);
        Assert.Equal(1, next.Repr.Options.SackCount);
        Assert.Equal(new SackBlock(c + 300, c + 400), next.Repr.Options.Sack[0]);
    }

    [Fact]
    public void A_duplicate_of_out_of_order_data_is_reported_as_a_dsack_followed_by_the_sack_blocks()
    {
        InEstablished(handshake: Handshake(sack: true));
        SeqNumber c = ClientNext;
        Send(c + 100, payload: Pattern(c + 100, 100));
        Recv(OurNext, c);
        Send(c + 300, payload: Pattern(c + 300, 100));
        Recv(OurNext, c);
        Send(c + 150, payload: Pattern(c + 150, 50));
        SentSegment dup = Recv(OurNext, c);

        // RFC 2883 4.1.2: the duplicate, then the (older) range holding it, then the other ranges.
        Assert.Equal(3, dup.Repr.Options.SackCount);
        Assert.Equal(new SackBlock(c + 150, c + 200), dup.Repr.Options.Sack[0]);
        Assert.Equal(new SackBlock(c + 100, c + 200), dup.Repr.Options.Sack[1]);
        Assert.Equal(new SackBlock(c + 300, c + 400), dup.Repr.Options.Sack[2]);
    }

    [Fact]
    public void A_partly_duplicate_segment_reports_the_duplicate_part_as_a_dsack()
    {
        InEstablished(handshake: Handshake(sack: true));
        SeqNumber c = ClientNext;
        Send(c, payload: Pattern(c, 100));
        Send(c + 50, payload: Pattern(c + 50, 100));
        SentSegment ack = Recv(OurNext, c + 150);
        Assert.Equal(1, ack.Repr.Options.SackCount);
        Assert.Equal(new SackBlock(c + 50, c + 100), ack.Repr.Options.Sack[0]);
        Assert.Equal(Pattern(c, 150), ReadAll());
    }

    [Fact]
    public void Without_sack_a_duplicate_gets_a_plain_ack()
    {
        InEstablished();
        SeqNumber c = ClientNext;
        Send(c, payload: Pattern(c, 100));
        Send(c, payload: Pattern(c, 100));
        SentSegment ack = Recv(OurNext, c + 100);
        Assert.Equal(0, ack.Repr.Options.SackCount);
    }

    [Fact]
    public void A_dsack_for_the_only_retransmission_undoes_the_recovery_and_raises_dupthresh()
    {
        InSackRecoveryAfterReordering(sackedAbove: 6);
        Assert.Equal(5 * Mss, Ep.CongestionWindow);

        // The original S0 arrives after S1..S6: cumulative ACK to S7; then the retransmission, reported as a
        // D-SACK (RFC 3708 2): the fast retransmit was spurious.
        Send(ClientNext, ack: S(7));
        Assert.True(Ep.InRecovery);
        Send(ClientNext, ack: S(7), sack: [new SackBlock(S(0), S(1))]);

        Assert.Equal(1, Ep.SpuriousRecoveriesUndone);
        Assert.False(Ep.InRecovery);
        Assert.Equal(InitialCwndSegments * Mss, Ep.CongestionWindow); // Linux tcp_undo_cwnd_reduction
        Assert.Equal(1 << 30, Ep.SlowStartThreshold);                   // back to "arbitrarily high"
        Assert.Equal(7, Ep.ReorderingThreshold);                       // S0 was overtaken by S1..S6
    }

    [Fact]
    public void A_dsack_for_one_of_two_retransmissions_does_not_undo()
    {
        InSackRecoveryAfterReordering(sackedAbove: 3);
        // S4 is lost too: SACKs above it make it IsLost, and it is retransmitted.
        Send(ClientNext, ack: S(0), sack: [new SackBlock(S(5), S(10)), new SackBlock(S(1), S(4))]);
        List<SentSegment> sent = DispatchAll();
        Assert.Contains(sent, s => s.Seq == S(4));

        Send(ClientNext, ack: S(4), sack: [new SackBlock(S(0), S(1)), new SackBlock(S(5), S(10))]);
        Assert.Equal(1, Ep.DsacksReceived);
        Assert.Equal(0, Ep.SpuriousRecoveriesUndone);
        Assert.True(Ep.InRecovery);
        Assert.Equal(5 * Mss, Ep.SlowStartThreshold);
    }

    [Fact]
    public void After_proven_reordering_the_same_degree_no_longer_triggers_a_fast_retransmit()
    {
        InSackRecoveryAfterReordering(sackedAbove: 6);
        Send(ClientNext, ack: S(7));
        Send(ClientNext, ack: S(7), sack: [new SackBlock(S(0), S(1))]);
        Assert.Equal(7, Ep.ReorderingThreshold);
        Send(ClientNext, ack: S(10));
        Ep.Send(new byte[10 * Mss]);
        Assert.Equal(10, DispatchAll().Count(s => s.Payload.Length > 0));

        // T0 is overtaken by T1..T6: six duplicate ACKs and 6 SMSS SACKed are not enough any more.
        SeqNumber t = S(10);
        for (int i = 1; i <= 6; i++)
        {
            Send(ClientNext, ack: t, sack: [new SackBlock(t + Mss, t + ((1 + i) * Mss))]);
        }

        Assert.False(Ep.InRecovery);
        Assert.DoesNotContain(DispatchAll(), s => s.Seq == t);

        // A seventh: now T0 is deemed lost (RFC 6675 IsLost with (DupThresh - 1) * SMSS).
        Send(ClientNext, ack: t, sack: [new SackBlock(t + Mss, t + (8 * Mss))]);
        Assert.True(Ep.InRecovery);
        Assert.Contains(DispatchAll(), s => s.Seq == t);
    }

    [Fact]
    public void An_ack_echoing_the_original_timestamp_undoes_a_spurious_fast_retransmit()
    {
        // RFC 3522 Eifel: NewReno with timestamps; the original went out with TSval 70000.
        InEstablished(handshake: Handshake(ts: true));
        int mss = Ep.EffectiveSendMss;
        Ep.Send(new byte[10 * mss]);
        Assert.Equal(10, DispatchAll().Count);
        int cwnd = Ep.CongestionWindow;
        Advance(20);
        for (int i = 0; i < 3; i++)
        {
            Send(ClientNext, ack: OurNext, tsVal: 5001, tsEcr: 70_000);
        }

        SentSegment rtx = Recv(OurNext, ClientNext, TcpFlags.Ack, length: mss);
        Assert.Equal(70_020u, rtx.Repr.Options.TsVal);
        Assert.True(Ep.InRecovery);

        // The ACK covering S0 echoes 70000: the original arrived, not the retransmission.
        Send(ClientNext, ack: OurNext + (10 * mss), tsVal: 5002, tsEcr: 70_000);
        Assert.Equal(1, Ep.SpuriousRecoveriesUndone);
        Assert.False(Ep.InRecovery);
        Assert.Equal(1 << 30, Ep.SlowStartThreshold);
        Assert.True(Ep.CongestionWindow >= cwnd);
    }

    [Fact]
    public void An_ack_echoing_the_retransmission_timestamp_keeps_the_reduction()
    {
        InEstablished(handshake: Handshake(ts: true));
        int mss = Ep.EffectiveSendMss;
        Ep.Send(new byte[10 * mss]);
        Assert.Equal(10, DispatchAll().Count);
        Advance(20);
        for (int i = 0; i < 3; i++)
        {
            Send(ClientNext, ack: OurNext, tsVal: 5001, tsEcr: 70_000);
        }

        Recv(OurNext, ClientNext, TcpFlags.Ack, length: mss);
        int ssthresh = Ep.SlowStartThreshold;
        Send(ClientNext, ack: OurNext + (10 * mss), tsVal: 5002, tsEcr: 70_020);
        Assert.Equal(0, Ep.SpuriousRecoveriesUndone);
        Assert.Equal(ssthresh, Ep.SlowStartThreshold);
        Assert.Equal(ssthresh, Ep.CongestionWindow); // RFC 6937 3: recovery ends with cwnd = ssthresh
    }

    [Fact]
    public void A_spurious_rto_detected_by_eifel_restores_cwnd_and_resumes_after_snd_max()
    {
        // RFC 4015 3.2: after the undo, sending continues with new data instead of go-back-N.
        InEstablished(handshake: Handshake(ts: true));
        int mss = Ep.EffectiveSendMss;
        Ep.Send(new byte[12 * mss]);
        Assert.Equal(10, DispatchAll().Count);
        int cwnd = Ep.CongestionWindow;
        Advance(1000);
        SentSegment rtx = Recv(OurNext, ClientNext, TcpFlags.Ack, length: mss);
        Assert.Equal(mss, Ep.CongestionWindow);
        Assert.Equal(71_000u, rtx.Repr.Options.TsVal);

        Send(ClientNext, ack: OurNext + (2 * mss), tsVal: 5001, tsEcr: 70_000);
        Assert.Equal(1, Ep.SpuriousRecoveriesUndone);
        Assert.True(Ep.CongestionWindow >= cwnd);
        List<SentSegment> sent = DispatchAll();
        Assert.Equal([OurNext + (10 * mss), OurNext + (11 * mss)], sent.Select(s => s.Seq));
    }

    [Fact]
    public void A_hole_below_a_raised_dupthresh_is_found_by_the_reordering_timer_not_the_rto()
    {
        InSackRecoveryAfterReordering(sackedAbove: 6);
        Send(ClientNext, ack: S(7));
        Send(ClientNext, ack: S(7), sack: [new SackBlock(S(0), S(1))]);
        Send(ClientNext, ack: S(10));
        Assert.Equal(7, Ep.ReorderingThreshold);
        Ep.Send(new byte[10 * Mss]);
        Assert.Equal(10, DispatchAll().Count(s => s.Payload.Length > 0));

        // T0 is really lost, but only 4 SACKs come back: below DupThresh 7, so no count says it is lost...
        SeqNumber t = S(10);
        for (int i = 1; i <= 4; i++)
        {
            Send(ClientNext, ack: t, sack: [new SackBlock(t + Mss, t + ((1 + i) * Mss))]);
        }

        Assert.False(Ep.InRecovery);
        Assert.DoesNotContain(DispatchAll(), s => s.Seq == t);

        // ... and RACK's reordering window (RFC 8985 6.3) does, long before the RTO.
        Assert.True(Ep.NextDeadlineMs - Now <= Ep.ReorderingWindowMs, $"next deadline in {Ep.NextDeadlineMs - Now} ms");
        Now = Ep.NextDeadlineMs;
        Assert.Contains(DispatchAll(), s => s.Seq == t);
        Assert.True(Ep.InRecovery);
        Assert.Equal(0, Ep.RetransmitTimeouts);
    }
}
