using System.Net;
using System.Net.Sockets;
using CookieProxy.Diagnostics;
using CookieProxy.Host.Backend;
using CookieProxy.Host.Flows;
using CookieProxy.Tcp;

namespace CookieProxy.Tests.Backend;

[Collection(CookieProxy.Tests.Support.SerialCollection.Name)]
public class FlowMechanicsTests
{
    private static Flow NewUnstartedFlow(FlowWorkQueue queue, ushort port)
    {
        var client = new TestClient();
        var endpoint = new TcpEndpoint(new TcpConfig(), client.Handshake, 0);
        return new Flow(queue, new ProxyCounters(), SpliceHarness.KeyFor(port), endpoint,
            new IPEndPoint(IPAddress.Loopback, 9), new BackendOptions(), client, 0);
    }

    [Fact]
    public void Timer_heap_pops_due_flows_in_deadline_order_after_moves_and_removals()
    {
        var queue = new FlowWorkQueue(() => { });
        var heap = new FlowTimerHeap();
        var random = new Random(7);
        var flows = new List<Flow>();
        var deadlines = new Dictionary<Flow, long>();
        for (int i = 0; i < 200; i++)
        {
            Flow f = NewUnstartedFlow(queue, (ushort)(1000 + i));
            flows.Add(f);
            long d = random.Next(1, 10_000);
            heap.Set(f, d);
            deadlines[f] = d;
        }
        for (int i = 0; i < 300; i++)
        {
            Flow f = flows[random.Next(flows.Count)];
            if (random.Next(4) == 0)
            {
                heap.Set(f, long.MaxValue);    // no timer: leaves the heap
                deadlines.Remove(f);
            }
            else
            {
                long d = random.Next(1, 10_000);
                heap.Set(f, d);
                deadlines[f] = d;
            }
        }
        Assert.Equal(deadlines.Count, heap.Count);

        Assert.False(heap.TryPopDue(0, out _));
        long last = 0;
        int popped = 0;
        while (heap.TryPopDue(5_000, out Flow f))
        {
            Assert.True(deadlines[f] >= last);
            Assert.True(deadlines[f] <= 5_000);
            last = deadlines[f];
            popped++;
        }
        Assert.Equal(deadlines.Values.Count(d => d <= 5_000), popped);
        Assert.True(heap.MinDeadlineMs > 5_000);

        foreach (Flow f in flows)
        {
            f.Backend.Dispose();
        }
    }

    [Fact]
    public void A_flow_is_queued_once_however_many_events_until_the_owner_takes_it()
    {
        int wakes = 0;
        var queue = new FlowWorkQueue(() => Interlocked.Increment(ref wakes));
        Flow a = NewUnstartedFlow(queue, 1);
        Flow b = NewUnstartedFlow(queue, 2);

        queue.Enqueue(a);
        queue.Enqueue(a);
        queue.Enqueue(b);
        Assert.Equal(1, wakes);

        queue.BeginDrain();
        Assert.True(queue.TryDequeue(out Flow first));
        Assert.Same(a, first);
        queue.Enqueue(a);    // an event while the owner pumps a: queued again, after b
        Assert.Equal(2, wakes);
        Assert.True(queue.TryDequeue(out Flow second));
        Assert.Same(b, second);
        Assert.True(queue.TryDequeue(out Flow third));
        Assert.Same(a, third);
        Assert.False(queue.TryDequeue(out _));

        a.Backend.Dispose();
        b.Backend.Dispose();
    }

    [Fact]
    public async Task Owner_thread_moves_client_bytes_to_the_backend_without_allocating_per_segment()
    {
        using var backend = new LoopbackBackend();
        using var h = new SpliceHarness();
        var client = new TestClient();
        Flow flow = h.Open(backend.EndPoint, client);
        using Socket server = backend.Accept();
        Assert.True(h.RunUntil(() => flow.Backend.State == BackendState.Connected));

        const int Total = 6 * 1024 * 1024;
        Task<long> drain = LoopbackBackend.OnThread(() =>
        {
            byte[] sink = new byte[64 * 1024];
            long have = 0;
            while (have < Total)
            {
                int n = server.Receive(sink);
                if (n == 0)
                {
                    break;
                }
                have += n;
            }
            return have;
        });

        byte[] stream = new byte[Total];
        bool measuring = false;
        long allocatedAtMeasureStart = 0;
        int sentAtMeasureStart = 0;
        var limit = System.Diagnostics.Stopwatch.StartNew();
        while (client.StreamAcked < Total && limit.ElapsedMilliseconds < 20_000)
        {
            if (!measuring && client.StreamSent >= Total / 3)
            {
                measuring = true;    // warmed up: pools, queue segments, JIT tiers
                sentAtMeasureStart = client.StreamSent;
                allocatedAtMeasureStart = GC.GetAllocatedBytesForCurrentThread();
            }
            int before = client.StreamSent;
            // A growing prefix: the backend socket may take everything at once (the owner sends straight into
            // it), and the measurement needs many rounds, not one call that sends the whole stream.
            h.SendStream(flow, client, stream.AsSpan(0, Math.Min(Total, client.StreamAcked + (64 * 1024))));
            if (client.StreamSent == before)
            {
                h.Turn(1);
            }
        }
        long allocated = GC.GetAllocatedBytesForCurrentThread() - allocatedAtMeasureStart;
        long segments = (client.StreamSent - sentAtMeasureStart) / TestClient.Mss;
        Assert.Equal(Total, client.StreamAcked);
        Assert.True(h.RunUntil(() => drain.IsCompleted, timeoutMs: 20_000));

        // A few pool/queue refills are tolerated; a per-segment allocation would be > segments * 24 bytes.
        Assert.True(segments > 1000, $"only {segments} segments measured");
        Assert.True(allocated < segments * 8, $"{allocated} bytes allocated over {segments} segments");
        Assert.Equal(Total, await drain);
    }

    [Fact]
    public async Task A_bulk_download_on_a_warm_pool_allocates_nothing_per_segment_its_grown_send_buffer_included()
    {
        using var backend = new LoopbackBackend();
        using var h = new SpliceHarness();
        const int Total = 8 * 1024 * 1024;
        byte[] data = new byte[Total];
        long allocated = 0;
        int grownTo = 0;
        // The first download warms the pool (its grown send buffers go back there); the second is measured.
        for (int round = 0; round < 2; round++)
        {
            var client = new TestClient(irs: 1000 + (uint)round);
            client.Received.Capacity = Total;    // the test client's own buffer must not grow while measuring
            Flow flow = h.Open(backend.EndPoint, client);
            using Socket server = backend.Accept();
            Assert.True(h.RunUntil(() => flow.Backend.State == BackendState.Connected, clients: (flow, client)));
            Task<int> writer = LoopbackBackend.OnThread(() =>
            {
                server.SendTimeout = 20_000;
                return server.Send(data);
            });

            (Flow, TestClient)[] clients = [(flow, client)];    // one params array, not one per turn
            var limit = System.Diagnostics.Stopwatch.StartNew();
            long start = GC.GetAllocatedBytesForCurrentThread();
            while (client.Received.Length < Total && limit.ElapsedMilliseconds < 20_000)
            {
                grownTo = Math.Max(grownTo, flow.Endpoint.SendBufferCapacity);
                h.Turn(1, clients);
            }
            allocated = GC.GetAllocatedBytesForCurrentThread() - start;
            Assert.Equal(Total, client.Received.Length);
            await writer.WaitAsync(TimeSpan.FromSeconds(5));
            h.SendRst(flow, client);    // the flow ends: its rings, the grown send buffer too, go back to the pool
            Assert.Equal(0, h.Table.Count);
        }

        long segments = Total / TestClient.Mss;
        Assert.True(grownTo > new TcpConfig().SendBufferSize, $"the send buffer never grew ({grownTo})");
        Assert.True(h.Table.BufferPool.GrownCreated > 0);
        // A per-segment allocation would be > segments * 24 bytes; the grown arrays alone would be megabytes.
        Assert.True(allocated < segments * 8, $"{allocated} bytes allocated over {segments} segments");
    }
}
