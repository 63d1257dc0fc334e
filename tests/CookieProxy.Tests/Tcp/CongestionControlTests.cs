using CookieProxy.Tcp;
using CookieProxy.Tcp.Congestion;

namespace CookieProxy.Tests.Tcp;

/// <summary>CUBIC (RFC 9438) and HyStart++ (RFC 9406) on their own, fed ACKs on a simulated clock.</summary>
public class CongestionControlTests
{
    private const int Mss = 1448;

    [Fact]
    public void A_loss_leaves_beta_times_the_flight_and_remembers_the_window_as_w_max()
    {
        var cubic = new Cubic();
        int ssthresh = cubic.OnCongestionEvent(cwnd: 100 * Mss, flight: 100 * Mss, Mss);
        Assert.Equal((int)(100 * Mss * 0.7), ssthresh);        // RFC 9438 4.6
        Assert.Equal(100.0 * Mss, cubic.WMaxBytes);
        Assert.Equal(2 * Mss, cubic.OnCongestionEvent(cwnd: 2 * Mss, flight: Mss, Mss)); // at least 2 SMSS
    }

    [Fact]
    public void Fast_convergence_releases_w_max_when_the_window_never_regained_it()
    {
        var cubic = new Cubic();
        cubic.OnCongestionEvent(100 * Mss, 100 * Mss, Mss);
        cubic.OnCongestionEvent(80 * Mss, 80 * Mss, Mss);   // below W_max = 100: RFC 9438 4.7
        Assert.Equal(80.0 * Mss * (1 + 0.7) / 2, cubic.WMaxBytes, 6);
    }

    [Fact]
    public void At_a_long_rtt_the_window_climbs_back_to_w_max_after_k_seconds_then_probes_beyond()
    {
        var cubic = new Cubic();
        int cwnd = cubic.OnCongestionEvent(100 * Mss, 100 * Mss, Mss);
        const long Rtt = 100;
        long now = 0;
        double k = Math.Cbrt((100 - 70) / 0.4); // RFC 9438 4.2: about 4.2 s
        int atHalfK = 0;
        int atK = 0;
        for (; now <= 8_000; now += Rtt)
        {
            cwnd = cubic.OnCongestionAvoidanceAck(cwnd, cwnd, Mss, now, Rtt); // one window acknowledged per RTT
            if (atHalfK == 0 && now >= k * 500)
            {
                atHalfK = cwnd;
            }

            if (atK == 0 && now >= k * 1000)
            {
                atK = cwnd;
            }
        }

        Assert.Equal(k, cubic.KSeconds, 3);
        Assert.InRange(atHalfK, 90 * Mss, 100 * Mss);   // concave: most of the way back by K/2
        Assert.InRange(atK, 97 * Mss, 103 * Mss);       // at W_max around K
        Assert.True(cwnd > 110 * Mss, $"convex growth past W_max: {cwnd / Mss} segments");
    }

    [Fact]
    public void At_a_short_rtt_the_window_grows_at_least_like_reno()
    {
        var cubic = new Cubic();
        int cwnd = cubic.OnCongestionEvent(100 * Mss, 100 * Mss, Mss);
        int start = cwnd;
        for (long now = 0; now < 1_000; now++)
        {
            cwnd = cubic.OnCongestionAvoidanceAck(cwnd, cwnd, Mss, now, srttMs: 1); // 1000 RTTs of 1 ms
        }

        // Reno-friendly region (RFC 9438 4.3): alpha_cubic = 0.53 SMSS per RTT at least.
        Assert.True(cwnd - start >= (int)(0.5 * 1000 * Mss), $"grew {(cwnd - start) / Mss} segments in 1000 RTTs");
    }

    [Fact]
    public void Idle_time_does_not_count_as_growth_time()
    {
        var busy = new Cubic();
        var idle = new Cubic();
        int a = busy.OnCongestionEvent(100 * Mss, 100 * Mss, Mss);
        int b = idle.OnCongestionEvent(100 * Mss, 100 * Mss, Mss);
        a = busy.OnCongestionAvoidanceAck(a, Mss, Mss, 0, 100);
        b = idle.OnCongestionAvoidanceAck(b, Mss, Mss, 0, 100);
        idle.OnIdle(2_000);
        a = busy.OnCongestionAvoidanceAck(a, a, Mss, 2_000, 100);
        b = idle.OnCongestionAvoidanceAck(b, b, Mss, 2_000, 100);
        Assert.True(b < a, $"after idling {b / Mss} segments, without {a / Mss}");
    }

    private static int Round(ref HyStartPlusPlus h, ref SeqNumber una, ref SeqNumber nxt, ref int ssthresh, int cwnd, long rtt, int acks = 10)
    {
        int increase = 0;
        nxt += cwnd;
        for (int i = 0; i < acks; i++)
        {
            una += cwnd / acks;
            increase += h.OnSlowStartAck(cwnd / acks, una, nxt, rtt, ref ssthresh, cwnd);
        }

        una = nxt;
        return increase;
    }

    [Fact]
    public void A_rising_rtt_ends_slow_start_through_conservative_slow_start_into_congestion_avoidance()
    {
        var una = new SeqNumber(1);
        SeqNumber nxt = una;
        var h = new HyStartPlusPlus(nxt, enabled: true);
        int ssthresh = int.MaxValue;
        int cwnd = 10 * Mss;
        cwnd += Round(ref h, ref una, ref nxt, ref ssthresh, cwnd, rtt: 20);
        cwnd += Round(ref h, ref una, ref nxt, ref ssthresh, cwnd, rtt: 20);
        Assert.False(h.InCss);
        cwnd += Round(ref h, ref una, ref nxt, ref ssthresh, cwnd, rtt: 30); // +10 ms > max(4, 20/8) ms
        Assert.True(h.InCss);
        int before = cwnd;
        int increase = Round(ref h, ref una, ref nxt, ref ssthresh, cwnd, rtt: 30);
        Assert.InRange(increase, 1, (before / HyStartPlusPlus.CssGrowthDivisor) + 10); // a quarter of slow start's doubling
        cwnd += increase;
        int last = cwnd;
        for (int i = 0; i < HyStartPlusPlus.CssRounds && h.Active; i++)
        {
            last = cwnd;
            cwnd += Round(ref h, ref una, ref nxt, ref ssthresh, cwnd, rtt: 30);
        }

        Assert.False(h.Active);
        Assert.Equal(last, ssthresh); // RFC 9406 4.2: ssthresh = cwnd when CSS ends, then congestion avoidance
    }

    [Fact]
    public void An_rtt_rise_that_goes_away_returns_from_css_to_slow_start()
    {
        var una = new SeqNumber(1);
        SeqNumber nxt = una;
        var h = new HyStartPlusPlus(nxt, enabled: true);
        int ssthresh = int.MaxValue;
        int cwnd = 10 * Mss;
        cwnd += Round(ref h, ref una, ref nxt, ref ssthresh, cwnd, rtt: 20);
        cwnd += Round(ref h, ref una, ref nxt, ref ssthresh, cwnd, rtt: 30);
        Assert.True(h.InCss);
        cwnd += Round(ref h, ref una, ref nxt, ref ssthresh, cwnd, rtt: 20);
        Assert.False(h.InCss);
        Assert.True(h.Active);
        Assert.Equal(int.MaxValue, ssthresh);
    }

    [Fact]
    public void A_lan_rtt_never_leaves_slow_start_early_and_a_loss_ends_hystart()
    {
        var una = new SeqNumber(1);
        SeqNumber nxt = una;
        var h = new HyStartPlusPlus(nxt, enabled: true);
        int ssthresh = int.MaxValue;
        int cwnd = 10 * Mss;
        for (int i = 0; i < 8; i++)
        {
            cwnd += Round(ref h, ref una, ref nxt, ref ssthresh, cwnd, rtt: i % 2); // 0-1 ms jitter: below 4 ms
        }

        Assert.False(h.InCss);
        Assert.True(h.Active);
        h.End();
        Assert.False(h.Active);
    }

    [Fact]
    public void With_cubic_an_endpoint_halves_less_than_with_newreno()
    {
        static int SsthreshAfterFastRetransmit(TcpCongestionControl cc)
        {
            var t = new RackTlpTestsHarness(cc);
            return t.SsthreshAfterOneLoss();
        }

        int cubic = SsthreshAfterFastRetransmit(TcpCongestionControl.Cubic);
        int reno = SsthreshAfterFastRetransmit(TcpCongestionControl.NewReno);
        Assert.Equal(10 * 1460 * 7 / 10, cubic);
        Assert.Equal(10 * 1460 / 2, reno);
    }

    /// <summary>Ten segments, the first lost, three SACKs: fast recovery with the given controller.</summary>
    private sealed class RackTlpTestsHarness : TcpTestBase
    {
        private readonly TcpCongestionControl _cc;

        public RackTlpTestsHarness(TcpCongestionControl cc) => _cc = cc;

        public int SsthreshAfterOneLoss()
        {
            InEstablished(new TcpConfig { CongestionControl = _cc }, Handshake(sack: true));
            Ep.Send(new byte[10 * Mss]);
            DispatchAll();
            for (int i = 2; i <= 4; i++)
            {
                Send(ClientNext, ack: OurNext, sack: [new CookieProxy.Wire.SackBlock(OurNext + Mss, OurNext + (i * Mss))]);
            }

            Assert.True(Ep.InRecovery);
            return Ep.SlowStartThreshold;
        }
    }
}
