using CookieProxy.Tcp;
using Xunit.Abstractions;

namespace CookieProxy.Tests.Tcp.Scenarios;

/// <summary>
/// Two endpoints transfer a seeded stream both ways at once through a lossy, duplicating, reordering link,
/// then close gracefully; every byte must arrive intact and in order.
/// </summary>
public class TransferScenarioTests
{
    private const long TenMiB = 10 * 1024 * 1024;
    private readonly ITestOutputHelper _output;

    public TransferScenarioTests(ITestOutputHelper output) => _output = output;

    private static FaultConfig Faults(double loss) => new()
    {
        DropRate = loss * 0.8,
        CorruptRate = loss * 0.2,
        DuplicateRate = loss > 0 ? 0.01 : 0,
        ReorderRate = loss > 0 ? 0.02 : 0,
    };

    private ScenarioResult RunAndVerify(double loss, bool sack, bool timestamps, long bytes, int seed)
    {
        ScenarioResult r = ScenarioHarness.Run(Faults(loss), seed, bytes, sack, timestamps);
        double mibPerSimSecond = bytes / 1048576.0 / Math.Max(r.SimulatedMs / 1000.0, 0.001);
        _output.WriteLine($"loss {loss:P0} sack={sack} ts={timestamps} {bytes / 1048576.0:F1} MiB each way: " +
                          $"{mibPerSimSecond:F2} MiB/s per direction (simulated); {r}");

        Assert.False(r.ServerApp.Corrupted, $"server received corrupted data at {r.ServerApp.CorruptedAt}");
        Assert.False(r.ClientApp.Corrupted, $"client received corrupted data at {r.ClientApp.CorruptedAt}");
        Assert.Equal(bytes, r.ServerApp.BytesReceived);
        Assert.Equal(bytes, r.ClientApp.BytesReceived);
        Assert.True(r.Server.ReceiveFinished && r.Client.ReceiveFinished, r.ToString());
        Assert.True(r.Server.IsClosed && r.Client.IsClosed, r.ToString());
        Assert.Equal(TcpCloseReason.Graceful, r.Server.CloseReason);
        Assert.Equal(TcpCloseReason.Graceful, r.Client.CloseReason);
        return r;
    }

    [Theory]
    [InlineData(0.00)]
    [InlineData(0.01)]
    [InlineData(0.05)]
    [InlineData(0.10)]
    public void Ten_mib_each_way_arrive_intact_with_sack_and_timestamps(double loss)
        => RunAndVerify(loss, sack: true, timestamps: true, TenMiB, seed: 1);

    [Theory]
    [InlineData(0.00)]
    [InlineData(0.01)]
    [InlineData(0.05)]
    [InlineData(0.10)]
    public void Ten_mib_each_way_arrive_intact_without_sack_or_timestamps(double loss)
        => RunAndVerify(loss, sack: false, timestamps: false, TenMiB, seed: 2);

    [Theory]
    [InlineData(0.01, true, false)]
    [InlineData(0.05, false, true)]
    public void Mixed_option_sets_arrive_intact(double loss, bool sack, bool timestamps)
        => RunAndVerify(loss, sack, timestamps, 2 * 1024 * 1024, seed: 3);

    [Fact]
    public void A_slow_reader_closes_the_window_and_the_transfer_recovers_through_window_updates_and_probes()
    {
        var config = new TcpConfig { ReceiveBufferSize = 32 * 1024, MaxRetransmits = 30, IdleTimeoutMs = 600_000 };
        ScenarioResult r = ScenarioHarness.Run(Faults(0.05), seed: 4, 1024 * 1024, sack: true, timestamps: true, config,
            serverReadBytesPerMs: 50);
        _output.WriteLine(r.ToString() + $"; server zero windows {r.Server.ZeroWindowsAdvertised}, client probes {r.Client.WindowProbes}");
        Assert.True(r.Server.ZeroWindowsAdvertised > 0);
        Assert.False(r.ServerApp.Corrupted);
        Assert.Equal(1024 * 1024, r.ServerApp.BytesReceived);
        Assert.Equal(1024 * 1024, r.ClientApp.BytesReceived);
        Assert.True(r.Server.IsClosed && r.Client.IsClosed, r.ToString());
        Assert.Equal(TcpCloseReason.Graceful, r.Server.CloseReason);
    }
}
