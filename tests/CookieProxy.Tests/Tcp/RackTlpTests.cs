using CookieProxy.Tcp;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Tcp;

/// <summary>
/// ESTABLISHED with data outstanding and SACK: RACK's time- and count-based loss detection (RFC 8985 6), the
/// tail loss probe (RFC 8985 7), PRR (RFC 6937).
/// </summary>
public class RackTlpTests : TcpTestBase
{
    private SeqNumber S(int i) => OurNext + (i * Mss);

    /// <summary>One segment out and its ACK after <paramref name="rttMs"/>: SRTT and min RTT are set.</summary>
    private void WithRtt(long rttMs, TcpConfig? config = null)
    {
        InEstablished(config ?? NewRenoConfig, Handshake(sack: true));
        Ep.Send(new byte[Mss]);
        Recv();
        Advance(rttMs);
        OurNext += Mss;
        Send(ClientNext, ack: OurNext);
        Assert.Equal(rttMs, Ep.SmoothedRttMs);
    }

    [Fact]
    public void Reordering_shorter_than_the_window_causes_no_retransmission()
    {
        WithRtt(20);
        Ep.Send(new byte[10 * Mss]);
        Assert.Equal(10, DispatchAll().Count);
        Advance(20);
        Send(ClientNext, ack: S(0), sack: [new SackBlock(S(1), S(2))]);
        RecvNothing();
        Assert.True(Ep.NextDeadlineMs > Now); // the reordering timer: min_RTT / 4 (RFC 8985 6.2 step 4)
        Advance(1);
        Send(ClientNext, ack: S(2)); // S0 was only late
        Advance(20);
        Assert.DoesNotContain(DispatchAll(), s => s.Seq == S(0));
        Assert.Equal(0, Ep.Retransmissions);
        Assert.False(Ep.InRecovery);
    }

    [Fact]
    public void The_reordering_timer_marks_a_hole_lost_once_its_window_passed()
    {
        WithRtt(20);
        Ep.Send(new byte[10 * Mss]);
        Assert.Equal(10, DispatchAll().Count);
        Advance(20);
        Send(ClientNext, ack: S(0), sack: [new SackBlock(S(1), S(2))]);
        RecvNothing();
        long window = Ep.NextDeadlineMs - Now;
        Assert.InRange(window, 1, 20 / 4); // never more than min_RTT / 4 here
        Now = Ep.NextDeadlineMs;
        Assert.Contains(DispatchAll(), s => s.Seq == S(0));
        Assert.True(Ep.InRecovery);
        Assert.Equal(0, Ep.RetransmitTimeouts);
    }

    [Fact]
    public void A_lost_retransmission_is_found_by_later_deliveries_without_an_rto()
    {
        WithRtt(10);
        Ep.Send(new byte[30 * Mss]);
        Assert.Equal(10, DispatchAll().Count(s => s.Payload.Length > 0));
        Advance(10);
        var sent = new List<SentSegment>();
        // S0 is lost; S1..S9 arrive and are SACKed one by one: S0 is retransmitted, PRR sends new data after it.
        for (int i = 2; i <= 10; i++)
        {
            Send(ClientNext, ack: S(0), sack: [new SackBlock(S(1), S(i))]);
            sent.AddRange(DispatchAll());
        }

        Assert.Equal(1, sent.Count(s => s.Seq == S(0)));
        List<SeqNumber> newData = sent.Where(s => s.Seq >= S(10)).Select(s => s.Seq).ToList();
        Assert.True(newData.Count >= 3, $"only {newData.Count} new segments after the retransmission: {string.Join(" | ", sent)} cwnd {Ep.CongestionWindow} ssthresh {Ep.SlowStartThreshold} rec {Ep.InRecovery}");

        // The retransmission was lost too. Segments sent after it arrive and are SACKed: RACK (RFC 8985 6.2)
        // sees a delivery newer than the retransmission and sends S0 a third time, no RTO needed.
        Advance(10);
        SeqNumber highest = newData.Aggregate(SeqNumber.Max);
        Send(ClientNext, ack: S(0), sack: [new SackBlock(S(1), highest + Mss)]);
        sent.AddRange(DispatchAll());
        Assert.Equal(2, sent.Count(s => s.Seq == S(0)));
        Assert.Equal(0, Ep.RetransmitTimeouts);
        Assert.True(Ep.RackMarkedLost >= 2);
    }

    [Fact]
    public void A_lost_tail_is_probed_after_two_srtt_and_repaired_without_the_rto()
    {
        WithRtt(10);
        Ep.Send(new byte[5 * Mss]);
        Assert.Equal(5, DispatchAll().Count);
        Advance(10);
        Send(ClientNext, ack: S(3)); // S3 and S4 are lost: nothing will reveal them
        RecvNothing();
        Assert.Equal(Now + 22, Ep.NextDeadlineMs); // PTO = 2 SRTT + 2 ms (RFC 8985 7.2, Linux TCP_TIMEOUT_MIN)
        Assert.True(Ep.NextDeadlineMs < Now + Ep.RtoMs);

        Now = Ep.NextDeadlineMs;
        SentSegment probe = Recv(); // no new data: the last segment again
        Assert.Equal(S(4), probe.Seq);
        Assert.Equal(1, Ep.LossProbes);

        // The probe's SACK shows S3 missing below a segment sent later: RACK marks it lost at once.
        Advance(10);
        Send(ClientNext, ack: S(3), sack: [new SackBlock(S(4), S(5))]);
        Assert.Contains(DispatchAll(), s => s.Seq == S(3));
        Send(ClientNext, ack: S(5));
        Assert.Equal(0, Ep.RetransmitTimeouts);
        Assert.Equal(Ep.SendUnacknowledged, Ep.SendNext);
    }

    [Fact]
    public void A_probe_sends_new_data_when_the_window_allows_it_ignoring_cwnd()
    {
        WithRtt(10);
        Ep.Send(new byte[11 * Mss]); // one segment more than the initial window
        Assert.Equal(10, DispatchAll().Count);
        Now = Ep.NextDeadlineMs;     // every ACK was lost
        SentSegment probe = Recv();
        Assert.Equal(S(10), probe.Seq);
        Assert.Equal(1, Ep.LossProbes);
        Assert.Equal(0, Ep.Retransmissions);
        Assert.Equal(Now + Ep.RtoMs, Ep.NextDeadlineMs); // RFC 8985 7.3: then the RTO
    }

    [Fact]
    public void A_probe_that_repaired_a_loss_reduces_cwnd_once()
    {
        WithRtt(10);
        Ep.Send(new byte[5 * Mss]);
        Assert.Equal(5, DispatchAll().Count);
        Advance(10);
        Send(ClientNext, ack: S(4)); // only the last segment is lost
        int cwnd = Ep.CongestionWindow;
        Now = Ep.NextDeadlineMs;
        Assert.Equal(S(4), Recv().Seq);
        Advance(10);
        Send(ClientNext, ack: S(5)); // the probe delivered the segment: no D-SACK, so it was lost
        Ep.Send(new byte[Mss]);
        Assert.Equal(S(5), Recv().Seq);
        Advance(10);
        Send(ClientNext, ack: S(6)); // past the probe
        Assert.Equal(1, Ep.LossProbeRecoveries);
        Assert.True(Ep.CongestionWindow < cwnd, $"cwnd {Ep.CongestionWindow} not below {cwnd}");
        Assert.Equal(0, Ep.FastRecoveries);
    }

    [Fact]
    public void Prr_spreads_the_recovery_sends_over_the_acks_instead_of_stopping_or_bursting()
    {
        WithRtt(10);
        Ep.Send(new byte[40 * Mss]);
        int first = DispatchAll().Count; // the one-segment exchange was not cwnd-limited: still IW10
        Assert.Equal(10, first);
        Advance(10);
        var perAck = new List<int>();
        for (int i = 2; i <= first; i++)
        {
            Send(ClientNext, ack: S(0), sack: [new SackBlock(S(1), S(i))]);
            perAck.Add(DispatchAll().Count);
        }

        Assert.True(Ep.InRecovery);
        int total = perAck.Sum();
        // ssthresh = FlightSize / 2 (NewReno): about half of the deliveries are answered, one or none per ACK.
        Assert.InRange(total, (first / 2) - 1, (first / 2) + 2);
        Assert.All(perAck, n => Assert.InRange(n, 0, 2));
        Send(ClientNext, ack: S(first + total - 1));
        Assert.False(Ep.InRecovery);
        Assert.Equal(Ep.SlowStartThreshold, Ep.CongestionWindow); // RFC 6937: cwnd = ssthresh at the end
    }
}
