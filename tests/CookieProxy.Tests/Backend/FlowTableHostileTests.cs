using System.Net;
using System.Net.Sockets;
using CookieProxy.Diagnostics;
using CookieProxy.Host.Backend;
using CookieProxy.Host.Flows;
using CookieProxy.Tcp;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Backend;

/// <summary>
/// Issue 12: the flow table against clients and backends that misbehave. Timeouts free the slot and the backend
/// socket; a full table makes room by evicting idle flows oldest first; one source holds at most its share; a
/// silent backend is reset at the first-data time; our own bugs in a flow are counted and reset only that flow.
/// </summary>
[Collection(CookieProxy.Tests.Support.SerialCollection.Name)]
public class FlowTableHostileTests
{
    private static readonly byte[] s_request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray();

    private static FlowTableOptions Options(int maxFlows = 64, int perSource = 0, long evictIdleMs = 2_000, long idleTimeoutMs = 300_000,
        long firstDataTimeoutMs = 0, BackendConnector? connector = null, long initialRtoMs = 1_000) => new()
    {
        MaxFlows = maxFlows,
        MaxFlowsPerSource = perSource,
        EvictIdleMs = evictIdleMs,
        Tcp = new TcpConfig { IdleTimeoutMs = idleTimeoutMs, FirstDataTimeoutMs = firstDataTimeoutMs, InitialRtoMs = initialRtoMs, MinRtoMs = 50 },
        Backend = new BackendOptions { Connector = connector },
    };

    /// <summary>True when the peer of <paramref name="server"/> has closed or reset the connection (unread bytes are skipped).</summary>
    private static bool PeerClosed(Socket server)
    {
        var buffer = new byte[4096];
        try
        {
            while (server.Poll(100_000, SelectMode.SelectRead))
            {
                if (server.Receive(buffer) == 0)
                {
                    return true;
                }
            }
            return false;
        }
        catch (SocketException)
        {
            return true;
        }
    }

    [Fact]
    public void An_idle_timeout_frees_the_slot_and_closes_the_backend_socket_of_a_backend_that_never_closes()
    {
        using var backend = new LoopbackBackend();
        using var h = new SpliceHarness(Options(idleTimeoutMs: 300));
        var client = new TestClient();
        Flow flow = h.Open(backend.EndPoint, client);
        using Socket server = backend.Accept();
        Assert.True(h.RunUntil(() => flow.Backend.State == BackendState.Connected));

        // The backend neither sends nor closes: only the endpoint's idle timer can end this flow.
        Assert.True(h.RunUntil(() => h.Table.Count == 0, timeoutMs: 5_000));
        Assert.True(client.GotRst);
        Assert.Equal(TcpCloseReason.IdleTimeout, flow.Endpoint.CloseReason);
        Assert.Equal(BackendCloseReason.Aborted, flow.Backend.CloseReason);
        Assert.Equal(0, h.Counters[Counter.FlowsActive]);
        Assert.Equal(0, h.Table.BufferPool.Outstanding);
        Assert.True(PeerClosed(server), "the backend socket is still open after the idle timeout");
    }

    [Fact]
    public void A_backend_that_accepts_and_never_answers_is_reset_at_the_first_data_timeout()
    {
        using var backend = new LoopbackBackend();
        using var h = new SpliceHarness(Options(firstDataTimeoutMs: 300));
        var client = new TestClient();
        Flow flow = h.Open(backend.EndPoint, client);
        using Socket server = backend.Accept();
        h.SendData(flow, client, s_request);
        Assert.True(h.RunUntil(() => h.Counters[Counter.BytesToBackend] == s_request.Length, clients: (flow, client)));

        Assert.True(h.RunUntil(() => h.Table.Count == 0, timeoutMs: 5_000, clients: (flow, client)));
        Assert.True(client.GotRst);
        Assert.False(client.GotFin);
        Assert.Equal(1, h.Counters[Counter.BackendTimeouts]);
        Assert.True(PeerClosed(server));
    }

    [Fact]
    public void A_backend_that_answers_within_the_first_data_time_is_left_alone()
    {
        using var backend = new LoopbackBackend();
        using var h = new SpliceHarness(Options(firstDataTimeoutMs: 300));
        var client = new TestClient();
        Flow flow = h.Open(backend.EndPoint, client);
        using Socket server = backend.Accept();
        h.SendData(flow, client, s_request);
        Assert.True(h.RunUntil(() => h.Counters[Counter.BytesToBackend] == s_request.Length, clients: (flow, client)));
        server.Send("HTTP/1.1 200 OK\r\n"u8);

        h.RunFor(600, (flow, client));
        Assert.Equal(1, h.Table.Count);
        Assert.False(client.GotRst);
        Assert.Equal(0, h.Counters[Counter.BackendTimeouts]);
    }

    [Fact]
    public void Retransmissions_are_counted_while_the_flow_is_still_open()
    {
        using var backend = new LoopbackBackend();
        using var h = new SpliceHarness(Options(initialRtoMs: 100));
        var client = new TestClient { AutoAck = false };    // never acknowledges: the endpoint retransmits
        Flow flow = h.Open(backend.EndPoint, client);
        using Socket server = backend.Accept();
        Assert.True(h.RunUntil(() => flow.Backend.State == BackendState.Connected));
        server.Send(new byte[1000]);

        Assert.True(h.RunUntil(() => h.Counters[Counter.Retransmits] > 0, timeoutMs: 5_000, clients: (flow, client)));
        Assert.Equal(1, h.Table.Count);
        Assert.Equal(flow.Endpoint.Retransmissions, h.Counters[Counter.Retransmits]);
    }

    [Fact]
    public void A_full_table_evicts_its_least_recently_active_flow_for_a_new_client()
    {
        using var backend = new LoopbackBackend();
        using var h = new SpliceHarness(Options(maxFlows: 3, evictIdleMs: 100));
        var idle = new TestClient();
        Flow idleFlow = h.Open(backend.EndPoint, idle, source: "198.18.1.1");
        var busy = new TestClient();
        Flow busyFlow = h.Open(backend.EndPoint, busy, source: "198.18.1.2");
        var second = new TestClient();
        h.Open(backend.EndPoint, second, source: "198.18.1.3");
        using Socket s1 = backend.Accept();
        using Socket s2 = backend.Accept();
        using Socket s3 = backend.Accept();
        Thread.Sleep(150);

        // The "busy" client moves bytes, so it is the most recently active, not the oldest.
        h.SendData(busyFlow, busy, s_request);
        Assert.True(h.RunUntil(() => h.Counters[Counter.BytesToBackend] == s_request.Length, clients: (busyFlow, busy)));

        var newcomer = new TestClient();
        Assert.Equal(DropReason.None, h.TryOpen(backend.EndPoint, newcomer, out Flow? fresh, source: "198.18.1.4"));
        Assert.NotNull(fresh);
        Assert.True(idle.GotRst, "the oldest idle flow was not the one evicted");
        Assert.True(idleFlow.Removed);
        Assert.False(busyFlow.Removed);
        Assert.False(busy.GotRst);
        Assert.Equal(1, h.Counters[Counter.FlowsEvicted]);
        Assert.Equal(3, h.Table.Count);
        Assert.Equal(0, h.Counters.Drops(DropReason.FlowTableFull));
    }

    [Fact]
    public void A_full_table_of_flows_active_just_now_refuses_the_new_client_instead_of_evicting()
    {
        using var backend = new LoopbackBackend();
        using var h = new SpliceHarness(Options(maxFlows: 2, evictIdleMs: 60_000));
        h.Open(backend.EndPoint, new TestClient(), source: "198.18.1.1");
        h.Open(backend.EndPoint, new TestClient(), source: "198.18.1.2");

        Assert.Equal(DropReason.FlowTableFull, h.TryOpen(backend.EndPoint, new TestClient(), out _, source: "198.18.1.3"));
        Assert.Equal(0, h.Counters[Counter.FlowsEvicted]);
        Assert.Equal(1, h.Counters.Drops(DropReason.FlowTableFull));
    }

    [Fact]
    public void One_source_holds_at_most_its_share_of_the_table_and_others_still_get_in()
    {
        using var backend = new LoopbackBackend();
        using var h = new SpliceHarness(Options(maxFlows: 8));    // default share: a quarter, 2 flows
        Assert.Equal(2, h.Table.Options.EffectiveMaxFlowsPerSource);
        h.Open(backend.EndPoint, new TestClient(), source: "198.18.1.9");
        h.Open(backend.EndPoint, new TestClient(), source: "198.18.1.9");

        Assert.Equal(DropReason.SourceFlowLimit, h.TryOpen(backend.EndPoint, new TestClient(), out _, source: "198.18.1.9"));
        Assert.Equal(2, h.Table.FlowsOf(SpliceHarness.KeyFor(1, "198.18.1.9").SrcAddr));
        h.Open(backend.EndPoint, new TestClient(), source: "198.18.1.10");
        Assert.Equal(1, h.Counters.Drops(DropReason.SourceFlowLimit));
        Assert.Equal(3, h.Table.Count);
    }

    [Fact]
    public void A_source_prefix_counts_as_one_source()
    {
        using var backend = new LoopbackBackend();
        var options = new FlowTableOptions { MaxFlows = 64, MaxFlowsPerSource = 2, SourcePrefixV4 = 24 };
        using var h = new SpliceHarness(options);
        h.Open(backend.EndPoint, new TestClient(), source: "198.18.1.1");
        h.Open(backend.EndPoint, new TestClient(), source: "198.18.1.200");

        Assert.Equal(DropReason.SourceFlowLimit, h.TryOpen(backend.EndPoint, new TestClient(), out _, source: "198.18.1.77"));
        h.Open(backend.EndPoint, new TestClient(), source: "198.18.2.1");
    }

    [Fact]
    public void A_closed_flow_gives_its_source_share_back()
    {
        using var backend = new LoopbackBackend();
        using var h = new SpliceHarness(Options(maxFlows: 8, perSource: 1));
        var first = new TestClient();
        Flow flow = h.Open(backend.EndPoint, first, source: "198.18.1.9");
        h.SendRst(flow, first);
        Assert.Equal(0, h.Table.Count);

        h.Open(backend.EndPoint, new TestClient(), source: "198.18.1.9");
    }

    [Fact]
    public void A_bug_in_a_backend_loop_is_logged_with_its_stack_counted_and_resets_only_that_flow()
    {
        var log = new List<string>();
        BackendConnector buggy = static (_, _, _) => throw new InvalidOperationException("injected bug");
        using var backend = new LoopbackBackend();
        using var h = new SpliceHarness(Options(connector: buggy));
        h.Table.FaultLog = (what, e) => log.Add($"{what}: {e}");
        var client = new TestClient();
        Flow flow = h.Open(backend.EndPoint, client);

        Assert.True(h.RunUntil(() => h.Table.Count == 0, clients: (flow, client)));
        Assert.True(client.GotRst);
        Assert.Equal(1, h.Counters[Counter.LoopFaults]);
        string line = Assert.Single(log);
        Assert.Contains("injected bug", line, StringComparison.Ordinal);
        Assert.Contains("   at ", line, StringComparison.Ordinal);    // the stack
        Assert.IsType<InvalidOperationException>(flow.Backend.UnexpectedException);
    }

    [Fact]
    public void A_bug_while_settling_one_flow_resets_that_flow_and_the_table_goes_on()
    {
        var log = new List<string>();
        using var backend = new LoopbackBackend();
        using var h = new SpliceHarness(Options());
        h.Table.FaultLog = (what, e) => log.Add($"{what}: {e}");
        var victim = new TestClient();
        Flow victimFlow = h.Open(backend.EndPoint, victim, source: "198.18.1.1");
        var other = new TestClient();
        Flow otherFlow = h.Open(backend.EndPoint, other, source: "198.18.1.2");

        // The dispatcher throws once for the victim: a stand-in for any bug in pump or dispatch.
        var dispatcher = new ThrowOnceDispatcher { Counters = h.Counters, Victim = victimFlow };
        h.Table.ProcessClientSegment(victimFlow, victim.Segment(TcpFlags.Ack), default, h.NowMs);
        h.Table.ProcessClientSegment(otherFlow, other.Segment(TcpFlags.Ack), default, h.NowMs);
        h.Table.SettleProcessed(h.NowMs, ref dispatcher);

        Assert.True(victimFlow.Removed);
        Assert.True(victim.GotRst);
        Assert.False(otherFlow.Removed);
        Assert.Equal(1, h.Table.Count);
        Assert.Equal(1, h.Counters[Counter.LoopFaults]);
        Assert.Contains("injected dispatch bug", Assert.Single(log), StringComparison.Ordinal);
    }

    private struct ThrowOnceDispatcher : IFlowDispatcher
    {
        public ProxyCounters Counters;
        public Flow Victim;
        public bool Thrown;

        public void Dispatch(Flow flow, long nowMs)
        {
            if (flow == Victim && !Thrown)
            {
                Thrown = true;
                throw new InvalidOperationException("injected dispatch bug");
            }
            var sink = new TestSink((TestClient)flow.ReplyTemplate!, Counters);
            flow.Endpoint.Dispatch(ref sink, nowMs);
        }
    }
}
