using CookieProxy.Tcp;
using Xunit.Abstractions;

namespace CookieProxy.Tests.Tcp.Scenarios;

/// <summary>
/// Issue 13's bad network in the simulator: 10% reordering and 1% duplication each way with 0/1/3/10% loss,
/// 4 MiB each way through both endpoints at once, every byte checked. The seeds are fixed, so simulated time
/// and retransmission counts are deterministic; the bounds below sit well above what the runs give (the test
/// output prints them) and well below what loss detection without RACK-TLP needed.
/// </summary>
public class LossyPathScenarioTests
{
    private const long FourMiB = 4 * 1024 * 1024;
    private readonly ITestOutputHelper _output;

    public LossyPathScenarioTests(ITestOutputHelper output) => _output = output;

    private static FaultConfig Path(double loss) => new()
    {
        DropRate = loss,
        DuplicateRate = 0.01,
        ReorderRate = 0.10,
        OneWayDelayMs = 5,
    };

    private ScenarioResult Run(FaultConfig faults, int seed, TcpCongestionControl cc = TcpCongestionControl.Cubic)
    {
        var config = new TcpConfig { MaxRetransmits = 30, IdleTimeoutMs = 600_000, CongestionControl = cc };
        ScenarioResult r = ScenarioHarness.Run(faults, seed, FourMiB, sack: true, timestamps: true, config);
        double mibPerSecond = FourMiB / 1048576.0 / Math.Max(r.SimulatedMs / 1000.0, 0.001);
        _output.WriteLine($"{cc} loss {faults.DropRate:P0} reorder {faults.ReorderRate:P0} dup {faults.DuplicateRate:P0}: " +
                          $"{mibPerSecond:F2} MiB/s per direction; {r}; server probes {r.Server.LossProbes} rack-lost {r.Server.RackMarkedLost} undone {r.Server.SpuriousRecoveriesUndone}");
        Assert.False(r.ServerApp.Corrupted || r.ClientApp.Corrupted, r.ToString());
        Assert.Equal(FourMiB, r.ServerApp.BytesReceived);
        Assert.Equal(FourMiB, r.ClientApp.BytesReceived);
        Assert.True(r.Server.IsClosed && r.Client.IsClosed, r.ToString());
        Assert.Equal(TcpCloseReason.Graceful, r.Server.CloseReason);
        return r;
    }

    [Theory]
    [InlineData(0.00, 3_000, 0)]
    [InlineData(0.01, 4_000, 1)]
    [InlineData(0.03, 6_000, 2)]
    [InlineData(0.10, 15_000, 6)]
    public void Established_transfers_recover_with_few_timeouts_at_each_loss_rate(double loss, long maxSimulatedMs, int maxRtosEachSide)
    {
        ScenarioResult r = Run(Path(loss), seed: 13);
        Assert.True(r.SimulatedMs < maxSimulatedMs, $"took {r.SimulatedMs} simulated ms: {r}");
        Assert.True(r.Server.RetransmitTimeouts <= maxRtosEachSide && r.Client.RetransmitTimeouts <= maxRtosEachSide, r.ToString());
    }

    [Fact]
    public void Pure_reordering_costs_few_spurious_retransmissions_and_no_timeout()
    {
        ScenarioResult r = Run(Path(0) with { DuplicateRate = 0 }, seed: 21);
        long segments = r.Link.Sent;
        // Every retransmission here is spurious: RACK's window and D-SACK undo keep them to a few percent.
        Assert.True(r.Server.Retransmissions + r.Client.Retransmissions < segments / 50, r.ToString());
        Assert.Equal(0, r.Server.RetransmitTimeouts + r.Client.RetransmitTimeouts);
    }

    [Fact]
    public void Newreno_is_kept_and_recovers_the_same_path_too()
    {
        ScenarioResult r = Run(Path(0.03), seed: 13, TcpCongestionControl.NewReno);
        Assert.True(r.SimulatedMs < 8_000, r.ToString());
    }
}
