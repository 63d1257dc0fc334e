using CookieProxy.Diagnostics;
using CookieProxy.Tcp;

namespace CookieProxy.Tests.Tcp.Scenarios;

/// <summary>The endpoint's loss-recovery counts reach the host's counters (and so the stats line, JSON and /metrics).</summary>
public class EndpointStatisticsTests
{
    private static FaultConfig LossyPath => new() { DropRate = 0.03, DuplicateRate = 0.01, ReorderRate = 0.10, OneWayDelayMs = 5 };

    [Fact]
    public void A_finished_connection_adds_each_of_its_counts_to_the_counter_of_the_same_meaning()
    {
        ScenarioResult r = ScenarioHarness.Run(LossyPath, seed: 13, 1024 * 1024, sack: true, timestamps: true);
        Assert.True(r.Server.IsClosed, r.ToString());
        TcpEndpoint ep = r.Server;
        var counters = new ProxyCounters();
        counters[Counter.TcpRetransmitTimeouts] = 7; // what earlier flows of the thread left: added to, not overwritten

        ep.AddStatisticsTo(counters);

        Assert.Equal(0, counters[Counter.Retransmits]); // the flow table reports those as they happen
        Assert.Equal(7 + ep.RetransmitTimeouts, counters[Counter.TcpRetransmitTimeouts]);
        Assert.Equal(ep.LossProbes, counters[Counter.TcpLossProbes]);
        Assert.Equal(ep.LossProbeRecoveries, counters[Counter.TcpLossProbeRecoveries]);
        Assert.Equal(ep.RackMarkedLost, counters[Counter.TcpRackMarkedLost]);
        Assert.Equal(ep.FastRecoveries, counters[Counter.TcpFastRecoveries]);
        Assert.Equal(ep.SpuriousRetransmissions, counters[Counter.TcpSpuriousRetransmits]);
        Assert.Equal(ep.SpuriousRecoveriesUndone, counters[Counter.TcpRecoveriesUndone]);
        Assert.Equal(ep.DsacksReceived, counters[Counter.TcpDsacksReceived]);
        Assert.Equal(ep.ReorderingEvents, counters[Counter.TcpReorderingRaised]);
        Assert.Equal(ep.PawsRejected, counters[Counter.TcpPawsRejected]);
        Assert.Equal(ep.WindowProbes, counters[Counter.TcpWindowProbes]);
        Assert.Equal(ep.ChallengeAcksSent, counters[Counter.TcpChallengeAcks]);

        // The path really exercised loss recovery, so the equalities above compared something.
        Assert.True(ep.Retransmissions > 0 && ep.RackMarkedLost > 0 && ep.FastRecoveries > 0 && ep.DsacksReceived > 0, r.ToString());
    }

    [Fact]
    public void Duplicated_segments_that_were_never_retransmitted_are_not_counted_as_spurious_retransmissions()
    {
        // 5% duplication, nothing lost or reordered: the client D-SACKs the copies (RFC 2883), but none was ours.
        ScenarioResult r = ScenarioHarness.Run(new FaultConfig { DuplicateRate = 0.05 }, seed: 3, 512 * 1024, sack: true, timestamps: true);
        Assert.True(r.Server.DsacksReceived > 0, r.ToString());
        Assert.Equal(0, r.Server.Retransmissions);
        Assert.Equal(0, r.Server.SpuriousRetransmissions);
    }

    [Fact]
    public void Every_tcp_counter_has_a_snake_case_name_prefixed_tcp()
    {
        for (Counter c = Counter.TcpRetransmitTimeouts; c <= Counter.TcpChallengeAcks; c++)
        {
            string name = CounterTable.NameOf(c);
            Assert.StartsWith("tcp_", name);
            Assert.Equal(name.ToLowerInvariant(), name);
            Assert.Equal(CounterKind.Counter, CounterTable.Of(c).Kind);
        }
    }
}
