using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using CookieProxy.Diagnostics;
using CookieProxy.Host.Backend;
using CookieProxy.Host.Flows;
using CookieProxy.ProxyProtocol;
using CookieProxy.Tcp;
using CookieProxy.Tests.ProxyProtocol;

namespace CookieProxy.Tests.Backend;

[Collection(CookieProxy.Tests.Support.SerialCollection.Name)]
public class BackendSpliceTests
{
    private static FlowTableOptions Options(ProxyProtocolVersion proxy = ProxyProtocolVersion.None, BackendConnector? connector = null,
        TimeSpan? connectTimeout = null, int maxFlows = 64, long? totalBytes = null) => new()
    {
        MaxFlows = maxFlows,
        MaxFlowsPerSource = int.MaxValue,    // every harness client has the same source address
        MaxBufferedBytesTotal = totalBytes ?? 1L << 30,
        Backend = new BackendOptions
        {
            ProxyProtocol = proxy,
            Connector = connector,
            ConnectTimeout = connectTimeout ?? TimeSpan.FromSeconds(3),
        },
    };

    private static readonly byte[] s_request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray();

    [Theory]
    [InlineData(ProxyProtocolVersion.V1)]
    [InlineData(ProxyProtocolVersion.V2)]
    public void Proxy_header_reaches_the_backend_before_client_bytes_sent_during_connect(ProxyProtocolVersion version)
    {
        using var backend = new LoopbackBackend();
        using var h = new SpliceHarness(Options(version));
        var client = new TestClient();
        Flow flow = h.Open(backend.EndPoint, client);

        // The client sends its request at once, most likely before the connect completes: the endpoint
        // takes it (real window, not zero) and holds it.
        Assert.Equal(s_request.Length, h.SendData(flow, client, s_request));

        using Socket server = backend.Accept();
        Assert.True(h.RunUntil(() => h.Counters[Counter.BytesToBackend] == s_request.Length));

        int headerLength = ProxyHeaderWriter.Write(version, new byte[ProxyHeaderWriter.V1MaxLength], flow.Key);
        byte[] received = LoopbackBackend.ReadExactly(server, headerLength + s_request.Length);
        Assert.Equal(ProxyParseResult.Success, ProxyHeaderParser.TryParse(received, out ProxyHeader header));
        Assert.Equal(headerLength, header.Length);
        Assert.Equal(flow.Key.SrcAddr, header.SourceAddress);
        Assert.Equal(flow.Key.DstAddr, header.DestinationAddress);
        Assert.Equal(flow.Key.SrcPort, header.SourcePort);
        Assert.Equal(flow.Key.DstPort, header.DestinationPort);
        Assert.Equal(s_request, received[headerLength..]);
    }

    [Fact]
    public void Server_speaks_first_banner_reaches_the_client_before_it_sends_anything()
    {
        using var backend = new LoopbackBackend();
        using var h = new SpliceHarness(Options(ProxyProtocolVersion.V1));
        var client = new TestClient();
        Flow flow = h.Open(backend.EndPoint, client);

        using Socket server = backend.Accept();
        byte[] header = new byte[ProxyHeaderWriter.V1MaxLength];
        int n = 0;
        while (ProxyHeaderParser.TryParse(header.AsSpan(0, n), out _) == ProxyParseResult.NeedMoreData)
        {
            n += server.Receive(header, n, 1, SocketFlags.None);
        }
        byte[] banner = "220 smtp.example ESMTP\r\n"u8.ToArray();
        server.Send(banner);

        Assert.True(h.RunUntil(() => client.Received.Length == banner.Length, clients: (flow, client)));
        Assert.Equal(banner, client.Received.ToArray());
        Assert.Equal(banner.Length, h.Counters[Counter.BytesToClient]);
    }

    [Fact]
    public void Refused_backend_resets_the_client_and_counts_a_connect_failure()
    {
        int port;
        using (var probe = new LoopbackBackend())
        {
            port = probe.EndPoint.Port;    // closed again: connecting there is refused
        }
        using var h = new SpliceHarness(Options());
        var client = new TestClient();
        Flow flow = h.Open(new IPEndPoint(IPAddress.Loopback, port), client);
        h.SendData(flow, client, s_request);

        Assert.True(h.RunUntil(() => h.Table.Count == 0));
        Assert.True(client.GotRst);
        Assert.Equal(BackendCloseReason.ConnectRefused, flow.Backend.CloseReason);
        Assert.Equal(SocketError.ConnectionRefused, flow.Backend.SocketError);
        Assert.Equal(1, h.Counters[Counter.BackendConnectFailed]);
        Assert.Equal(0, h.Counters[Counter.BackendResets]);
        Assert.Equal(1, h.Counters[Counter.RstSent]);
        Assert.Equal(1, h.Counters[Counter.FlowsClosed]);
        Assert.Equal(0, h.Counters[Counter.FlowsActive]);
    }

    [Fact]
    public void Connect_that_never_completes_times_out_and_resets_the_client()
    {
        // A connect that never completes (as to a silent host), without sending anywhere.
        BackendConnector never = static (_, _, ct) => new ValueTask(Task.Delay(Timeout.Infinite, ct));
        using var h = new SpliceHarness(Options(connector: never, connectTimeout: TimeSpan.FromMilliseconds(200)));
        var client = new TestClient();
        Flow flow = h.Open(new IPEndPoint(IPAddress.Loopback, 9), client);
        Assert.Equal(BackendState.Connecting, flow.Backend.State);

        Assert.True(h.RunUntil(() => h.Table.Count == 0));
        Assert.True(client.GotRst);
        Assert.Equal(BackendCloseReason.ConnectTimeout, flow.Backend.CloseReason);
        Assert.Equal(1, h.Counters[Counter.BackendConnectFailed]);
    }

    [Fact]
    public void Backend_eof_becomes_a_client_fin_and_the_half_close_still_carries_client_bytes()
    {
        using var backend = new LoopbackBackend();
        using var h = new SpliceHarness(Options());
        var client = new TestClient();
        Flow flow = h.Open(backend.EndPoint, client);
        using Socket server = backend.Accept();

        server.Send("bye"u8);
        server.Shutdown(SocketShutdown.Send);
        Assert.True(h.RunUntil(() => client.GotFin, clients: (flow, client)));
        Assert.Equal("bye", Encoding.ASCII.GetString(client.Received.ToArray()));
        Assert.True(flow.Backend.InputEnded);

        // Half-closed: the client may keep sending (RFC 9293 3.6).
        h.SendData(flow, client, s_request);
        Assert.True(h.RunUntil(() => h.Counters[Counter.BytesToBackend] == s_request.Length, clients: (flow, client)));
        Assert.Equal(s_request, LoopbackBackend.ReadExactly(server, s_request.Length));

        // Client FIN: FIN to the backend, then everything closes gracefully and the flow is removed.
        h.SendFin(flow, client);
        Assert.True(h.RunUntil(() => h.Table.Count == 0, clients: (flow, client)));
        Assert.Equal(0, server.Receive(new byte[1]));
        Assert.Equal(BackendCloseReason.Graceful, flow.Backend.CloseReason);
        Assert.Equal(TcpCloseReason.Graceful, flow.Endpoint.CloseReason);
        Assert.False(client.GotRst);
        Assert.Equal(0, h.Counters[Counter.RstSent]);
        Assert.Equal(1, h.Counters[Counter.FlowsClosed]);
    }

    [Fact]
    public void Client_fin_becomes_a_backend_fin_after_its_data()
    {
        using var backend = new LoopbackBackend();
        using var h = new SpliceHarness(Options());
        var client = new TestClient();
        Flow flow = h.Open(backend.EndPoint, client);
        h.SendData(flow, client, s_request);
        h.SendFin(flow, client);
        using Socket server = backend.Accept();

        Assert.True(h.RunUntil(() => flow.Backend.OutputShutDown, clients: (flow, client)));
        Assert.Equal(s_request, LoopbackBackend.ReadExactly(server, s_request.Length));
        Assert.Equal(0, server.Receive(new byte[1]));    // FIN after the data

        server.Send("HTTP/1.1 200 OK\r\n\r\n"u8);
        server.Shutdown(SocketShutdown.Both);
        Assert.True(h.RunUntil(() => h.Table.Count == 0, clients: (flow, client)));
        Assert.True(client.GotFin);
        Assert.Equal(BackendCloseReason.Graceful, flow.Backend.CloseReason);
    }

    [Fact]
    public void Backend_reset_is_mirrored_as_an_abort_towards_the_client()
    {
        using var backend = new LoopbackBackend();
        using var h = new SpliceHarness(Options());
        var client = new TestClient();
        Flow flow = h.Open(backend.EndPoint, client);
        Socket server = backend.Accept();
        Assert.True(h.RunUntil(() => flow.Backend.State == BackendState.Connected));

        server.LingerState = new LingerOption(true, 0);
        server.Close();    // RST

        Assert.True(h.RunUntil(() => h.Table.Count == 0, clients: (flow, client)));
        Assert.True(client.GotRst);
        Assert.Equal(BackendCloseReason.Reset, flow.Backend.CloseReason);
        Assert.Equal(TcpCloseReason.Aborted, flow.Endpoint.CloseReason);
        Assert.Equal(1, h.Counters[Counter.RstSent]);
        Assert.Equal(0, h.Counters[Counter.BackendConnectFailed]);
        Assert.Equal(1, h.Counters[Counter.BackendResets]);
    }

    [Fact]
    public void Client_reset_resets_the_backend()
    {
        using var backend = new LoopbackBackend();
        using var h = new SpliceHarness(Options());
        var client = new TestClient();
        Flow flow = h.Open(backend.EndPoint, client);
        using Socket server = backend.Accept();
        Assert.True(h.RunUntil(() => flow.Backend.State == BackendState.Connected));

        h.SendRst(flow, client);

        Assert.Equal(0, h.Table.Count);
        Assert.Equal(BackendCloseReason.Aborted, flow.Backend.CloseReason);
        SocketException e = Assert.Throws<SocketException>(() => server.Receive(new byte[16]));
        Assert.Equal(SocketError.ConnectionReset, e.SocketErrorCode);
    }

    [Fact]
    public async Task A_backend_that_does_not_read_stops_the_client_within_the_thresholds()
    {
        using var backend = new LoopbackBackend(receiveBufferSize: 4096);
        var options = Options();
        using var h = new SpliceHarness(options);
        var client = new TestClient();
        Flow flow = h.Open(backend.EndPoint, client);
        using Socket server = backend.Accept();
        server.ReceiveBufferSize = 4096;
        Assert.True(h.RunUntil(() => flow.Backend.State == BackendState.Connected));

        byte[] data = RandomNumberGenerator.GetBytes(8 * 1024 * 1024);
        long maxOutputPending = 0, maxBuffered = 0;
        for (int i = 0; i < 60; i++)
        {
            h.SendStream(flow, client, data);
            h.Turn(5, (flow, client));
            maxOutputPending = Math.Max(maxOutputPending, flow.Backend.OutputPending);
            maxBuffered = Math.Max(maxBuffered, flow.BufferedBytes(options.Tcp));
        }

        // The client is held back by the window: only the kernel's socket buffers (which Linux autotunes, so
        // their share varies from run to run) and our bounded buffers hold what it sent.
        Assert.True(client.StreamSent < data.Length / 2, $"client sent {client.StreamSent} bytes into a backend that does not read");
        Assert.InRange(maxOutputPending, 0, options.Backend.OutputPauseThreshold);
        Assert.True(maxBuffered <= options.WorstCaseBytesPerFlow, $"flow buffered {maxBuffered}");

        // Once the backend reads, everything arrives, in order.
        Task<byte[]> reader = LoopbackBackend.OnThread(() => LoopbackBackend.ReadExactly(server, data.Length));
        Assert.True(h.RunUntil(() => h.SendStream(flow, client, data) == data.Length && reader.IsCompleted,
            timeoutMs: 20_000, clients: (flow, client)));
        Assert.Equal(data, await reader);
        Assert.Equal(data.Length, h.Counters[Counter.BytesToBackend]);
    }

    [Fact]
    public async Task A_client_that_does_not_ack_stops_the_backend_within_the_thresholds()
    {
        using var backend = new LoopbackBackend();
        var options = Options();
        using var h = new SpliceHarness(options);
        var client = new TestClient { AutoAck = false };
        Flow flow = h.Open(backend.EndPoint, client);
        using Socket server = backend.Accept();
        server.SendBufferSize = 4096;

        byte[] data = RandomNumberGenerator.GetBytes(8 * 1024 * 1024);
        Task<int> writer = LoopbackBackend.OnThread(() =>
        {
            server.SendTimeout = 20_000;
            return server.Send(data);
        });

        for (int i = 0; i < 60; i++)
        {
            h.Turn(5, (flow, client));
        }
        // Backend bytes go straight into the endpoint's send buffer: once it is full the rest waits in the
        // backend's socket, the proxy holds nothing more and the writer blocks.
        Assert.False(writer.IsCompleted);
        Assert.Equal(0, flow.Endpoint.SendBufferFree);
        Assert.Equal(options.Tcp.SendBufferSize, flow.BufferedBytes(options.Tcp));
        Assert.True(client.Received.Length <= options.Tcp.SendBufferSize);

        client.AutoAck = true;
        Assert.True(h.RunUntil(() => client.Received.Length == data.Length, timeoutMs: 20_000, clients: (flow, client)));
        await writer.WaitAsync(TimeSpan.FromSeconds(5));
        Assert.Equal(data, client.Received.ToArray());
        Assert.Equal(data.Length, h.Counters[Counter.BytesToClient]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_bulk_download_grows_the_send_buffer_only_within_the_tables_memory_budget(bool tightBudget)
    {
        using var backend = new LoopbackBackend();
        // Tight: the total cap holds exactly one worst-case flow, so growing would leave no room for the next one.
        long? total = tightBudget ? Options().WorstCaseBytesPerFlow : null;
        var options = Options(totalBytes: total);
        using var h = new SpliceHarness(options);
        var client = new TestClient();
        Flow flow = h.Open(backend.EndPoint, client);
        using Socket server = backend.Accept();

        byte[] data = RandomNumberGenerator.GetBytes(8 * 1024 * 1024);
        Task<int> writer = LoopbackBackend.OnThread(() =>
        {
            server.SendTimeout = 20_000;
            return server.Send(data);
        });
        long maxCapacity = 0;
        Assert.True(h.RunUntil(() =>
        {
            maxCapacity = Math.Max(maxCapacity, flow.Endpoint.SendBufferCapacity);
            Assert.True(h.Table.BufferedBytes <= options.MaxBufferedBytesTotal);
            return client.Received.Length == data.Length;
        }, timeoutMs: 20_000, clients: (flow, client)));
        await writer.WaitAsync(TimeSpan.FromSeconds(5));

        Assert.Equal(data, client.Received.ToArray());
        if (tightBudget)
        {
            // Growth stops where the flow's footprint (its receive window included) reaches the growth cap, which
            // keeps the newcomers' reserve free.
            Assert.InRange(maxCapacity, options.Tcp.SendBufferSize,
                options.MaxBufferedBytesTotal - options.NewFlowReserveBytes - options.InitialFlowBytes);
        }
        else
        {
            Assert.InRange(maxCapacity, options.Tcp.SendBufferSize + 1, options.Tcp.MaxSendBufferSize);
        }
    }

    [Fact]
    public void The_flow_after_max_flows_is_refused_as_flow_table_full()
    {
        using var backend = new LoopbackBackend();
        using var h = new SpliceHarness(Options(maxFlows: 2));
        h.Open(backend.EndPoint, new TestClient());
        h.Open(backend.EndPoint, new TestClient());

        Assert.Equal(DropReason.FlowTableFull, h.TryOpen(backend.EndPoint, new TestClient(), out Flow? third));
        Assert.Null(third);
        Assert.Equal(2, h.Table.Count);
        Assert.Equal(1, h.Counters.Drops(DropReason.FlowTableFull));
        Assert.Equal(2, h.Counters[Counter.FlowsCreated]);
    }

    [Fact]
    public void A_new_flow_is_refused_when_the_flows_footprint_leaves_no_room_for_its_first_window()
    {
        BackendConnector never = static (_, _, ct) => new ValueTask(Task.Delay(Timeout.Infinite, ct));
        var tcp = new TcpConfig { ReceiveBufferSize = 64 * 1024, SendBufferSize = 64 * 1024 };
        var options = new FlowTableOptions
        {
            MaxFlowsPerSource = int.MaxValue,
            EvictIdleMs = 0,    // never evict: refuse
            Tcp = tcp,
            Backend = new BackendOptions { Connector = never },
            MaxBufferedBytesTotal = new FlowTableOptions { Tcp = tcp }.WorstCaseBytesPerFlow,    // the smallest cap accepted
        };
        using var h = new SpliceHarness(options);

        // Each new flow holds the 64 KiB window its SYN+ACK promised, before it sends a byte; data inside that window
        // costs nothing more.
        var first = new TestClient();
        Flow flow = h.Open(new IPEndPoint(IPAddress.Loopback, 9), first);
        Assert.Equal(options.InitialFlowBytes, h.Table.BufferedBytes);
        h.SendData(flow, first, new byte[4000]);
        Assert.InRange(h.Table.BufferedBytes, options.InitialFlowBytes, tcp.ReceiveBufferSize);    // the window may open to the whole ring

        int admitted = 1;
        DropReason refused;
        while ((refused = h.TryOpen(new IPEndPoint(IPAddress.Loopback, 9), new TestClient(), out _)) == DropReason.None)
        {
            admitted++;
        }

        Assert.Equal(DropReason.BufferLimit, refused);
        Assert.Equal(3, admitted);    // 208 KiB: room for three 64 KiB first windows, not for a fourth
        Assert.Equal(1, h.Counters.Drops(DropReason.BufferLimit));
        Assert.True(h.Table.BufferedBytes <= options.MaxBufferedBytesTotal);
    }

    [Fact]
    public void Options_whose_flow_buffers_exceed_the_per_flow_cap_are_rejected()
    {
        var options = new FlowTableOptions { MaxBufferedBytesPerFlow = 100_000 };
        Assert.Throws<ArgumentException>(() => new FlowTable(options, new ProxyCounters(), () => { }));
    }

    [Fact]
    public void Many_backend_events_wake_the_owner_far_less_often_than_once_per_event()
    {
        using var backend = new LoopbackBackend();
        using var h = new SpliceHarness(Options());
        var client = new TestClient();
        Flow flow = h.Open(backend.EndPoint, client);
        using Socket server = backend.Accept();
        Assert.True(h.RunUntil(() => flow.Backend.State == BackendState.Connected));
        int wakesBefore = h.Wakes;

        // Without the owner draining, any number of events cost one queued entry and one wake.
        for (int i = 0; i < 50; i++)
        {
            server.Send("x"u8);
        }
        Thread.Sleep(200);
        Assert.Equal(1, h.Wakes - wakesBefore);
        Assert.True(h.RunUntil(() => client.Received.Length == 50, clients: (flow, client)));
    }
}
