using System.Diagnostics;
using System.Net;
using System.Net.Sockets;
using CookieProxy.Diagnostics;
using CookieProxy.Host.Backend;
using CookieProxy.Host.Flows;
using CookieProxy.Platform;
using CookieProxy.Tcp;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Backend;

/// <summary>
/// The client's side of one flow, driving the endpoint only through its public API: it sends segments with
/// correct sequence numbers inside the window the endpoint advertises, and collects what the endpoint emits.
/// Independent of the endpoint implementation (stub or real).
/// </summary>
internal sealed class TestClient
{
    public const int WindowScale = 7;
    public const ushort Mss = 1460;

    public readonly TcpHandshake Handshake;
    public SeqNumber SndNxt;        // next client byte
    public SeqNumber SndUna;        // acknowledged by the endpoint
    public long PeerWindow;         // bytes the endpoint advertised, from SndUna
    public SeqNumber RcvNxt;        // next byte expected from the endpoint
    public SeqNumber LastAckSent;
    public readonly MemoryStream Received = new();
    public bool GotFin;
    public bool GotRst;
    public bool AutoAck = true;

    // A bulk stream (SendStream): its first byte's sequence number, and go-back-N retransmission state.
    public bool StreamStarted;
    public SeqNumber StreamBase;
    public SeqNumber LastSndUna;
    public long LastProgressMs;
    public int Retransmits;

    /// <summary>Stream bytes sent so far (the highest, before any go-back).</summary>
    public int StreamSent => StreamStarted ? SndNxt - StreamBase : 0;

    /// <summary>Stream bytes the endpoint acknowledged.</summary>
    public int StreamAcked => StreamStarted ? SndUna - StreamBase : 0;

    public TestClient(uint irs = 1000, uint iss = 500_000)
    {
        Handshake = new TcpHandshake
        {
            Irs = new SeqNumber(irs),
            Iss = new SeqNumber(iss),
            SendMss = Mss,
            SendWindowScale = WindowScale,
            RecvWindowScale = WindowScale,
            InitialWindow = 65535,
        };
        SndNxt = Handshake.Irs + 1;
        SndUna = SndNxt;
        RcvNxt = Handshake.Iss + 1;
        LastAckSent = RcvNxt;
        PeerWindow = 64 * 1024;    // what a SYN+ACK would have told us; refined by every segment
    }

    public bool NeedsAck => AutoAck && RcvNxt != LastAckSent && !GotRst;

    /// <summary>What the endpoint emitted (via the dispatcher's sink).</summary>
    public void OnSegment(in TcpRepr segment, ReadOnlySpan<byte> head, ReadOnlySpan<byte> tail)
    {
        if ((segment.Flags & TcpFlags.Rst) != 0)
        {
            GotRst = true;
            return;
        }
        if ((segment.Flags & TcpFlags.Ack) != 0 && segment.Ack - SndUna >= 0)
        {
            SndUna = segment.Ack;
            PeerWindow = (long)segment.Window << WindowScale;
        }
        int length = head.Length + tail.Length;
        if (length > 0 && segment.Seq <= RcvNxt && segment.Seq + length > RcvNxt)
        {
            int skip = RcvNxt - segment.Seq;    // a retransmission overlapping what we have
            // Piece by piece, without a temporary array: allocation tests count this thread's bytes.
            if (skip < head.Length)
            {
                Received.Write(head[skip..]);
                Received.Write(tail);
            }
            else
            {
                Received.Write(tail[(skip - head.Length)..]);
            }
            RcvNxt += length - skip;
        }
        if ((segment.Flags & TcpFlags.Fin) != 0 && segment.Seq + length == RcvNxt && !GotFin)
        {
            GotFin = true;
            RcvNxt += 1;
        }
    }

    public TcpRepr Segment(TcpFlags flags) => new()
    {
        SrcPort = 40000,
        DstPort = 80,
        Seq = SndNxt,
        Ack = RcvNxt,
        Flags = flags,
        Window = 65535,
        Options = TcpOptionsRepr.None,
    };

    /// <summary>The cookie ACK: the third packet of the handshake, which creates the flow.</summary>
    public TcpRepr CookieAck() => Segment(TcpFlags.Ack);

    /// <summary>Bytes the client may still send inside the endpoint's window.</summary>
    public long WindowLeft => PeerWindow - (SndNxt - SndUna);
}

/// <summary>Delivers to the test client and, like the capture loop's sink, counts the RSTs it emits.</summary>
internal struct TestSink : ITcpSegmentSink
{
    private readonly TestClient _client;
    private readonly ProxyCounters _counters;

    public TestSink(TestClient client, ProxyCounters counters)
    {
        _client = client;
        _counters = counters;
    }

    public void Emit(in TcpRepr segment, ReadOnlySpan<byte> payloadHead, ReadOnlySpan<byte> payloadTail)
    {
        if ((segment.Flags & TcpFlags.Rst) != 0)
        {
            _counters[Counter.RstSent]++;
        }
        _client.OnSegment(segment, payloadHead, payloadTail);
    }
}

/// <summary>What the capture loop's dispatcher does: sink from ReplyTemplate, then Endpoint.Dispatch.</summary>
internal struct TestDispatcher : IFlowDispatcher
{
    public ProxyCounters Counters;

    public void Dispatch(Flow flow, long nowMs)
    {
        var sink = new TestSink((TestClient)flow.ReplyTemplate!, Counters);
        flow.Endpoint.Dispatch(ref sink, nowMs);
    }
}

/// <summary>
/// The test thread plays the capture (owner) thread: it alone touches endpoints, and sleeps on an event that
/// the backend loops set through the table's wake action.
/// </summary>
internal sealed class SpliceHarness : IDisposable
{
    private readonly AutoResetEvent _wake = new(false);
    private readonly Stopwatch _clock = Stopwatch.StartNew();
    private TestDispatcher _dispatcher;
    private ushort _nextPort = 40000;

    public readonly ProxyCounters Counters = new();
    public readonly FlowTable Table;
    public int Wakes;

    public SpliceHarness(FlowTableOptions? options = null, bool ownerEventLoop = false)
    {
        _dispatcher.Counters = Counters;
        Table = new FlowTable(options ?? new FlowTableOptions(), Counters, () =>
        {
            Interlocked.Increment(ref Wakes);
            _wake.Set();
        });
        if (ownerEventLoop && OperatingSystem.IsLinux())
        {
            // As the capture thread does: backend connects and readability on this thread's own epoll set.
            EventLoop = new OwnerEventLoop();
            Table.Readiness = EventLoop;
        }
    }

    /// <summary>The owner's epoll set when the harness was made with <c>ownerEventLoop</c> (Linux); else null.</summary>
    public OwnerEventLoop? EventLoop { get; }

    public long NowMs => _clock.ElapsedMilliseconds + 1_000;

    public static FlowKey KeyFor(ushort clientPort, string source = "198.18.1.7") =>
        new(IpAddr.FromIPAddress(IPAddress.Parse(source)), IpAddr.FromIPAddress(IPAddress.Parse("198.18.0.1")), clientPort, 80);

    /// <summary>A validated cookie ACK: create the flow and feed the ACK itself, as the capture loop does.</summary>
    public DropReason TryOpen(EndPoint backend, TestClient client, out Flow? flow, string source = "198.18.1.7")
    {
        FlowKey key = KeyFor(_nextPort++, source);
        DropReason reason = Table.TryAdd(key, client.Handshake, backend, client, NowMs, out flow);
        if (flow is not null)
        {
            Table.OnClientSegment(flow, client.CookieAck(), default, NowMs, ref _dispatcher);
        }
        return reason;
    }

    public Flow Open(EndPoint backend, TestClient client, string source = "198.18.1.7")
    {
        Assert.Equal(DropReason.None, TryOpen(backend, client, out Flow? flow, source));
        return flow!;
    }

    /// <summary>Sends as much of <paramref name="data"/> as the endpoint's window allows, in MSS segments; returns the count.</summary>
    public int SendData(Flow flow, TestClient client, ReadOnlySpan<byte> data)
    {
        int sent = 0;
        while (sent < data.Length && client.WindowLeft > 0 && !flow.Endpoint.IsClosed)
        {
            int n = (int)Math.Min(Math.Min(data.Length - sent, TestClient.Mss), client.WindowLeft);
            TcpRepr segment = client.Segment(TcpFlags.Ack | TcpFlags.Psh);
            client.SndNxt += n;
            Table.OnClientSegment(flow, segment, data.Slice(sent, n), NowMs, ref _dispatcher);
            sent += n;
        }
        return sent;
    }

    /// <summary>
    /// Sends the next part of <paramref name="stream"/> (the whole stream, every call) that fits the window, going
    /// back to the first unacknowledged byte when no ACK progress came for 200 ms: an endpoint may drop in-window
    /// data it has no buffer for, and a real client would retransmit it. Returns the bytes acknowledged so far.
    /// </summary>
    public int SendStream(Flow flow, TestClient client, ReadOnlySpan<byte> stream)
    {
        long now = NowMs;
        if (!client.StreamStarted)
        {
            client.StreamStarted = true;
            client.StreamBase = client.SndNxt;
            client.LastSndUna = client.SndUna;
            client.LastProgressMs = now;
        }
        if (client.SndUna != client.LastSndUna)
        {
            client.LastSndUna = client.SndUna;
            client.LastProgressMs = now;
        }
        else if (client.SndNxt != client.SndUna && now - client.LastProgressMs > 200)
        {
            client.SndNxt = client.SndUna;    // RTO: go back N
            client.LastProgressMs = now;
            client.Retransmits++;
        }
        int offset = client.SndNxt - client.StreamBase;
        SendData(flow, client, stream[offset..]);
        return client.StreamAcked;
    }

    public void SendFin(Flow flow, TestClient client)
    {
        TcpRepr segment = client.Segment(TcpFlags.Ack | TcpFlags.Fin);
        client.SndNxt += 1;
        Table.OnClientSegment(flow, segment, default, NowMs, ref _dispatcher);
    }

    public void SendRst(Flow flow, TestClient client) =>
        Table.OnClientSegment(flow, client.Segment(TcpFlags.Rst), default, NowMs, ref _dispatcher);

    public void SendAck(Flow flow, TestClient client)
    {
        client.LastAckSent = client.RcvNxt;
        Table.OnClientSegment(flow, client.Segment(TcpFlags.Ack), default, NowMs, ref _dispatcher);
    }

    /// <summary>One turn of the capture loop: backend work, timers, and the client's ACKs.</summary>
    public void Turn(int waitMs, params (Flow Flow, TestClient Client)[] clients)
    {
        _wake.WaitOne(EventLoop is null ? waitMs : Math.Min(waitMs, 2));
        if (EventLoop is not null && OperatingSystem.IsLinux())
        {
            foreach ((Flow ready, bool hangUp) in EventLoop.Collect())
            {
                ready.Backend.OnReady(hangUp);
                Table.MarkForSettle(ready);
            }
            Table.SettleProcessed(NowMs, ref _dispatcher);
        }
        Table.ProcessWork(NowMs, ref _dispatcher);
        Table.Tick(NowMs, ref _dispatcher);
        foreach ((Flow flow, TestClient client) in clients)
        {
            if (client.NeedsAck && !flow.Endpoint.IsClosed)
            {
                SendAck(flow, client);
            }
        }
    }

    public bool RunUntil(Func<bool> done, int timeoutMs = 5_000, params (Flow Flow, TestClient Client)[] clients)
    {
        var limit = Stopwatch.StartNew();
        Turn(0, clients);
        while (!done())
        {
            if (limit.ElapsedMilliseconds > timeoutMs)
            {
                return false;
            }
            Turn(20, clients);
        }
        return true;
    }

    public void RunFor(int ms, params (Flow Flow, TestClient Client)[] clients)
    {
        var limit = Stopwatch.StartNew();
        while (limit.ElapsedMilliseconds < ms)
        {
            Turn(10, clients);
        }
    }

    public void Dispose()
    {
        Table.Dispose();
        _wake.Dispose();
        if (OperatingSystem.IsLinux())
        {
            EventLoop?.Dispose();
        }
    }
}

/// <summary>A loopback backend: a listener and helpers with timeouts (never blocks a test forever).</summary>
internal sealed class LoopbackBackend : IDisposable
{
    private readonly Socket _listener;

    public LoopbackBackend(int receiveBufferSize = 0)
    {
        _listener = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        if (receiveBufferSize > 0)
        {
            _listener.ReceiveBufferSize = receiveBufferSize;    // inherited by accepted sockets
        }
        _listener.Bind(new IPEndPoint(IPAddress.Loopback, 0));
        _listener.Listen(16);
    }

    public IPEndPoint EndPoint => (IPEndPoint)_listener.LocalEndPoint!;

    public Socket Accept(int timeoutMs = 5_000)
    {
        Assert.True(_listener.Poll(timeoutMs * 1000, SelectMode.SelectRead), "backend: no connection arrived");
        Socket s = _listener.Accept();
        s.ReceiveTimeout = 5_000;
        s.SendTimeout = 5_000;
        return s;
    }

    /// <summary>Reads exactly <paramref name="count"/> bytes (or fails on timeout/EOF).</summary>
    public static byte[] ReadExactly(Socket socket, int count)
    {
        byte[] data = new byte[count];
        int have = 0;
        while (have < count)
        {
            int n = socket.Receive(data, have, count - have, SocketFlags.None);
            Assert.True(n > 0, $"backend: EOF after {have} of {count} bytes");
            have += n;
        }
        return data;
    }

    /// <summary>
    /// Runs blocking backend I/O on a dedicated thread: blocking a thread-pool thread would starve the
    /// backend loops' continuations (2 cores = 2 pool threads at start) and turn the test into a timing test.
    /// </summary>
    public static Task<T> OnThread<T>(Func<T> work)
    {
        var result = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        var thread = new Thread(() =>
        {
            try
            {
                result.SetResult(work());
            }
            catch (Exception e)
            {
                result.SetException(e);
            }
        })
        { IsBackground = true };
        thread.Start();
        return result.Task;
    }

    public void Dispose() => _listener.Dispose();
}

/// <summary>The capture thread's backend event loop for the harness: a <see cref="SocketReadiness"/> and the flows armed on it.</summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
internal sealed class OwnerEventLoop : IBackendReadiness, IDisposable
{
    private readonly SocketReadiness _readiness = new();
    private readonly Dictionary<int, (Flow Flow, ulong Token, bool Lasting)> _armed = new();
    private readonly ulong[] _tokens = new ulong[64];
    private readonly uint[] _masks = new uint[64];
    private uint _generation;

    public int ReadableArms;
    public int WritableArms;
    public int Watches;
    /// <summary>Reports taken for the edge-triggered watches (the owner's wake-ups for backend data).</summary>
    public int WatchReports;

    public bool ArmReadable(Socket socket, object owner) => Arm(socket, owner, ref ReadableArms, lasting: false,
        (s, t) => _readiness.ArmReadable(s, t));

    public bool ArmWritable(Socket socket, object owner) => Arm(socket, owner, ref WritableArms, lasting: false,
        (s, t) => _readiness.ArmWritable(s, t));

    public bool WatchReadable(Socket socket, object owner) => Arm(socket, owner, ref Watches, lasting: true,
        (s, t) => _readiness.WatchReadable(s, t));

    private bool Arm(Socket socket, object owner, ref int count, bool lasting, Func<System.Runtime.InteropServices.SafeHandle, ulong, bool> arm)
    {
        int fd = (int)socket.SafeHandle.DangerousGetHandle();
        ulong token = ((ulong)++_generation << 32) | (uint)fd;    // as the capture thread does: fd numbers are reused
        if (!arm(socket.SafeHandle, token))
        {
            return false;
        }
        Interlocked.Increment(ref count);
        _armed[fd] = ((Flow)owner, token, lasting);
        return true;
    }

    public List<(Flow Flow, bool HangUp)> Collect()
    {
        var ready = new List<(Flow, bool)>();
        int n = _readiness.Collect(_tokens, _masks);
        for (int i = 0; i < n; i++)
        {
            int fd = (int)(uint)_tokens[i];
            if (!_armed.TryGetValue(fd, out var entry) || entry.Token != _tokens[i])
            {
                continue;
            }
            if (entry.Lasting)
            {
                WatchReports++;
            }
            else
            {
                _armed.Remove(fd);
            }
            if (!entry.Flow.Removed)
            {
                ready.Add((entry.Flow, SocketReadiness.IsHangUp(_masks[i])));
            }
        }
        return ready;
    }

    public void Dispose() => _readiness.Dispose();
}
