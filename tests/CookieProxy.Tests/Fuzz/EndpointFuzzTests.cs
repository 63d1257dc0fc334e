using System.Diagnostics;
using System.Runtime.CompilerServices;
using CookieProxy.Tcp;
using CookieProxy.Tests.Support;
using CookieProxy.Wire;
using CsCheck;
using Xunit.Abstractions;

namespace CookieProxy.Tests.Fuzz;

/// <summary>
/// Issue 12.1: 100,000 random segment sequences through a <see cref="TcpEndpoint"/> (CsCheck: generated, and shrunk
/// to a minimal sequence on failure). A sequence mixes in-order data, segments anywhere around the windows, RST, SYN
/// and FIN, backend reads and writes, closes, aborts, budget changes, trims and time jumps. Invariants after every
/// step: no exception; buffers within their caps; the footprint within the rings; every byte the endpoint hands the
/// backend is the client's byte at that position, and every byte it sends is the backend's (nothing lost, nothing
/// made up); no segment acknowledges bytes the client never sent; silence once closed; every ring back in the pool.
/// </summary>
[Trait("Category", "Fuzz")]
[Collection(SerialCollection.Name)]
public class EndpointFuzzTests
{
    private readonly ITestOutputHelper _output;

    public EndpointFuzzTests(ITestOutputHelper output) => _output = output;

    public enum OpKind : byte
    {
        InOrderData,
        NearSegment,
        RandomSegment,
        Rst,
        Syn,
        Fin,
        BackendSend,
        BackendRead,
        CloseSend,
        Abort,
        Advance,
        Budget,
        Trim,
        Ack,
    }

    public readonly record struct Op(OpKind Kind, int A, int B, uint C, byte Flags)
    {
        public override string ToString() => $"{Kind}({A},{B},{C},{Flags:x2})";
    }

    public readonly record struct Scenario(int Config, Op[] Ops)
    {
        public override string ToString() => $"config {Config}: {string.Join(" ", Ops)}";
    }

    private static readonly Gen<Op> s_op = Gen.Select(
        Gen.Frequency(
            (20, Gen.Const(OpKind.InOrderData)), (10, Gen.Const(OpKind.NearSegment)), (4, Gen.Const(OpKind.RandomSegment)),
            (3, Gen.Const(OpKind.Rst)), (2, Gen.Const(OpKind.Syn)), (3, Gen.Const(OpKind.Fin)), (15, Gen.Const(OpKind.BackendSend)),
            (12, Gen.Const(OpKind.BackendRead)), (2, Gen.Const(OpKind.CloseSend)), (1, Gen.Const(OpKind.Abort)),
            (10, Gen.Const(OpKind.Advance)), (3, Gen.Const(OpKind.Budget)), (2, Gen.Const(OpKind.Trim)), (15, Gen.Const(OpKind.Ack))),
        Gen.Int[0, 70_000], Gen.Int[-70_000, 70_000], Gen.UInt, Gen.Byte,
        (k, a, b, c, f) => new Op(k, a, b, c, f));

    private static readonly Gen<Scenario> s_scenario = Gen.Select(Gen.Int[0, 1 << 20], s_op.Array[1, 48], (c, ops) => new Scenario(c, ops));

    [Fact]
    public void A_hundred_thousand_segment_sequences_keep_every_endpoint_invariant()
    {
        long sequences = FuzzSettings.Count(100_000);
        string what = FuzzSettings.Describe("endpoint");
        var pool = new RingBufferPool(64 * 1024, maxPooled: 16);
        long steps = 0, segments = 0;
        var clock = Stopwatch.StartNew();
        string seed = new PCG((uint)FuzzSettings.SeedFor("endpoint"), (ulong)FuzzSettings.Seed).ToString();
        if (Environment.GetEnvironmentVariable("CsCheck_Seed") is { Length: > 0 } replay)
        {
            seed = replay;    // the seed CsCheck printed for a failure: that one sample again
            sequences = 1;
        }
        s_scenario.Sample(s =>
        {
            long outstanding = pool.Outstanding;    // a failed sample (while shrinking) may have left its rings out
            var run = new EndpointRun(s.Config, pool);
            foreach (Op op in s.Ops)
            {
                run.Step(op);
                steps++;
            }
            run.Finish();
            segments += run.Segments;
            if (pool.Outstanding != outstanding)
            {
                throw new InvalidOperationException($"{pool.Outstanding - outstanding} ring arrays never went back to the pool");
            }
        }, seed: seed, iter: sequences, threads: 1, print: s => s.ToString() + " | " + what);
        _output.WriteLine($"{what}: {sequences} sequences, {steps} steps, {segments} segments emitted in {clock.Elapsed.TotalSeconds:F1} s");
    }

    /// <summary>Replays one scenario the way the fuzz target runs it (for the regression list).</summary>
    internal static void Replay(Scenario scenario)
    {
        var pool = new RingBufferPool(64 * 1024, maxPooled: 2);
        var run = new EndpointRun(scenario.Config, pool);
        foreach (Op op in scenario.Ops)
        {
            run.Step(op);
        }
        run.Finish();
        if (pool.Outstanding != 0)
        {
            throw new InvalidOperationException($"{pool.Outstanding} ring arrays never went back to the pool");
        }
    }

    /// <summary>Parses the printed form of a scenario: <c>config N: Kind(A,B,C,flags) ...</c>.</summary>
    internal static Scenario Parse(string text)
    {
        int colon = text.IndexOf(':', StringComparison.Ordinal);
        int config = int.Parse(text["config ".Length..colon], System.Globalization.CultureInfo.InvariantCulture);
        var ops = new List<Op>();
        foreach (string token in text[(colon + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries))
        {
            int open = token.IndexOf('(', StringComparison.Ordinal);
            string[] args = token[(open + 1)..^1].Split(',');
            ops.Add(new Op(Enum.Parse<OpKind>(token[..open]), int.Parse(args[0], System.Globalization.CultureInfo.InvariantCulture),
                int.Parse(args[1], System.Globalization.CultureInfo.InvariantCulture), uint.Parse(args[2], System.Globalization.CultureInfo.InvariantCulture),
                byte.Parse(args[3], System.Globalization.NumberStyles.HexNumber, System.Globalization.CultureInfo.InvariantCulture)));
        }
        return new Scenario(config, [.. ops]);
    }

    /// <summary>One endpoint, its client and its backend, driven by ops and checked after each.</summary>
    private sealed class EndpointRun
    {
        private readonly TcpConfig _config;
        private readonly TcpEndpoint _ep;
        private readonly SeqNumber _irs;
        private readonly SeqNumber _iss;
        private readonly bool _ts;
        private readonly List<SegmentRecord> _emitted = new();
        private long _now = 1_000_000;
        private SeqNumber _clientNext;      // next client sequence number to send in order
        private SeqNumber _clientMax;       // highest client sequence number sent (+ FIN)
        private SeqNumber _ourAcked;        // the client's latest ACK of our bytes
        private SeqNumber _ourMax;          // highest byte of ours seen (+ FIN)
        private uint _tsVal = 5000;
        private long _backendSent;          // bytes the backend handed the endpoint
        private long _backendRead;          // bytes the backend took from the endpoint
        private bool _closedAndQuiet;

        public long Segments;

        public EndpointRun(int config, RingBufferPool pool)
        {
            var rng = new Random(config);
            int recv = rng.Next(3) == 0 ? 64 * 1024 : 4096 << rng.Next(5);    // pooled (64 KiB) or allocated rings
            _config = new TcpConfig
            {
                ReceiveBufferSize = recv,
                SendBufferSize = 4096 << rng.Next(5),
                MaxSendBufferSize = rng.Next(2) == 0 ? 0 : 256 * 1024,
                LocalMss = (ushort)(536 + rng.Next(1000)),
                MaxOutOfOrderSegments = 1 + rng.Next(64),
                FirstDataTimeoutMs = rng.Next(3) == 0 ? 3000 : 0,
                IdleTimeoutMs = rng.Next(3) == 0 ? 10_000 : 300_000,
                KeepAlive = rng.Next(2) == 0,
                DelayedAckMs = rng.Next(2) == 0 ? 0 : 40,
                MaxRetransmits = 1 + rng.Next(12),
            };
            _ts = rng.Next(2) == 0;
            sbyte scale = (sbyte)(rng.Next(3) == 0 ? -1 : rng.Next(15));
            _irs = new SeqNumber((uint)rng.Next() * 2u + (uint)rng.Next(2));
            _iss = new SeqNumber((uint)rng.Next() * 2u);
            var handshake = new TcpHandshake
            {
                Irs = _irs,
                Iss = _iss,
                SendMss = (ushort)(536 + rng.Next(9000)),
                SendWindowScale = scale,
                RecvWindowScale = scale < 0 ? (sbyte)-1 : (sbyte)rng.Next(15),
                SackPermitted = rng.Next(2) == 0,
                TimestampsEnabled = _ts,
                TsRecent = _tsVal,
                LocalTsInitial = (uint)rng.Next(),
                InitialWindow = (ushort)rng.Next(65536),
            };
            _ep = new TcpEndpoint(_config, handshake, _now, pool) { LocalPort = 80, RemotePort = 40_000 };
            if (rng.Next(4) == 0)
            {
                _ep.SegmentOffloadBytes = 65_536;
            }
            _clientNext = _irs + 1;
            _clientMax = _clientNext;
            _ourAcked = _iss + 1;
            _ourMax = _iss + 1;
        }

        public void Step(Op op)
        {
            switch (op.Kind)
            {
                case OpKind.InOrderData:
                    SendClient(_clientNext, TcpFlags.Ack | TcpFlags.Psh, op.A % 3000, advance: true);
                    break;
                case OpKind.NearSegment:
                    SendClient(_clientNext + op.B, (TcpFlags)(op.Flags & 0x3F) | TcpFlags.Ack, op.A % 2000, advance: false);
                    break;
                case OpKind.RandomSegment:
                    // Anywhere in sequence space: accepted only if it happens to land in the window, which the
                    // ACK check allows for (it counts what lands within 4 MiB of the client's position).
                    SendClient(new SeqNumber(op.C), (TcpFlags)op.Flags, op.A % 1500, advance: false, ack: new SeqNumber(op.C * 2654435761u));
                    break;
                case OpKind.Rst:
                    SendClient(op.Flags % 3 == 0 ? _clientNext : _clientNext + op.B, TcpFlags.Rst | (op.Flags % 2 == 0 ? TcpFlags.Ack : 0), 0, advance: false);
                    break;
                case OpKind.Syn:
                    SendClient(_clientNext + op.B % 1000, TcpFlags.Syn | (op.Flags % 2 == 0 ? TcpFlags.Ack : 0), 0, advance: false);
                    break;
                case OpKind.Fin:
                    SendClient(_clientNext, TcpFlags.Fin | TcpFlags.Ack, op.A % 500, advance: true, fin: true);
                    break;
                case OpKind.BackendSend:
                {
                    int n = Math.Min(op.A, Pattern.MaxLength);
                    int taken = _ep.Send(Pattern.Backend(_backendSent, n));
                    Check(taken <= n && taken <= _ep.SendBufferCapacity, "Send took more than offered or fits");
                    _backendSent += taken;
                    break;
                }
                case OpKind.BackendRead:
                    Read(op.A % 3 == 0 ? int.MaxValue : op.A);
                    break;
                case OpKind.CloseSend:
                    _ep.CloseSend();
                    break;
                case OpKind.Abort:
                    _ep.Abort();
                    break;
                case OpKind.Advance:
                    _now += op.Flags switch { < 200 => op.A % 300, < 250 => op.A % 5000, _ => op.A * 10L };
                    break;
                case OpKind.Budget:
                    _ep.ReceiveWindowLimit = op.A % 4 == 0 ? int.MaxValue : op.A;
                    if (op.Flags % 2 == 0)
                    {
                        _ep.ExpandSendBuffer(op.A * 4);
                    }
                    break;
                case OpKind.Trim:
                    _ep.TrimBuffers();
                    break;
                case OpKind.Ack:
                {
                    // The client acknowledges (some of) what it got, with a window of its own.
                    SeqNumber ack = op.Flags % 4 == 0 ? _ourAcked + (op.A % 3000) : _ourMax;
                    SendClient(_clientNext, TcpFlags.Ack, 0, advance: false, ack: ack, window: (ushort)(op.Flags % 8 == 0 ? 0 : op.A));
                    break;
                }
            }
            Dispatch();
            CheckState();
        }

        public void Finish()
        {
            Read(int.MaxValue);
            _now += 600_000;
            Dispatch();
            _ep.ReleaseBuffers();
            Dispatch();
            Check(_ep.ReceiveAvailable == 0 && _ep.SendBufferCapacity == 0, "buffers left after ReleaseBuffers");
        }

        private void SendClient(SeqNumber seq, TcpFlags flags, int length, bool advance, bool fin = false, SeqNumber? ack = null, ushort window = 65535)
        {
            ReadOnlySpan<byte> payload = Pattern.Client(seq - (_irs + 1), length);
            TcpRepr r = default;
            r.SrcPort = 40_000;
            r.DstPort = 80;
            r.Seq = seq;
            r.Ack = ack ?? _ourMax;
            r.Flags = flags;
            r.Window = window;
            r.Options = TcpOptionsRepr.None;
            if (_ts)
            {
                _tsVal += (uint)(flags.HasFlag(TcpFlags.Rst) ? 0 : 1);
                r.Options.HasTimestamp = true;
                r.Options.TsVal = _tsVal;
                r.Options.TsEcr = 1;
            }
            if (length % 7 == 3 && (flags & TcpFlags.Ack) != 0)
            {
                r.Options.SackCount = 1;
                r.Options.Sack[0] = new SackBlock(_ourAcked + 10, _ourAcked + 10 + length);
            }
            _ep.Process(in r, payload, _now);
            // Bytes (and a FIN) the client has sent near where it is: the most the endpoint may ever acknowledge.
            SeqNumber end = seq + length + ((flags & TcpFlags.Fin) != 0 ? 1 : 0);
            if (end > _clientMax && end - _clientNext < (1 << 22) && (flags & (TcpFlags.Rst | TcpFlags.Syn)) == 0)
            {
                _clientMax = end;
            }
            if ((flags & TcpFlags.Ack) != 0 && r.Ack <= _ourMax && r.Ack > _ourAcked)
            {
                _ourAcked = r.Ack;
            }
            if (advance)
            {
                _clientNext = end;
            }
        }

        private void Read(int max)
        {
            int n = Math.Min(max, _ep.ReceiveAvailable);
            if (n == 0)
            {
                return;
            }
            _ep.PeekReceived(out ReadOnlySpan<byte> head, out ReadOnlySpan<byte> tail);
            int h = Math.Min(n, head.Length);
            Check(head[..h].SequenceEqual(Pattern.Client(_backendRead, h))
                && tail[..(n - h)].SequenceEqual(Pattern.Client(_backendRead + h, n - h)),
                $"the backend got bytes at client offset {_backendRead}.. that the client did not send there");
            _ep.ConsumeReceived(n);
            _backendRead += n;
        }

        private void Dispatch()
        {
            _emitted.Clear();
            var sink = new RecordingSink(_emitted, _iss + 1);
            _ep.Dispatch(ref sink, _now);
            foreach (SegmentRecord s in _emitted)
            {
                Segments++;
                Check(!_closedAndQuiet, $"a segment ({s.Flags}) after the endpoint was closed and had said so");
                Check(s.SrcPort == 80 && s.DstPort == 40_000, "segment ports");
                if ((s.Flags & TcpFlags.Rst) == 0)
                {
                    Check((s.Flags & TcpFlags.Ack) != 0, "a segment without ACK");
                    Check(s.Ack - _clientMax <= 0, $"ACK {s.Ack.Value} of bytes the client never sent (max {_clientMax.Value})");
                }
                int limit = Math.Max(_ep.EffectiveSendMss, _ep.SegmentOffloadBytes) + 64;
                Check(s.PayloadLength <= limit, $"a {s.PayloadLength}-byte segment (MSS {_ep.EffectiveSendMss})");
                long offset = s.Seq - (_iss + 1);
                Check(s.PayloadMatches, $"sent bytes at offset {offset} that are not the backend's bytes there");
                Check(s.PayloadLength == 0 || offset + s.PayloadLength <= _backendSent,
                    $"sent bytes up to {offset + s.PayloadLength}, the backend gave {_backendSent}");
                SeqNumber end = s.Seq + s.PayloadLength + ((s.Flags & TcpFlags.Fin) != 0 ? 1 : 0);
                if (end > _ourMax)
                {
                    _ourMax = end;
                }
            }
            if (_ep.IsClosed)
            {
                _closedAndQuiet = true;
            }
        }

        private void CheckState()
        {
            Check(_ep.ReceiveAvailable >= 0 && _ep.ReceiveAvailable <= _config.ReceiveBufferSize, $"ReceiveAvailable {_ep.ReceiveAvailable}");
            Check(_ep.SendBufferUsed <= _ep.SendBufferCapacity, "send buffer over its capacity");
            Check(_ep.SendBufferCapacity <= Math.Max(_config.MaxSendBufferSize, _config.SendBufferSize), $"send buffer grew to {_ep.SendBufferCapacity}");
            Check(_ep.MemoryFootprint >= 0 && _ep.MemoryFootprint <= (long)_config.ReceiveBufferSize + _ep.SendBufferCapacity,
                $"footprint {_ep.MemoryFootprint} beyond the rings");
            Check(_ep.NextDeadlineMs >= 0, "a negative deadline");
        }

        private void Check(bool ok, string what)
        {
            if (!ok)
            {
                Fail(what);
            }
        }

        // The message is formatted only when the check fails: formatting it on every step was most of the
        // harness's time (a few enum and number formats per segment).
        private void Check(bool ok, [InterpolatedStringHandlerArgument(nameof(ok))] ref FailureMessage what)
        {
            if (!ok)
            {
                Fail(what.ToStringAndClear());
            }
        }

        private void Fail(string what) =>
            throw new InvalidOperationException($"{what} [state {_ep.State} ({_ep.CloseReason}), RCV.NXT {_ep.ReceiveNext.Value}, "
                + $"client next {_clientNext.Value}, client max {_clientMax.Value}, IRS {_irs.Value}, ours acked {_ourAcked.Value}, ours max {_ourMax.Value}]");
    }

    /// <summary>An interpolated string that is built only when its check fails (<c>Debug.Assert</c>'s handler, kept in Release).</summary>
    [InterpolatedStringHandler]
    private ref struct FailureMessage
    {
        private DefaultInterpolatedStringHandler _inner;

        public FailureMessage(int literalLength, int formattedCount, bool ok, out bool shouldAppend)
        {
            shouldAppend = !ok;
            _inner = shouldAppend ? new DefaultInterpolatedStringHandler(literalLength, formattedCount) : default;
        }

        public void AppendLiteral(string value) => _inner.AppendLiteral(value);

        public void AppendFormatted<T>(T value) => _inner.AppendFormatted(value);

        public string ToStringAndClear() => _inner.ToStringAndClear();
    }

    private readonly record struct SegmentRecord(SeqNumber Seq, SeqNumber Ack, TcpFlags Flags, ushort SrcPort, ushort DstPort, int PayloadLength, bool PayloadMatches);

    /// <summary>Records each segment and checks its payload against the backend's bytes at its sequence number.</summary>
    private readonly struct RecordingSink : ITcpSegmentSink
    {
        private readonly List<SegmentRecord> _list;
        private readonly SeqNumber _firstByte;

        public RecordingSink(List<SegmentRecord> list, SeqNumber firstByte)
        {
            _list = list;
            _firstByte = firstByte;
        }

        public void Emit(in TcpRepr segment, ReadOnlySpan<byte> payloadHead, ReadOnlySpan<byte> payloadTail)
        {
            long offset = segment.Seq - _firstByte;
            bool matches = payloadHead.SequenceEqual(Pattern.Backend(offset, payloadHead.Length))
                && payloadTail.SequenceEqual(Pattern.Backend(offset + payloadHead.Length, payloadTail.Length));
            _list.Add(new SegmentRecord(segment.Seq, segment.Ack, segment.Flags, segment.SrcPort, segment.DstPort,
                payloadHead.Length + payloadTail.Length, matches));
        }
    }

    /// <summary>
    /// The two streams as functions of their offset, periodic in 1 MiB (far beyond any window or buffer here, so a
    /// byte in the wrong place never matches by chance): a byte is right exactly when it is the stream's byte there.
    /// </summary>
    private static class Pattern
    {
        public const int MaxLength = 80_000;
        private const int Period = 1 << 20;
        private static readonly byte[] s_client = Build(31, 7);
        private static readonly byte[] s_backend = Build(17, 3);

        public static ReadOnlySpan<byte> Client(long offset, int length) => s_client.AsSpan((int)(offset & (Period - 1)), length);

        public static ReadOnlySpan<byte> Backend(long offset, int length) => s_backend.AsSpan((int)(offset & (Period - 1)), length);

        private static byte[] Build(int a, int b)
        {
            var table = new byte[Period + MaxLength];
            for (int i = 0; i < table.Length; i++)
            {
                int x = i & (Period - 1);
                table[i] = (byte)((x * a + b) ^ (x >> 8) ^ (x >> 16) * 5);
            }
            return table;
        }
    }
}
