using System.Diagnostics;
using CookieProxy.Cookies;
using CookieProxy.Crypto;
using CookieProxy.Diagnostics;
using CookieProxy.Io;
using CookieProxy.Responder;
using CookieProxy.Tests.Support;
using CookieProxy.Wire;
using Xunit.Abstractions;

namespace CookieProxy.Tests.Fuzz;

/// <summary>
/// Issue 12.1: a million mutated frames through <see cref="SynResponder.ProcessBatch{THandler}"/> (parser, SYN path,
/// cookie check), in capture batches of 64. Invariants, per batch and per frame: no exception escapes; every frame is
/// answered, delivered to a flow, validated, or counted under exactly one drop reason; no cookie validates that the
/// independent <see cref="CookieOracle"/> rejects; every frame we send back is a well-formed SYN+ACK or RST.
/// </summary>
[Trait("Category", "Fuzz")]
[Collection(SerialCollection.Name)]
public class ResponderFuzzTests
{
    private const int Batch = 64;
    private const int MaxFrame = 2048;
    private readonly ITestOutputHelper _output;

    public ResponderFuzzTests(ITestOutputHelper output) => _output = output;

    [Fact]
    public void A_million_mutated_frames_never_throw_and_every_frame_has_exactly_one_outcome()
    {
        long total = FuzzSettings.Count(1_000_000);
        string what = FuzzSettings.Describe("responder");
        SynCookieCodec codec = FrameFuzzer.Codec();
        var fuzzer = new FrameFuzzer(FuzzSettings.SeedFor("responder"), codec);
        var counters = new ProxyCounters();
        var responder = new SynResponder(new ResponderConfig(), codec, FrameFuzzer.Endpoints(), counters);
        var device = new ReplyCheckingDevice();
        var handler = new OutcomeHandler(codec);
        var batch = new FrameBatch(Batch);
        var frames = new byte[Batch][];
        var lengths = new int[Batch];
        var flagsOf = new FrameFlags[Batch];
        for (int i = 0; i < Batch; i++)
        {
            frames[i] = new byte[MaxFrame];
        }
        Random rng = fuzzer.Random;
        var clock = Stopwatch.StartNew();
        long done = 0, answered = 0, validated = 0;
        var outcomes = new long[(int)DropReason.Count];

        while (done < total)
        {
            int n = (int)Math.Min(Batch, total - done);
            batch.Clear();
            for (int i = 0; i < n; i++)
            {
                lengths[i] = fuzzer.Next(frames[i]);
                flagsOf[i] = rng.Next(8) switch { 0 => FrameFlags.ChecksumValid, 1 => FrameFlags.ChecksumNotReady, _ => FrameFlags.None };
                Assert.True(batch.TryAdd(frames[i].AsSpan(0, lengths[i]), flagsOf[i]));
            }
            handler.ForgetFlows();    // a flow lives for one batch: mutants of its cookie ACK meet the cookie check again
            long unixMs = FrameFuzzer.UnixMs + rng.Next(16) switch { 0 => 40_000, 1 => 70_000, 2 => 200_000, 3 => -40_000, _ => rng.Next(0, 2000) };
            handler.UnixMs = unixMs;

            long dropsBefore = counters.TotalDrops, synAcksBefore = counters[Counter.SynAckSent];
            long outcomesBefore = handler.Delivered + handler.Validated;
            long received = counters[Counter.FramesReceived];
            try
            {
                responder.ProcessBatch(batch, ref handler, device, unixMs);
            }
            catch (Exception e)
            {
                Assert.Fail($"{what}: {e.GetType().Name} escaped the responder: {e.Message}\n{Culprits(frames, lengths, n)}\n{e}");
            }
            long outcomesNow = counters.TotalDrops - dropsBefore + counters[Counter.SynAckSent] - synAcksBefore
                + handler.Delivered + handler.Validated - outcomesBefore;
            if (counters[Counter.FramesReceived] - received != n || outcomesNow != n)
            {
                Assert.Fail($"{what}: a batch of {n} frames had {outcomesNow} outcomes (drops, SYN+ACKs, deliveries, validations)\n{Culprits(frames, lengths, n)}");
            }
            if (handler.Violation is not null)
            {
                Assert.Fail($"{what}: {handler.Violation}\n{Culprits(frames, lengths, n)}");
            }
            if (device.Violation is not null)
            {
                Assert.Fail($"{what}: {device.Violation}\n{Culprits(frames, lengths, n)}");
            }
            done += n;
        }

        for (int r = 1; r < outcomes.Length; r++)
        {
            outcomes[r] = counters.Drops((DropReason)r);
        }
        answered = counters[Counter.SynAckSent];
        validated = handler.Validated;
        _output.WriteLine($"{what}: {done} frames in {clock.Elapsed.TotalSeconds:F1} s; SYN+ACKs {answered}, cookies valid {validated}, "
            + $"delivered {handler.Delivered}, replies checked {device.Sent}; drops: "
            + string.Join(", ", Enumerable.Range(1, outcomes.Length - 1).Where(r => outcomes[r] > 0).Select(r => $"{(DropReason)r} {outcomes[r]}")));
        // The seeds reach every layer: some mutants are answered, some validate, many are dropped at the cookie check.
        Assert.True(answered > 0 && validated > 0 && counters.Drops(DropReason.CookieInvalid) > 0,
            $"{what}: the mutants did not reach every layer");
    }

    /// <summary>The batch's frames in hex, for the report and for Fuzz/Regressions.</summary>
    private static string Culprits(byte[][] frames, int[] lengths, int n) =>
        "frames of the batch (add the guilty one to tests/CookieProxy.Tests/Fuzz/Regressions as a .hex file):\n"
        + string.Join("\n", Enumerable.Range(0, n).Select(i => Convert.ToHexString(frames[i].AsSpan(0, lengths[i])).ToLowerInvariant()));

    /// <summary>The flows side: delivers to flows it created itself, and holds every validation to the oracle.</summary>
    private struct OutcomeHandler : IFlowHandler
    {
        private readonly SipKey _key;
        private readonly int _slotSeconds;
        private readonly HashSet<FlowKey> _flows;

        public OutcomeHandler(SynCookieCodec codec)
        {
            _key = codec.Key;
            _slotSeconds = codec.SlotSeconds;
            _flows = new HashSet<FlowKey>();
            Delivered = 0;
            Validated = 0;
            UnixMs = 0;
            Violation = null;
        }

        public long Delivered;
        public long Validated;
        public long UnixMs;
        public string? Violation;

        public readonly void ForgetFlows() => _flows.Clear();

        public bool TryDeliver(ref ParsedPacket packet, Span<byte> frame, int listener)
        {
            if (!_flows.Contains(packet.Flow))
            {
                return false;
            }
            Delivered++;
            return true;
        }

        public void OnCookieValid(ref ParsedPacket packet, Span<byte> frame, int listener, in CookieDecoded cookie)
        {
            Validated++;
            if (!CookieOracle.IsValidCookieAck(_key, _slotSeconds, packet.Flow, packet.Tcp, UnixMs))
            {
                Violation ??= $"a cookie validated that the oracle rejects: {packet.Flow} seq {packet.Tcp.Seq.Value} ack {packet.Tcp.Ack.Value} flags {packet.Tcp.Flags}";
            }
            if (cookie.LocalIsn != packet.Tcp.Ack.Value - 1 || cookie.ClientIsn != packet.Tcp.Seq.Value - 1)
            {
                Violation ??= $"decoded ISNs do not match the ACK: {packet.Flow}";
            }
            _flows.Add(packet.Flow);
        }
    }
}

/// <summary>An IPacketDevice that checks every frame sent: it must parse (checksums verified) as a SYN+ACK or an RST.</summary>
internal sealed class ReplyCheckingDevice : IPacketDevice
{
    public long Sent;
    public string? Violation;

    public string Name => "fuzz0";
    public string Backend => "fuzz";

    public int Receive(FrameBatch batch, int timeoutMs) => 0;

    public bool Send(ReadOnlySpan<byte> frame)
    {
        Sent++;
        byte[] copy = frame.ToArray();
        DropReason r = PacketParser.Parse(copy, out ParsedPacket p, verifyChecksums: true);
        if (r != DropReason.None)
        {
            Violation ??= $"we sent a frame that does not parse ({r}): {Convert.ToHexString(copy).ToLowerInvariant()}";
            return true;
        }
        TcpFlags f = p.Tcp.Flags;
        bool synAck = (f & (TcpFlags.Syn | TcpFlags.Ack | TcpFlags.Rst | TcpFlags.Fin)) == (TcpFlags.Syn | TcpFlags.Ack);
        bool rst = (f & TcpFlags.Rst) != 0 && (f & TcpFlags.Syn) == 0;
        if (!synAck && !rst)
        {
            Violation ??= $"we sent neither a SYN+ACK nor an RST ({f}): {Convert.ToHexString(copy).ToLowerInvariant()}";
        }
        if (p.Tcp.SrcPort != 80)
        {
            Violation ??= $"a reply from port {p.Tcp.SrcPort}, not the protected one";
        }
        return true;
    }

    public void Flush()
    {
    }

    public void Wake()
    {
    }

    public DeviceStats GetStats() => new(0, 0, 0, Sent, 0);

    public void Dispose()
    {
    }
}
