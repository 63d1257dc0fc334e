using CookieProxy.Tcp;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Tcp.Scenarios;

/// <summary>Deterministic pseudo-random byte stream (xorshift64*), reproducible on both ends.</summary>
public sealed class StreamGenerator
{
    private ulong _state;

    public StreamGenerator(ulong seed) => _state = seed | 1;

    public void Fill(Span<byte> buffer)
    {
        for (int i = 0; i < buffer.Length; i++)
        {
            _state ^= _state >> 12;
            _state ^= _state << 25;
            _state ^= _state >> 27;
            buffer[i] = (byte)((_state * 0x2545F4914F6CDD1DUL) >> 56);
        }
    }
}

/// <summary>One side's application: pushes its stream with Send, drains and verifies the peer's, then closes.</summary>
public sealed class ScenarioApp
{
    private readonly StreamGenerator _out;
    private readonly StreamGenerator _expected;
    private readonly long _total;
    private readonly long _expectedTotal;
    private readonly byte[] _outBuf = new byte[64 * 1024];
    private readonly byte[] _checkBuf = new byte[64 * 1024];
    private int _outBufStart;
    private int _outBufEnd;

    /// <param name="totalBytes">What this side sends.</param>
    /// <param name="expectedBytes">What it expects from the peer (default: as much as it sends).</param>
    public ScenarioApp(ulong sendSeed, ulong receiveSeed, long totalBytes, long? expectedBytes = null)
    {
        _out = new StreamGenerator(sendSeed);
        _expected = new StreamGenerator(receiveSeed);
        _total = totalBytes;
        _expectedTotal = expectedBytes ?? totalBytes;
    }

    public long BytesSent { get; private set; }
    public long BytesReceived { get; private set; }
    public bool Corrupted { get; private set; }
    public long CorruptedAt { get; private set; } = -1;
    public bool SentAll => BytesSent == _total;

    /// <summary>Simulated time at which the whole expected stream had arrived (-1 until then).</summary>
    public long ReceivedAllAtMs { get; private set; } = -1;

    /// <summary>Read rate in bytes per simulated millisecond (0 = read everything at once): a slow backend.</summary>
    public double ReadBytesPerMs { get; set; }

    public void Pump(TcpEndpoint ep, long nowMs)
    {
        // Backend -> client: push as much of the stream as the send buffer takes.
        while (BytesSent < _total && ep.SendBufferFree > 0)
        {
            if (_outBufStart == _outBufEnd)
            {
                int n = (int)Math.Min(_outBuf.Length, _total - BytesSent);
                _out.Fill(_outBuf.AsSpan(0, n));
                _outBufStart = 0;
                _outBufEnd = n;
            }

            int taken = ep.Send(_outBuf.AsSpan(_outBufStart, _outBufEnd - _outBufStart));
            if (taken == 0)
            {
                break;
            }

            _outBufStart += taken;
            BytesSent += taken;
        }

        if (BytesSent == _total && ep.State is TcpState.Established or TcpState.CloseWait)
        {
            ep.CloseSend();
        }

        // Client -> backend: drain and verify against the expected stream.
        long budget = ReadBytesPerMs > 0 ? (long)(ReadBytesPerMs * nowMs) - BytesReceived : long.MaxValue;
        while (ep.ReceiveAvailable > 0 && budget > 0)
        {
            ep.PeekReceived(out ReadOnlySpan<byte> head, out ReadOnlySpan<byte> tail);
            ReadOnlySpan<byte> piece = head.Length > 0 ? head : tail;
            int n = (int)Math.Min(Math.Min(piece.Length, _checkBuf.Length), budget);
            _expected.Fill(_checkBuf.AsSpan(0, n));
            if (!piece[..n].SequenceEqual(_checkBuf.AsSpan(0, n)) && !Corrupted)
            {
                Corrupted = true;
                CorruptedAt = BytesReceived;
            }

            ep.ConsumeReceived(n);
            BytesReceived += n;
            budget -= n;
        }

        if (BytesReceived == _expectedTotal && ReceivedAllAtMs < 0)
        {
            ReceivedAllAtMs = nowMs;
        }
    }
}

/// <summary>Outcome of one simulated transfer.</summary>
public sealed record ScenarioResult(long SimulatedMs, long Iterations, TcpEndpoint Server, TcpEndpoint Client,
    ScenarioApp ServerApp, ScenarioApp ClientApp, FaultInjector Link)
{
    public override string ToString()
        => $"sim {SimulatedMs} ms, iterations {Iterations}, link sent {Link.Sent} dropped {Link.Dropped} dup {Link.Duplicated} " +
           $"reordered {Link.Reordered}; server rtx {Server.Retransmissions} rto {Server.RetransmitTimeouts} fr {Server.FastRecoveries}; " +
           $"client rtx {Client.Retransmissions} rto {Client.RetransmitTimeouts} fr {Client.FastRecoveries}; " +
           $"states {Server.State}/{Client.State} reasons {Server.CloseReason}/{Client.CloseReason}; " +
           $"recv {ServerApp.BytesReceived}/{ClientApp.BytesReceived}";
}

/// <summary>
/// Two TcpEndpoints back to back, both built ESTABLISHED from mirrored handshakes (the client's ISS is the
/// server's IRS and so on), joined by a <see cref="FaultInjector"/> and driven by a simulated clock.
/// </summary>
public static class ScenarioHarness
{
    private struct LinkSink : ITcpSegmentSink
    {
        public FaultInjector Link;
        public int Direction;
        public long NowMs;

        public void Emit(in TcpRepr segment, ReadOnlySpan<byte> payloadHead, ReadOnlySpan<byte> payloadTail)
        {
            byte[] payload = new byte[payloadHead.Length + payloadTail.Length];
            payloadHead.CopyTo(payload);
            payloadTail.CopyTo(payload.AsSpan(payloadHead.Length));
            Link.Transmit(Direction, in segment, payload, NowMs);
        }
    }

    /// <summary>The server's initial send sequence number in a run with this seed (its first byte is one above).</summary>
    public static SeqNumber ServerIss(int seed) => new(0xFFFF_0000u + (uint)seed); // both spaces wrap early

    /// <param name="bytesEachWay">What each side sends: the server's stream, and the client's unless <paramref name="clientBytes"/> says otherwise.</param>
    /// <param name="clientBytes">What the client sends (a request before a download), when not <paramref name="bytesEachWay"/>.</param>
    public static ScenarioResult Run(FaultConfig faults, int seed, long bytesEachWay, bool sack, bool timestamps,
        TcpConfig? config = null, double serverReadBytesPerMs = 0, long maxSimulatedMs = 3_600_000, Action<string>? trace = null,
        long? clientBytes = null)
    {
        config ??= new TcpConfig { MaxRetransmits = 30, IdleTimeoutMs = 600_000 };
        const sbyte Scale = 7;
        SeqNumber serverIss = ServerIss(seed);
        var clientIss = new SeqNumber(0x7FFF_FF00u ^ (uint)seed);
        ushort initialWindow = (ushort)Math.Min(config.ReceiveBufferSize >> Scale, ushort.MaxValue);

        var serverHs = new TcpHandshake
        {
            Iss = serverIss, Irs = clientIss, SendMss = config.LocalMss, SendWindowScale = Scale, RecvWindowScale = Scale,
            SackPermitted = sack, TimestampsEnabled = timestamps, TsRecent = 1000, LocalTsInitial = 0xFFFF_FF00, InitialWindow = initialWindow,
        };
        var clientHs = new TcpHandshake
        {
            Iss = clientIss, Irs = serverIss, SendMss = config.LocalMss, SendWindowScale = Scale, RecvWindowScale = Scale,
            SackPermitted = sack, TimestampsEnabled = timestamps, TsRecent = 0xFFFF_FF00, LocalTsInitial = 1000, InitialWindow = initialWindow,
        };

        long now = 0;
        var server = new TcpEndpoint(config, in serverHs, now) { LocalPort = 80, RemotePort = 40000 };
        var client = new TcpEndpoint(config, in clientHs, now) { LocalPort = 40000, RemotePort = 80 };
        long upload = clientBytes ?? bytesEachWay;
        var serverApp = new ScenarioApp((ulong)seed * 7919 + 1, (ulong)seed * 104729 + 2, bytesEachWay, upload) { ReadBytesPerMs = serverReadBytesPerMs };
        var clientApp = new ScenarioApp((ulong)seed * 104729 + 2, (ulong)seed * 7919 + 1, upload, bytesEachWay);
        var link = new FaultInjector(faults, seed);
        var toClient = new LinkSink { Link = link, Direction = 0 };
        var toServer = new LinkSink { Link = link, Direction = 1 };

        long iterations = 0;
        int sameTime = 0;
        while (now <= maxSimulatedMs)
        {
            iterations++;
            while (link.TryDeliver(now, out SimPacket p))
            {
                TcpRepr repr = p.Repr;
                trace?.Invoke($"{now} {(p.Direction == 0 ? "S->C" : "C->S")} seq={repr.Seq} ack={repr.Ack} {repr.Flags} win={repr.Window} len={p.Payload.Length} sack={repr.Options.SackCount}");
                (p.Direction == 0 ? client : server).Process(in repr, p.Payload, now);
            }

            serverApp.Pump(server, now);
            clientApp.Pump(client, now);
            toClient.NowMs = now;
            toServer.NowMs = now;
            server.Dispatch(ref toClient, now);
            client.Dispatch(ref toServer, now);

            if (server.IsClosed && client.IsClosed)
            {
                break;
            }

            long next = Math.Min(link.NextDeliveryMs, Math.Min(server.NextDeadlineMs, client.NextDeadlineMs));
            if (next <= now)
            {
                if (++sameTime > 1000)
                {
                    throw new InvalidOperationException($"event loop spins at {now} ms: server {server.State} deadline {server.NextDeadlineMs}, client {client.State} deadline {client.NextDeadlineMs}");
                }

                continue;
            }

            sameTime = 0;
            if (serverReadBytesPerMs > 0)
            {
                next = Math.Min(next, now + 10); // the slow reader polls every 10 ms
            }

            now = next;
        }

        return new ScenarioResult(now, iterations, server, client, serverApp, clientApp, link);
    }
}
