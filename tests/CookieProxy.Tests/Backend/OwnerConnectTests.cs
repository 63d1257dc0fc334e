using System.Net;
using System.Net.Sockets;
using CookieProxy.Diagnostics;
using CookieProxy.Host.Backend;
using CookieProxy.Host.Flows;
using CookieProxy.ProxyProtocol;

namespace CookieProxy.Tests.Backend;

/// <summary>
/// The backend connect on the owner thread (Linux, with the owner's epoll set): connect(2) where the cookie ACK
/// validated, its end reported by the owner's event loop, no connect task on the thread pool.
/// </summary>
[Collection(CookieProxy.Tests.Support.SerialCollection.Name)]
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public class OwnerConnectTests
{
    private static FlowTableOptions Options(ProxyProtocolVersion proxy = ProxyProtocolVersion.None) => new()
    {
        MaxFlows = 16,
        Backend = new BackendOptions { ProxyProtocol = proxy, ConnectTimeout = TimeSpan.FromSeconds(3) },
    };

    private static readonly byte[] s_request = "GET / HTTP/1.1\r\nHost: x\r\n\r\n"u8.ToArray();

    [Fact]
    public void The_owner_connects_and_forwards_the_request_with_the_proxy_header_first()
    {
        using var backend = new LoopbackBackend();
        using var h = new SpliceHarness(Options(ProxyProtocolVersion.V1), ownerEventLoop: true);
        var client = new TestClient();
        Flow flow = h.Open(backend.EndPoint, client);
        Assert.Equal(s_request.Length, h.SendData(flow, client, s_request));

        using Socket server = backend.Accept();
        Assert.True(h.RunUntil(() => h.Counters[Counter.BytesToBackend] == s_request.Length));

        int headerLength = ProxyHeaderWriter.Write(ProxyProtocolVersion.V1, new byte[ProxyHeaderWriter.V1MaxLength], flow.Key);
        byte[] received = LoopbackBackend.ReadExactly(server, headerLength + s_request.Length);
        Assert.StartsWith("PROXY TCP4 198.18.1.7 198.18.0.1 ", System.Text.Encoding.ASCII.GetString(received, 0, headerLength));
        Assert.Equal(s_request, received[headerLength..]);
        // On loopback connect(2) returns EINPROGRESS with the handshake already done: the owner sees that at once
        // (poll, no wait), never arms the socket for writability, and puts it on its epoll set once for good.
        Assert.Equal(0, h.EventLoop!.WritableArms);
        Assert.Equal(1, h.EventLoop.Watches);
    }

    [Fact]
    public void A_response_comes_back_through_the_owners_readiness_not_the_thread_pool()
    {
        using var backend = new LoopbackBackend();
        using var h = new SpliceHarness(Options(), ownerEventLoop: true);
        var client = new TestClient();
        Flow flow = h.Open(backend.EndPoint, client);
        h.SendData(flow, client, s_request);
        using Socket server = backend.Accept();
        Assert.True(h.RunUntil(() => h.Counters[Counter.BytesToBackend] == s_request.Length));
        LoopbackBackend.ReadExactly(server, s_request.Length);

        server.Send("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhi"u8);

        Assert.True(h.RunUntil(() => client.Received.Length == 40, clients: (flow, client)));
        Assert.EndsWith("hi", System.Text.Encoding.ASCII.GetString(client.Received.ToArray()));
        Assert.True(h.EventLoop!.WatchReports >= 1);
        Assert.Equal(0, h.EventLoop.ReadableArms);    // the lasting watch: no one-shot re-arm per response
    }

    [Fact]
    public void Three_responses_on_one_connection_each_reach_the_client_with_no_rearm()
    {
        using var backend = new LoopbackBackend();
        using var h = new SpliceHarness(Options(), ownerEventLoop: true);
        var client = new TestClient();
        Flow flow = h.Open(backend.EndPoint, client);
        using Socket server = backend.Accept();
        int expected = 0;
        for (int i = 0; i < 3; i++)
        {
            h.SendData(flow, client, s_request);
            Assert.True(h.RunUntil(() => h.Counters[Counter.BytesToBackend] == (i + 1) * s_request.Length));
            LoopbackBackend.ReadExactly(server, s_request.Length);
            byte[] response = System.Text.Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n{i}");
            server.Send(response);
            expected += response.Length;
            Assert.True(h.RunUntil(() => client.Received.Length == expected, clients: (flow, client)), $"response {i}");
        }
        Assert.EndsWith("2", System.Text.Encoding.ASCII.GetString(client.Received.ToArray()));
        Assert.Equal(1, h.EventLoop!.Watches);
        Assert.Equal(0, h.EventLoop.ReadableArms);
    }

    [Fact]
    public void A_response_and_the_backends_FIN_sent_together_reach_the_client_with_its_FIN()
    {
        using var backend = new LoopbackBackend();
        using var h = new SpliceHarness(Options(), ownerEventLoop: true);
        var client = new TestClient();
        Flow flow = h.Open(backend.EndPoint, client);
        h.SendData(flow, client, s_request);
        using Socket server = backend.Accept();
        Assert.True(h.RunUntil(() => h.Counters[Counter.BytesToBackend] == s_request.Length));
        LoopbackBackend.ReadExactly(server, s_request.Length);

        // Data and FIN before the owner looks: one report whose hang-up bit says the EOF waits behind the bytes.
        server.Send("HTTP/1.0 200 OK\r\n\r\nbye"u8);
        server.Shutdown(SocketShutdown.Send);

        Assert.True(h.RunUntil(() => client.GotFin, clients: (flow, client)));
        Assert.EndsWith("bye", System.Text.Encoding.ASCII.GetString(client.Received.ToArray()));
    }

    [Fact]
    public void A_refused_owner_connect_resets_the_client_and_counts_a_connect_failure()
    {
        int closedPort;
        using (var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            closedPort = ((IPEndPoint)probe.LocalEndPoint!).Port;    // bound, never listening: connect is refused
        }
        using var h = new SpliceHarness(Options(), ownerEventLoop: true);
        var client = new TestClient();
        Flow flow = h.Open(new IPEndPoint(IPAddress.Loopback, closedPort), client);

        Assert.True(h.RunUntil(() => client.GotRst, clients: (flow, client)));
        Assert.Equal(BackendCloseReason.ConnectRefused, flow.Backend.CloseReason);
        Assert.Equal(SocketError.ConnectionRefused, flow.Backend.SocketError);
        Assert.Equal(1, h.Counters[Counter.BackendConnectFailed]);
    }

    [Fact]
    public void Without_the_owners_event_loop_the_connect_runs_on_the_thread_pool_as_before()
    {
        using var backend = new LoopbackBackend();
        using var h = new SpliceHarness(Options());
        var client = new TestClient();
        Flow flow = h.Open(backend.EndPoint, client);
        h.SendData(flow, client, s_request);

        using Socket server = backend.Accept();
        Assert.True(h.RunUntil(() => h.Counters[Counter.BytesToBackend] == s_request.Length));
        Assert.Equal(s_request, LoopbackBackend.ReadExactly(server, s_request.Length));
        Assert.Null(h.EventLoop);
    }
}
