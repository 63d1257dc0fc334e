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
}
