using CookieProxy.Tcp;
using CookieProxy.Wire;
using Xunit.Abstractions;

namespace CookieProxy.Tests.Tcp.Scenarios;

/// <summary>
/// A download whose last segments are lost (RFC 8985 7: a lost tail has no later segment whose SACK could reveal
/// it, so without a probe only the RTO repairs it). The link drops the first transmission of every server segment
/// carrying bytes of the stream's tail, and nothing else; retransmissions get through. Times are on the simulated
/// clock: the same download without the drop is the baseline, so what the tail loss costs is measured exactly.
/// </summary>
public class TailLossScenarioTests
{
    private const long Download = 181 * 1448; // whole segments, so a tail of N segments is N segments
    private const long Request = 200;
    private const int Segment = 1448; // LocalMss 1460 minus the timestamp option
    private const int Seed = 5;
    private const long OneWayDelayMs = 5;

    private readonly ITestOutputHelper _output;

    public TailLossScenarioTests(ITestOutputHelper output) => _output = output;

    private sealed class TailDropper
    {
        private readonly SeqNumber _tailStart;
        private readonly HashSet<uint> _dropped = new();

        public TailDropper(int tailSegments)
        {
            SeqNumber streamEnd = ScenarioHarness.ServerIss(Seed) + 1 + (int)Download;
            _tailStart = streamEnd - (tailSegments * Segment);
        }

        public int SegmentsDropped => _dropped.Count;

        /// <summary>A server segment with data (or the FIN) in the tail, sent for the first time: lost.</summary>
        public bool Drop(int direction, TcpRepr repr, int payloadLength)
        {
            bool fin = (repr.Flags & TcpFlags.Fin) != 0;
            if (direction != 0 || (payloadLength == 0 && !fin))
            {
                return false;
            }

            SeqNumber end = repr.Seq + payloadLength + (fin ? 1 : 0);
            return end > _tailStart && _dropped.Add(repr.Seq.Value);
        }
    }

    private ScenarioResult Run(bool sack, TailDropper? dropper)
    {
        var faults = new FaultConfig { OneWayDelayMs = OneWayDelayMs, DropIf = dropper is null ? null : dropper.Drop };
        var config = new TcpConfig { MaxRetransmits = 30, IdleTimeoutMs = 600_000 };
        ScenarioResult r = ScenarioHarness.Run(faults, Seed, Download, sack, timestamps: true, config, clientBytes: Request);
        _output.WriteLine($"sack={sack} tail dropped {dropper?.SegmentsDropped ?? 0}: download complete at {r.ClientApp.ReceivedAllAtMs} ms; " +
                          $"probes {r.Server.LossProbes} probe-repairs {r.Server.LossProbeRecoveries} rack-lost {r.Server.RackMarkedLost} " +
                          $"fast recoveries {r.Server.FastRecoveries}; {r}");
        Assert.False(r.ClientApp.Corrupted || r.ServerApp.Corrupted, r.ToString());
        Assert.Equal(Download, r.ClientApp.BytesReceived);
        Assert.Equal(Request, r.ServerApp.BytesReceived);
        Assert.True(r.Server.IsClosed && r.Client.IsClosed, r.ToString());
        Assert.Equal(TcpCloseReason.Graceful, r.Server.CloseReason);
        return r;
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(5)]
    public void Established_a_lost_tail_is_repaired_by_the_loss_probe_without_a_timeout(int tailSegments)
    {
        ScenarioResult baseline = Run(sack: true, dropper: null);
        Assert.Equal(0, baseline.Server.Retransmissions);
        Assert.Equal(0, baseline.Server.LossProbes);

        var dropper = new TailDropper(tailSegments);
        ScenarioResult r = Run(sack: true, dropper);
        Assert.True(dropper.SegmentsDropped >= tailSegments, $"only {dropper.SegmentsDropped} tail segments dropped");

        // RFC 8985 7.3: one probe, its ACK (or SACK) shows the rest, RACK repairs it; the RTO never fires. The
        // probe resends the last segment; RACK marks each earlier lost one (6.2) and each goes again exactly once.
        Assert.Equal(0, r.Server.RetransmitTimeouts);
        Assert.Equal(0, r.Client.RetransmitTimeouts);
        Assert.Equal(1, r.Server.LossProbes);
        Assert.Equal(dropper.SegmentsDropped - 1, r.Server.RackMarkedLost);
        Assert.Equal(dropper.SegmentsDropped, r.Server.Retransmissions);

        // What the loss costs: half a round trip for the last good ACK, the PTO (2 SRTT + 2 ms, 7.2), half a round
        // trip for the probe; with more than one segment lost, one more round trip for its SACK and RACK's
        // repairs, which PRR's slow-start bound (RFC 6937) sends 1, 2, 4... per ACK. A few round trips in all,
        // where the RTO would add at least its 200 ms minimum (the test below).
        long rttMs = 2 * OneWayDelayMs;
        long extraMs = r.ClientApp.ReceivedAllAtMs - baseline.ClientApp.ReceivedAllAtMs;
        _output.WriteLine($"the tail loss cost {extraMs} ms ({extraMs / (double)rttMs:F1} RTT), SRTT {r.Server.SmoothedRttMs} ms");
        Assert.True(extraMs <= 10 * rttMs, $"the repair took {extraMs} ms more than the baseline");
        Assert.True(extraMs < new TcpConfig().MinRtoMs);
    }

    [Fact]
    public void Established_without_sack_the_same_lost_tail_waits_for_the_retransmission_timeout()
    {
        // The control: TLP needs SACK (RFC 8985 7.2; Linux tcp_schedule_loss_probe likewise), so the same drop
        // is repaired by the RTO, at least MinRto later. This is what the test above would see without TLP.
        ScenarioResult baseline = Run(sack: false, dropper: null);
        var dropper = new TailDropper(3);
        ScenarioResult r = Run(sack: false, dropper);
        Assert.Equal(0, r.Server.LossProbes);
        Assert.True(r.Server.RetransmitTimeouts >= 1, r.ToString());
        long extraMs = r.ClientApp.ReceivedAllAtMs - baseline.ClientApp.ReceivedAllAtMs;
        Assert.True(extraMs >= new TcpConfig().MinRtoMs, $"the repair took only {extraMs} ms more");
    }
}
