using System.Net;
using System.Net.Sockets;
using CookieProxy.Platform;

namespace CookieProxy.Tests.Platform;

/// <summary>The capture thread's epoll set for backend sockets: one-shot readability reports, on loopback.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class SocketReadinessTests
{
    private static (Socket Client, Socket Server) Pair()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        client.Connect(listener.LocalEndPoint!);
        return (client, listener.Accept());
    }

    private static int CollectWithin(SocketReadiness readiness, Span<ulong> tokens, int timeoutMs = 2000)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int n;
        while ((n = readiness.Collect(tokens)) == 0 && clock.ElapsedMilliseconds < timeoutMs)
        {
            Thread.Sleep(5);
        }
        return n;
    }

    [Fact]
    public void An_armed_socket_is_reported_once_when_data_arrives_and_again_only_after_rearming()
    {
        using var readiness = new SocketReadiness();
        (Socket client, Socket server) = Pair();
        using (client)
        using (server)
        {
            Span<ulong> tokens = stackalloc ulong[8];
            Assert.True(readiness.ArmReadable(server.SafeHandle, 42));
            Assert.Equal(0, readiness.Collect(tokens));    // nothing to read yet

            client.Send(new byte[10]);
            Assert.Equal(1, CollectWithin(readiness, tokens));
            Assert.Equal(42UL, tokens[0]);

            // One-shot: more data, no new report until re-armed (the owner reads until EWOULDBLOCK first).
            client.Send(new byte[10]);
            Thread.Sleep(20);
            Assert.Equal(0, readiness.Collect(tokens));
            Assert.True(readiness.ArmReadable(server.SafeHandle, 43));
            Assert.Equal(1, CollectWithin(readiness, tokens));    // level: the unread bytes report at once
            Assert.Equal(43UL, tokens[0]);
        }
    }

    [Fact]
    public void A_watched_socket_is_reported_for_each_arrival_without_rearming_and_its_FIN_shows_as_hang_up()
    {
        using var readiness = new SocketReadiness();
        (Socket client, Socket server) = Pair();
        using (client)
        using (server)
        {
            Span<ulong> tokens = stackalloc ulong[8];
            Span<uint> masks = stackalloc uint[8];
            Assert.True(readiness.WatchReadable(server.SafeHandle, 11));
            Assert.Equal(0, readiness.Collect(tokens, masks));

            client.Send(new byte[10]);
            Assert.Equal(1, CollectWithin(readiness, tokens));
            server.Receive(new byte[64]);    // drained
            Assert.Equal(0, readiness.Collect(tokens, masks));    // edge-triggered: nothing new, no report

            client.Send(new byte[10]);    // a new arrival reports again, with no re-arm
            Assert.Equal(1, CollectWithin(readiness, tokens));
            Assert.Equal(11UL, tokens[0]);

            client.Send(new byte[5]);
            client.Shutdown(SocketShutdown.Send);
            Thread.Sleep(20);
            Assert.Equal(1, readiness.Collect(tokens, masks));
            Assert.True(SocketReadiness.IsHangUp(masks[0]));
        }
    }

    [Fact]
    public void A_watch_replaces_a_connects_one_shot_entry_on_the_same_socket()
    {
        using var readiness = new SocketReadiness();
        (Socket client, Socket server) = Pair();
        using (client)
        using (server)
        {
            Span<ulong> tokens = stackalloc ulong[8];
            Assert.True(readiness.ArmWritable(server.SafeHandle, 1));
            Assert.Equal(1, CollectWithin(readiness, tokens));    // writable at once
            Assert.True(readiness.WatchReadable(server.SafeHandle, 2));    // EEXIST, then MOD
            client.Send(new byte[1]);
            Assert.Equal(1, CollectWithin(readiness, tokens));
            Assert.Equal(2UL, tokens[0]);
        }
    }

    [Fact]
    public void A_nonblocking_loopback_connect_has_ended_when_connect_returns()
    {
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { Blocking = false };

        int started = NonBlockingConnect.Start(client.SafeHandle, (IPEndPoint)listener.LocalEndPoint!);

        Assert.True(started is 0 or NonBlockingConnect.InProgress, $"connect: errno {started}");
        Assert.True(NonBlockingConnect.HasEnded(client.SafeHandle));
        Assert.Equal(0, NonBlockingConnect.TakeError(client.SafeHandle));
    }

    [Fact]
    public void EOF_is_reported_and_a_closed_socket_cannot_be_armed()
    {
        using var readiness = new SocketReadiness();
        (Socket client, Socket server) = Pair();
        Span<ulong> tokens = stackalloc ulong[8];
        using (server)
        {
            Assert.True(readiness.ArmReadable(server.SafeHandle, 7));
            client.Shutdown(SocketShutdown.Send);
            Assert.Equal(1, CollectWithin(readiness, tokens));
            Assert.Equal(7UL, tokens[0]);
            client.Dispose();
        }
        Assert.False(readiness.ArmReadable(server.SafeHandle, 8));
    }

    [Fact]
    public void Its_descriptor_wakes_a_poll_when_a_report_is_waiting()
    {
        using var readiness = new SocketReadiness();
        (Socket client, Socket server) = Pair();
        using (client)
        using (server)
        {
            using var wake = new WakePipe("test");
            wake.AuxiliaryFd = readiness.Fd;
            Assert.True(readiness.ArmReadable(server.SafeHandle, 1));
            Assert.Equal(WakePipe.Ready.None, wake.Poll(-1, 0));
            client.Send(new byte[1]);
            Assert.Equal(WakePipe.Ready.Woken, wake.Poll(-1, 2000));
        }
    }

    [Fact]
    public void A_nonblocking_connect_is_reported_writable_once_and_its_error_is_zero()
    {
        using var readiness = new SocketReadiness();
        using var listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        listener.Listen(1);
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { Blocking = false };

        int started = NonBlockingConnect.Start(client.SafeHandle, (IPEndPoint)listener.LocalEndPoint!);

        Assert.True(started is 0 or NonBlockingConnect.InProgress, $"connect: errno {started}");
        Assert.True(readiness.ArmWritable(client.SafeHandle, 5));
        Span<ulong> tokens = stackalloc ulong[8];
        Assert.Equal(1, CollectWithin(readiness, tokens));
        Assert.Equal(5UL, tokens[0]);
        Assert.Equal(0, NonBlockingConnect.TakeError(client.SafeHandle));
        Assert.Equal(0, readiness.Collect(tokens));    // one-shot
        using Socket accepted = listener.Accept();    // .NET itself never saw this connect: ask the listener
        Assert.Equal(IPAddress.Loopback, ((IPEndPoint)accepted.RemoteEndPoint!).Address);
    }

    [Fact]
    public void A_refused_nonblocking_connect_ends_with_ECONNREFUSED()
    {
        using var readiness = new SocketReadiness();
        int port;
        using (var probe = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp))
        {
            probe.Bind(new IPEndPoint(IPAddress.Loopback, 0));
            port = ((IPEndPoint)probe.LocalEndPoint!).Port;
        }
        using var client = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp) { Blocking = false };

        int errno = NonBlockingConnect.Start(client.SafeHandle, new IPEndPoint(IPAddress.Loopback, port));
        if (errno == NonBlockingConnect.InProgress)
        {
            Assert.True(readiness.ArmWritable(client.SafeHandle, 9));
            Span<ulong> tokens = stackalloc ulong[8];
            Assert.Equal(1, CollectWithin(readiness, tokens));
            errno = NonBlockingConnect.TakeError(client.SafeHandle);
        }

        Assert.Equal(SocketError.ConnectionRefused, NonBlockingConnect.ToSocketError(errno));
    }

    [Fact]
    public void A_nonblocking_connect_reaches_an_IPv6_listener()
    {
        using var listener = new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp);
        listener.Bind(new IPEndPoint(IPAddress.IPv6Loopback, 0));
        listener.Listen(1);
        using var readiness = new SocketReadiness();
        using var client = new Socket(AddressFamily.InterNetworkV6, SocketType.Stream, ProtocolType.Tcp) { Blocking = false };

        int started = NonBlockingConnect.Start(client.SafeHandle, (IPEndPoint)listener.LocalEndPoint!);
        if (started == NonBlockingConnect.InProgress)
        {
            Assert.True(readiness.ArmWritable(client.SafeHandle, 1));
            Span<ulong> tokens = stackalloc ulong[8];
            Assert.Equal(1, CollectWithin(readiness, tokens));
            started = NonBlockingConnect.TakeError(client.SafeHandle);
        }

        Assert.Equal(0, started);
        using Socket accepted = listener.Accept();
        Assert.Equal(IPAddress.IPv6Loopback, ((IPEndPoint)accepted.RemoteEndPoint!).Address);
    }
}
