using CookieProxy.Diagnostics;
using CookieProxy.Host.Capture;
using CookieProxy.Responder;
using Microsoft.Extensions.Logging.Abstractions;

namespace CookieProxy.Tests.Responder;

/// <summary>
/// The host's side of the gate: what it reads from the counters, what it writes to the program's flag, what it adds
/// to the stats. Polled by hand with a fake clock; the program is a delegate that records the flag.
/// </summary>
public class SynCacheXdpServiceTests
{
    private const long T0 = 1_000;
    private readonly ProxyCounters[] _threads = [new(), new()];
    private readonly List<bool> _flags = [];
    private readonly SynCacheXdpService _service;

    public SynCacheXdpServiceTests()
    {
        _service = new SynCacheXdpService(SynCacheConfig.For(4096), () => 2, Snapshot, pass =>
        {
            _flags.Add(pass);
            return _programRuns;
        }, NullLogger.Instance);
    }

    private bool _programRuns = true;

    /// <summary>Opened at T0: the program passes SYNs up to begin with (that first write is not counted here).</summary>
    private void Open()
    {
        _service.Open(T0);
        Assert.Equal([true], _flags);
        _flags.Clear();
    }

    /// <summary>As CounterSources does: fresh copies, the program's SYN+ACKs already in syn_received.</summary>
    private ProxyCounters[] Snapshot()
    {
        var copy = new ProxyCounters[_threads.Length];
        for (int i = 0; i < copy.Length; i++)
        {
            copy[i] = new ProxyCounters();
            _threads[i].AddTo(copy[i]);
        }
        return copy;
    }

    [Fact]
    public void AFloodedThreadTurnsThePassFlagOffAndTheStatsShowIt()
    {
        Open();
        _threads[1][Counter.SynCacheFloodMode] = 1;
        _threads[1][Counter.SynReceived] = 5000;
        _service.Poll(T0 + 100);
        Assert.Equal([false], _flags);

        ProxyCounters[] stats = Snapshot();
        _service.AddCounters(stats);
        Assert.Equal(1, stats[0][Counter.SynCacheXdpFlood]);
        Assert.Equal(1, stats[0][Counter.SynCacheModeChanges]);
    }

    [Fact]
    public void WhileTheProgramAnswersAFloodTheFlagStaysOffThenThreeQuietSecondsTurnItOn()
    {
        Open();
        _threads[0][Counter.SynCacheFloodMode] = 1;
        _service.Poll(T0 + 100);
        _threads[0][Counter.SynCacheFloodMode] = 0; // the threads see nothing now: the kernel answers
        for (int s = 1; s <= 5; s++)
        {
            _threads[0][Counter.SynReceived] += 200_000;
            _service.Poll(T0 + 100 + (s * 1000));
        }
        Assert.Equal([false], _flags);
        for (int s = 6; s <= 8; s++)
        {
            _threads[0][Counter.SynReceived] += 10;
            _service.Poll(T0 + 100 + (s * 1000));
        }
        Assert.Equal([false, true], _flags);
        ProxyCounters[] stats = Snapshot();
        _service.AddCounters(stats);
        Assert.Equal(0, stats[0][Counter.SynCacheXdpFlood]);
    }

    [Fact]
    public void CalmPollsWriteNothing()
    {
        Open();
        for (int i = 1; i <= 20; i++)
        {
            _threads[0][Counter.SynReceived] += 50;
            _service.Poll(T0 + (i * 100));
        }
        Assert.Empty(_flags);
    }

    [Fact]
    public void WithoutAProgramTheGateStaysAsideAndTheStatsShowNothingOfIt()
    {
        _programRuns = false;
        _service.Open(T0);
        _flags.Clear();
        _threads[0][Counter.SynCacheFloodMode] = 1;
        _threads[0][Counter.SynReceived] = 5000;
        _service.Poll(T0 + 100);
        Assert.Empty(_flags);
        ProxyCounters[] stats = Snapshot();
        _service.AddCounters(stats);
        Assert.Equal(0, stats[0][Counter.SynCacheXdpFlood]);
        Assert.Equal(0, stats[0][Counter.SynCacheModeChanges]);
    }
}
