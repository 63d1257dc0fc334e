using CookieProxy.Tcp;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Tcp;

/// <summary>RFC 7323: TSval clock, TSecr echo, TS.Recent update, PAWS.</summary>
public class TimestampTests : TcpTestBase
{
    [Fact]
    public void Segments_carry_our_millisecond_clock_and_echo_ts_recent()
    {
        InEstablished(handshake: Handshake(ts: true));
        Ep.Send(new byte[10]);
        SentSegment first = Recv();
        Assert.True(first.Repr.Options.HasTimestamp);
        Assert.Equal(70_000u, first.Repr.Options.TsVal); // continues from the SYN+ACK's TSval
        Assert.Equal(5_000u, first.Repr.Options.TsEcr);

        Advance(25);
        Send(ClientNext, ack: OurNext + 10, payload: Pattern(ClientNext, 10), tsVal: 5_100, tsEcr: 70_000);
        ClientNext += 10;
        Assert.Equal(25, Ep.SmoothedRttMs); // RFC 7323 4.1
        Advance(40);
        SentSegment ack = Recv(OurNext + 10, ClientNext);
        Assert.Equal(70_065u, ack.Repr.Options.TsVal);
        Assert.Equal(5_100u, ack.Repr.Options.TsEcr);
    }

    [Fact]
    public void Ts_recent_is_not_taken_from_a_segment_beyond_the_last_ack_sent()
    {
        InEstablished(handshake: Handshake(ts: true));
        SeqNumber c = ClientNext;
        Send(c + 100, payload: Pattern(c + 100, 10), tsVal: 9_000);
        SentSegment ack = Recv(OurNext, c);
        Assert.Equal(5_000u, ack.Repr.Options.TsEcr);
    }

    [Fact]
    public void Paws_drops_a_segment_with_an_older_tsval_and_acks_it()
    {
        InEstablished(handshake: Handshake(ts: true));
        Send(ClientNext, payload: new byte[10], tsVal: 4_000);
        Recv(OurNext, ClientNext);
        Assert.Equal(0, Ep.ReceiveAvailable);
        Assert.Equal(1, Ep.PawsRejected);
    }

    [Fact]
    public void Paws_does_not_apply_to_rst()
    {
        InEstablished(handshake: Handshake(ts: true));
        Send(ClientNext, flags: TcpFlags.Rst, tsVal: 1);
        Assert.Equal(TcpCloseReason.ResetByClient, Ep.CloseReason);
    }

    [Fact]
    public void Sack_blocks_fit_next_to_timestamps_and_shrink_data_segments()
    {
        InEstablished(handshake: Handshake(ts: true, sack: true));
        SeqNumber c = ClientNext;
        for (int i = 0; i < 4; i++)
        {
            Send(c + (200 * (i + 1)), payload: new byte[100], tsVal: 5_000);
            Recv();
        }

        Ep.Send(new byte[3000]);
        List<SentSegment> segs = DispatchAll();
        Assert.Equal(3, segs[0].Repr.Options.SackCount); // RFC 2018 3: 3 blocks with timestamps
        Assert.Equal(1448 - 28, segs[0].Payload.Length);
    }
    [Fact]
    public void A_segment_without_timestamps_on_a_timestamp_connection_is_accepted_as_linux_does()
    {
        // RFC 7323 3.2 says a TCP SHOULD drop it; Linux accepts it (tcp_validate_incoming checks PAWS only when
        // the segment carries the option) and so do we, leaving TS.Recent alone.
        InEstablished(handshake: Handshake(ts: true));
        byte[] data = Pattern(ClientNext, 10);
        Send(ClientNext, payload: data);
        ClientNext += 10;
        Assert.Equal(data, ReadAll());
        Assert.Equal(0, Ep.PawsRejected);
        Ep.Send(new byte[10]);
        Assert.Equal(5_000u, Recv().Repr.Options.TsEcr);
        Assert.Equal(TcpState.Established, Ep.State);
    }

    [Fact]
    public void A_tsval_one_tick_older_than_ts_recent_still_passes_paws()
    {
        InEstablished(handshake: Handshake(ts: true));
        Send(ClientNext, payload: new byte[10], tsVal: 4_999); // Linux TCP_PAWS_WINDOW = 1
        Assert.Equal(10, Ep.ReceiveAvailable);
        Assert.Equal(0, Ep.PawsRejected);
    }

    [Fact]
    public void An_old_pure_ack_failing_paws_is_dropped_without_an_answer()
    {
        InEstablished(handshake: Handshake(ts: true));
        Send(ClientNext, payload: new byte[10], tsVal: 6_000);
        ClientNext += 10;
        DispatchAll();
        Send(ClientNext - 10, tsVal: 5_500); // an ACK overtaken on the way: below RCV.NXT, older TSval
        Assert.Equal(1, Ep.PawsRejected);
        RecvNothing(); // Linux TCP_RFC7323_PAWS_ACK: no duplicate ACK for it
    }

    [Fact]
    public void A_reordered_duplicate_ack_with_an_older_tsval_passes_paws_and_its_sack_starts_recovery()
    {
        // Linux tcp_disordered_ack_check: a pure duplicate ACK that changes nothing may come out of order;
        // dropping it would lose the SACK information recovery needs. Here only the overtaken ACK reports the
        // third SACKed segment above the hole, so only it makes the hole lost at once (RFC 6675 4 IsLost:
        // DupThresh segments SACKed above; RFC 8985 6.2 step 4: reo_wnd = 0 once DupThresh segments are SACKed
        // and no reordering was seen). The first ACK alone (one segment SACKed) leaves the hole to RACK's timer.
        InEstablished(handshake: Handshake(ts: true, sack: true));
        Ep.Send(new byte[4 * 1448]);
        Assert.Equal(4, DispatchAll().Count);
        Send(ClientNext, tsVal: 6_000, tsEcr: 70_000, sack: [new SackBlock(OurNext + 1448, OurNext + 2896)]);
        RecvNothing();
        Assert.False(Ep.InRecovery);

        Send(ClientNext, tsVal: 5_990, tsEcr: 70_000, sack: [new SackBlock(OurNext + 1448, OurNext + 5792)]);
        Assert.Equal(0, Ep.PawsRejected);
        Assert.Equal(0, Ep.SegmentsDropped);
        Assert.True(Ep.InRecovery);
        Assert.Equal(1, Ep.FastRecoveries);
        SentSegment fastRetransmit = Recv(); // the same instant: no timer needed
        Assert.Equal(OurNext, fastRetransmit.Seq);
        Assert.Equal(1448, fastRetransmit.Payload.Length);
        Assert.Equal(1, Ep.Retransmissions);

        Send(ClientNext, payload: new byte[10], tsVal: 5_990); // data with that TSval fails PAWS: only pure duplicate ACKs pass
        Assert.Equal(1, Ep.PawsRejected);
    }
}
