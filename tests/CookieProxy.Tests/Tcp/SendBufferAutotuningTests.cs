using CookieProxy.Tcp;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Tcp;

/// <summary>
/// Send buffer autotuning (Linux tcp_sndbuf_expand): a full send buffer grows towards twice the usable
/// window, min(cwnd, the client's largest window), within the config's and the host's caps, keeping every
/// queued byte in order.
/// </summary>
public class SendBufferAutotuningTests : TcpTestBase
{
    private const int Initial = 32 * 1024;    // above 2 x the initial window (RFC 6928: 14600)

    private static TcpConfig Config(int max = 1024 * 1024) => new() { ReceiveBufferSize = Initial, SendBufferSize = Initial, MaxSendBufferSize = max };

    private readonly List<byte> _queued = new();
    private readonly List<byte> _sent = new();
    private ushort _clientWindow = 65535;

    /// <summary>Fills the send buffer with a running pattern, as the backend splice does.</summary>
    private void FillSendBuffer()
    {
        Ep.GetSendSpace(out Span<byte> head, out Span<byte> tail);
        for (int i = 0; i < head.Length; i++)
        {
            head[i] = (byte)(_queued.Count * 7 >> 2);
            _queued.Add(head[i]);
        }

        for (int i = 0; i < tail.Length; i++)
        {
            tail[i] = (byte)(_queued.Count * 7 >> 2);
            _queued.Add(tail[i]);
        }

        Ep.CommitSend(head.Length + tail.Length);
        Assert.Equal(0, Ep.SendBufferFree);
    }

    /// <summary>Sends what the window allows and acknowledges all of it: slow start adds the acked bytes to cwnd.</summary>
    private void SendAndAckEverything()
    {
        foreach (SentSegment s in DispatchAll())
        {
            _sent.AddRange(s.Payload);
            OurNext = s.Seq + s.Payload.Length;
        }

        Send(ClientNext, ack: OurNext, window: _clientWindow);
    }

    /// <summary>Window scale 7: the client offers 65535 &lt;&lt; 7 = 8 MiB, so cwnd is what limits.</summary>
    private static TcpHandshake BigWindow() => Handshake(sendScale: 7, recvScale: 7);

    [Fact]
    public void A_fresh_connection_keeps_its_send_buffer_because_its_initial_window_fits_twice()
    {
        InEstablished(Config(), BigWindow());
        FillSendBuffer();

        Assert.Equal(0, Ep.ExpandSendBuffer(int.MaxValue));
        Assert.Equal(Initial, Ep.SendBufferCapacity);
    }

    [Fact]
    public void A_full_buffer_grows_in_doublings_to_twice_the_congestion_window_and_keeps_its_bytes_in_order()
    {
        InEstablished(Config(), BigWindow());
        FillSendBuffer();
        SendAndAckEverything();    // IW 14600 sent and acknowledged: cwnd 29200
        Assert.Equal(29_200, Ep.CongestionWindow);
        FillSendBuffer();

        // 2 x 29200 = 58400: 32 KiB doubles once, to 64 KiB.
        Assert.Equal((64 * 1024) - Initial, Ep.ExpandSendBuffer(int.MaxValue));
        Assert.Equal(64 * 1024, Ep.SendBufferCapacity);
        Assert.Equal((64 * 1024) - Ep.SendBufferUsed, Ep.SendBufferFree);

        FillSendBuffer();
        for (int i = 0; i < 20; i++)
        {
            SendAndAckEverything();
            FillSendBuffer();
        }

        Assert.Equal(_queued.Take(_sent.Count), _sent);
        Assert.True(_sent.Count > 20 * Initial, $"only {_sent.Count} bytes went out");
    }

    [Fact]
    public void The_buffer_stays_when_twice_the_clients_window_fits_however_large_cwnd_grew()
    {
        _clientWindow = 16_000;
        InEstablished(Config(), Handshake(window: _clientWindow));
        FillSendBuffer();
        for (int i = 0; i < 6; i++)
        {
            SendAndAckEverything();
            FillSendBuffer();
        }

        Assert.True(2 * Ep.CongestionWindow > Initial);    // 2 x cwnd alone would grow it
        Assert.Equal(0, Ep.ExpandSendBuffer(int.MaxValue));    // 2 x 16000 fits: cwnd is not what limits
        Assert.Equal(Initial, Ep.SendBufferCapacity);
    }

    [Theory]
    [InlineData(256 * 1024, 40_000, 40_000)]         // the host's budget stops it between doublings
    [InlineData(48 * 1024, int.MaxValue, 48 * 1024)]  // MaxSendBufferSize
    [InlineData(8 * 1024, int.MaxValue, Initial)]     // a ceiling below SendBufferSize: it never grows
    public void Growth_stops_at_the_configured_ceiling_and_at_the_hosts_limit(int configMax, int hostLimit, int expected)
    {
        InEstablished(Config(configMax), BigWindow());
        FillSendBuffer();
        for (int i = 0; i < 6; i++)
        {
            SendAndAckEverything();
            FillSendBuffer();
        }

        Ep.ExpandSendBuffer(hostLimit);
        Assert.Equal(expected, Ep.SendBufferCapacity);
    }

    [Fact]
    public void A_closed_send_side_never_grows()
    {
        InEstablished(Config(), BigWindow());
        FillSendBuffer();
        for (int i = 0; i < 3; i++)
        {
            SendAndAckEverything();
            FillSendBuffer();
        }

        Ep.CloseSend();    // RFC 9293 3.10.4: nothing more is queued after the FIN
        Assert.Equal(0, Ep.ExpandSendBuffer(int.MaxValue));
        Assert.Equal(Initial, Ep.SendBufferCapacity);
    }

    [Fact]
    public void A_grown_buffer_comes_from_the_pool_and_goes_back_there_with_the_ring_it_replaced()
    {
        Pool = new RingBufferPool(Initial, maxPooled: 4);
        InEstablished(Config(), BigWindow());
        FillSendBuffer();
        SendAndAckEverything();
        FillSendBuffer();
        Assert.Equal(2, Pool.Outstanding);    // receive + send ring

        Assert.True(Ep.ExpandSendBuffer(int.MaxValue) > 0);
        Assert.Equal(1, Pool.Outstanding);    // the old send ring is back
        Assert.Equal((1, 1L), (Pool.Pooled, Pool.GrownCreated));

        Ep.ReleaseBuffers();
        Assert.Equal(0, Pool.Outstanding);
        Assert.Equal(2, Pool.Pooled);
        Assert.Equal(64 * 1024, Pool.PooledGrownBytes);

        // The next bulk flow grows into the same (cleared) array instead of a new one.
        InEstablished(Config(), BigWindow());
        FillSendBuffer();
        SendAndAckEverything();
        FillSendBuffer();
        Ep.ExpandSendBuffer(int.MaxValue);
        Assert.Equal((1L, 0L), (Pool.GrownCreated, Pool.PooledGrownBytes));
    }
}
