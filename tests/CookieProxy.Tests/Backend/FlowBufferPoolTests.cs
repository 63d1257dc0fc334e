using CookieProxy.Diagnostics;
using System.Net.Sockets;
using CookieProxy.Host.Backend;
using CookieProxy.Host.Flows;
using CookieProxy.Tcp;

namespace CookieProxy.Tests.Backend;

/// <summary>The flow table's ring buffer pool over real short flows: each one a request, a response, both FINs.</summary>
[Collection(CookieProxy.Tests.Support.SerialCollection.Name)]
public class FlowBufferPoolTests
{
    private const int RingSize = 256 * 1024;

    private static readonly byte[] s_request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray();
    private static readonly byte[] s_response = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"u8.ToArray();

    private static FlowTableOptions Options(long? ringPoolBytes = null, bool decommit = true) => new()
    {
        RingPoolBytes = ringPoolBytes ?? new FlowTableOptions().RingPoolBytes,
        DecommitFreeRings = decommit,
        Backend = new BackendOptions { ConnectTimeout = TimeSpan.FromSeconds(3) },
    };

    /// <summary>
    /// Runs <paramref name="count"/> short flows, <paramref name="concurrency"/> at a time: the client sends its
    /// request and FIN, the backend answers and closes, the client acknowledges, the flow leaves the table.
    /// </summary>
    private static void RunShortFlows(SpliceHarness h, LoopbackBackend backend, int count, int concurrency)
    {
        for (int done = 0; done < count; done += concurrency)
        {
            var round = new List<(Flow Flow, TestClient Client)>();
            for (int i = 0; i < Math.Min(concurrency, count - done); i++)
            {
                var client = new TestClient();
                Flow flow = h.Open(backend.EndPoint, client);
                h.SendData(flow, client, s_request);
                h.SendFin(flow, client);
                round.Add((flow, client));
            }

            (Flow, TestClient)[] clients = [.. round];
            var servers = new List<Socket>();
            foreach (var _ in round)
            {
                servers.Add(backend.Accept());
            }

            Assert.True(h.RunUntil(() => round.All(r => r.Flow.Backend.OutputShutDown), clients: clients));
            foreach (Socket server in servers)
            {
                LoopbackBackend.ReadExactly(server, s_request.Length);
                server.Send(s_response);
                server.Shutdown(SocketShutdown.Both);
            }

            Assert.True(h.RunUntil(() => h.Table.Count == 0, clients: clients), $"flows left: {h.Table.Count}");
            foreach (Socket server in servers)
            {
                server.Dispose();
            }

            foreach ((Flow flow, TestClient client) in round)
            {
                Assert.True(client.GotFin);
                Assert.Equal(s_response, client.Received.ToArray());
                Assert.Equal(TcpCloseReason.Graceful, flow.Endpoint.CloseReason);
            }
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(3)]
    public void Many_short_flows_create_only_two_ring_arrays_per_flow_open_at_once(int concurrency)
    {
        using var backend = new LoopbackBackend();
        using var h = new SpliceHarness(Options());
        RingBufferPool pool = h.Table.BufferPool;
        Assert.Equal(RingSize, pool.ArrayLength);

        RunShortFlows(h, backend, count: 60 * concurrency, concurrency);

        Assert.Equal(60 * concurrency, h.Counters[Counter.FlowsClosed]);
        Assert.Equal(2 * concurrency, pool.Created);
        Assert.Equal(2 * 60 * concurrency, pool.Rented);
        Assert.Equal(0, pool.Outstanding);
        Assert.Equal(2 * concurrency, pool.Pooled);
        Assert.Equal(0, h.Table.BufferedBytes);
    }

    /// <summary>
    /// The owner thread's allocations over 200 sequential flows, pooled and (as the baseline in the same run)
    /// with a pool that keeps nothing. Without pooling every flow allocates its two 256 KiB rings here; pooled,
    /// what remains is the flow's own objects (about 6 KB a flow when this was written, ~1/90 of the rings).
    /// </summary>
    [Fact]
    public void Two_hundred_sequential_short_flows_allocate_far_less_than_their_ring_buffers_on_the_owner_thread()
    {
        const int Flows = 200;
        const long Unpooled = Flows * 2L * RingSize;

        long pooled = OwnerThreadBytes(Options(), Flows);
        long baseline = OwnerThreadBytes(Options(ringPoolBytes: 0, decommit: false), Flows);

        Assert.True(baseline >= Unpooled, $"baseline {baseline} B: the rings are no longer allocated on the owner thread?");
        Assert.True(pooled < Unpooled / 20, $"200 pooled flows allocated {pooled} B on the owner thread (unpooled rings alone: {Unpooled} B)");
    }

    private static long OwnerThreadBytes(FlowTableOptions options, int flows)
    {
        using var backend = new LoopbackBackend();
        using var h = new SpliceHarness(options);
        RunShortFlows(h, backend, count: 5, concurrency: 1); // warm up (JIT, first arrays)
        long before = GC.GetAllocatedBytesForCurrentThread();
        RunShortFlows(h, backend, flows, concurrency: 1);
        return GC.GetAllocatedBytesForCurrentThread() - before;
    }

    [Fact]
    public void A_flow_in_time_wait_has_given_its_rings_back_while_it_stays_in_the_table()
    {
        using var backend = new LoopbackBackend();
        using var h = new SpliceHarness(Options());
        var client = new TestClient();
        Flow flow = h.Open(backend.EndPoint, client);
        h.SendData(flow, client, s_request);
        using Socket server = backend.Accept();
        Assert.True(h.RunUntil(() => h.Counters[Counter.BytesToBackend] == s_request.Length, clients: (flow, client)));
        LoopbackBackend.ReadExactly(server, s_request.Length);

        // The backend answers and closes first (HTTP/1.0 style): our FIN goes out and is acknowledged, then
        // the client's FIN puts the endpoint into TIME-WAIT.
        server.Send(s_response);
        server.Shutdown(SocketShutdown.Send);
        Assert.True(h.RunUntil(() => flow.Endpoint.State == TcpState.FinWait2, clients: (flow, client)));
        h.SendFin(flow, client);
        Assert.True(h.RunUntil(() => flow.Endpoint.State == TcpState.TimeWait, clients: (flow, client)));

        Assert.Equal(1, h.Table.Count);
        Assert.Equal(0, h.Table.BufferPool.Outstanding);
        Assert.Equal(2, h.Table.BufferPool.Pooled);
        Assert.Equal(s_response, client.Received.ToArray());
    }

    [Fact]
    public void Disposing_the_table_returns_the_rings_of_flows_still_open()
    {
        using var backend = new LoopbackBackend();
        var h = new SpliceHarness(Options());
        var clients = new List<(Flow, TestClient)>();
        for (int i = 0; i < 3; i++)
        {
            var client = new TestClient();
            Flow flow = h.Open(backend.EndPoint, client);
            h.SendData(flow, client, s_request);
            clients.Add((flow, client));
        }

        Assert.Equal(6, h.Table.BufferPool.Outstanding);
        h.Dispose();

        Assert.Equal(0, h.Table.BufferPool.Outstanding);
        foreach ((Flow flow, _) in clients)
        {
            Assert.Equal(TcpState.Closed, flow.Endpoint.State);
            Assert.Equal(0, flow.Endpoint.ReceiveAvailable);
        }
    }

    [Fact]
    public void The_pool_keeps_at_most_ring_pool_bytes_and_never_more_than_the_total_buffer_cap()
    {
        Assert.Equal(128, new FlowTableOptions().MaxPooledRings);    // 32 MiB of 256 KiB rings
        Assert.Equal(8, new FlowTableOptions { RingPoolBytes = 2 * 1024 * 1024 }.MaxPooledRings);
        Assert.Equal(0, new FlowTableOptions { RingPoolBytes = 0 }.MaxPooledRings);
        var tight = new FlowTableOptions { MaxBufferedBytesTotal = new FlowTableOptions().WorstCaseBytesPerFlow + 1000 };
        Assert.Equal((int)(tight.MaxBufferedBytesTotal / RingSize), tight.MaxPooledRings);
        Assert.Throws<ArgumentOutOfRangeException>(() => new FlowTableOptions { RingPoolBytes = -1 }.Validate());

        using var h = new SpliceHarness(new FlowTableOptions { RingPoolBytes = 4 * RingSize });
        Assert.Equal(4, h.Table.BufferPool.MaxPooled);
    }
}
