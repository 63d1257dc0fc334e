using System.Net.Sockets;
using CookieProxy.Diagnostics;
using CookieProxy.Host.Backend;
using CookieProxy.Host.Flows;
using CookieProxy.Tcp;
using CookieProxy.Tests.Backend;
using CookieProxy.Tests.Support;

namespace CookieProxy.Tests.Memory;

/// <summary>
/// Issue 12.5 in memory: clients pushing into a backend that never reads. The flows' footprint stays under the
/// table's cap however many push, newcomers still get in (the reserve, then eviction of the stalled), and a second
/// wave reuses the first wave's ring arrays.
/// </summary>
[Collection(SerialCollection.Name)]
public class FlowMemoryBudgetTests
{
    private const long Cap = 4L * 1024 * 1024;

    private static FlowTableOptions Options() => new()
    {
        MaxBufferedBytesTotal = Cap,
        MaxFlowsPerSource = int.MaxValue,
        EvictIdleMs = 200,
    };

    /// <summary>Client bytes the proxy holds right now: in the endpoints and in the output pipes.</summary>
    private static long HeldBytes(IEnumerable<Flow> flows) =>
        flows.Where(f => !f.Removed).Sum(f => (long)f.Endpoint.ReceiveAvailable + f.Backend.OutputPending);

    [Fact]
    public void Flows_pushing_into_a_backend_that_never_reads_stay_under_the_cap_and_newcomers_still_get_in()
    {
        using var backend = new LoopbackBackend(receiveBufferSize: 4096);
        using var h = new SpliceHarness(Options());
        // More than the kernel's socket buffers take (Linux autotunes our send buffer up to 4 MiB per socket).
        byte[] data = new byte[8 * 1024 * 1024];
        var flows = new List<(Flow Flow, TestClient Client)>();
        var servers = new List<Socket>();
        for (int i = 0; i < 16; i++)
        {
            var client = new TestClient();
            flows.Add((h.Open(backend.EndPoint, client), client));
            servers.Add(backend.Accept());    // accepted, never read
        }

        long maxAccounted = 0, maxHeld = 0;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (clock.ElapsedMilliseconds < 3000)
        {
            foreach ((Flow flow, TestClient client) in flows)
            {
                if (!flow.Removed)
                {
                    h.SendStream(flow, client, data);
                }
            }
            h.Turn(5, [.. flows]);
            maxAccounted = Math.Max(maxAccounted, h.Table.BufferedBytes);
            maxHeld = Math.Max(maxHeld, HeldBytes(flows.Select(f => f.Flow)));
        }

        Assert.True(maxAccounted <= Cap, $"accounted {maxAccounted} over the cap {Cap}");
        Assert.True(maxHeld <= Cap, $"held {maxHeld} bytes of client data over the cap {Cap}");
        Assert.True(maxHeld > Cap / 4, $"held only {maxHeld} bytes: did the clients push at all? to backend {h.Counters[Counter.BytesToBackend]}, removed {flows.Count(f => f.Flow.Removed)}, sent {flows.Sum(f => f.Client.StreamSent)}, states {string.Join(",", flows.Select(f => f.Flow.Endpoint.State + "/" + f.Flow.Backend.State).Distinct())}");
        Assert.True(h.Table.StarvedCount > 0, "the budget never held a flow back");

        // The stalled flows have been idle longer than EvictIdleMs: newcomers get in, through the reserve and then by
        // evicting the stalled ones, oldest first. Nobody is refused.
        Thread.Sleep(250);
        for (int i = 0; i < 40; i++)
        {
            Assert.Equal(DropReason.None, h.TryOpen(backend.EndPoint, new TestClient(), out _, source: "198.18.2.1"));
            Assert.True(h.Table.BufferedBytes <= Cap);
        }
        Assert.True(h.Counters[Counter.FlowsEvicted] > 0);
        Assert.Equal(0, h.Counters.Drops(DropReason.BufferLimit));

        foreach (Socket s in servers)
        {
            s.Dispose();
        }
    }

    [LinuxFact]
    public void A_second_wave_reuses_the_first_waves_ring_arrays_and_the_table_ends_at_zero()
    {
        using var backend = new LoopbackBackend();
        using var h = new SpliceHarness(Options());
        RingBufferPool pool = h.Table.BufferPool;
        long createdAfterFirst = 0;
        for (int wave = 0; wave < 2; wave++)
        {
            var flows = new List<(Flow Flow, TestClient Client)>();
            for (int i = 0; i < 12; i++)
            {
                var client = new TestClient();
                Flow flow = h.Open(backend.EndPoint, client);
                h.SendData(flow, client, new byte[50_000]);
                flows.Add((flow, client));
            }
            foreach ((Flow flow, TestClient client) in flows)
            {
                h.SendRst(flow, client);
            }
            Assert.Equal(0, h.Table.Count);
            Assert.Equal(0, h.Table.BufferedBytes);
            Assert.Equal(0, pool.Outstanding);
            if (wave == 0)
            {
                createdAfterFirst = pool.Created;
            }
        }
        Assert.Equal(createdAfterFirst, pool.Created);
        Assert.True(pool.ColdPooled > 0, "no array beyond the hot ones was kept decommitted");
    }
}
