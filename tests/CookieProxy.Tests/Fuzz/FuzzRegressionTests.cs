using CookieProxy.Cookies;
using CookieProxy.Diagnostics;
using CookieProxy.Io;
using CookieProxy.Responder;
using CookieProxy.Tcp;
using CookieProxy.Tests.Support;
using CookieProxy.Tests.Tcp;
using CookieProxy.Wire;
using static CookieProxy.Tests.Wire.WireTestFrames;

namespace CookieProxy.Tests.Fuzz;

/// <summary>Every input that once crashed a fuzz target or broke one of its invariants, replayed (Fuzz/Regressions).</summary>
[Collection(SerialCollection.Name)]
public class FuzzRegressionTests : TcpTestBase
{
    private static string RegressionDirectory([System.Runtime.CompilerServices.CallerFilePath] string thisFile = "")
    {
        string beside = Path.Combine(Path.GetDirectoryName(thisFile) ?? ".", "Regressions");
        if (Directory.Exists(beside))
        {
            return beside;
        }
        for (DirectoryInfo? d = new(AppContext.BaseDirectory); d is not null; d = d.Parent)
        {
            string candidate = Path.Combine(d.FullName, "tests", "CookieProxy.Tests", "Fuzz", "Regressions");
            if (Directory.Exists(candidate))
            {
                return candidate;
            }
        }
        throw new DirectoryNotFoundException("Fuzz/Regressions not found");
    }

    public static TheoryData<string> EndpointSequences()
    {
        var data = new TheoryData<string>();
        foreach (string line in File.ReadLines(Path.Combine(RegressionDirectory(), "endpoint-sequences.txt")))
        {
            if (line.StartsWith("config ", StringComparison.Ordinal))
            {
                data.Add(line);
            }
        }
        return data;
    }

    public static TheoryData<string> Frames()
    {
        var data = new TheoryData<string>();
        foreach (string file in Directory.EnumerateFiles(RegressionDirectory(), "*.hex").Order())
        {
            data.Add(Path.GetFileName(file));
        }
        data.Add("(none yet)");    // keeps the theory non-empty until the first frame regression
        return data;
    }

    [Theory]
    [MemberData(nameof(EndpointSequences))]
    public void An_endpoint_sequence_that_once_broke_an_invariant_keeps_them_all(string scenario) =>
        EndpointFuzzTests.Replay(EndpointFuzzTests.Parse(scenario));

    [Theory]
    [MemberData(nameof(Frames))]
    public void A_frame_that_once_broke_the_responder_is_one_outcome_and_no_exception(string name)
    {
        if (name == "(none yet)")
        {
            Assert.Empty(Directory.EnumerateFiles(RegressionDirectory(), "*.hex"));
            return;
        }
        byte[] frame = Hex(File.ReadAllText(Path.Combine(RegressionDirectory(), name)));
        SynCookieCodec codec = FrameFuzzer.Codec();
        var counters = new ProxyCounters();
        var responder = new SynResponder(new ResponderConfig(), codec, FrameFuzzer.Endpoints(), counters);
        var batch = new FrameBatch(1);
        Assert.True(batch.TryAdd(frame));
        var handler = new CountOnlyFlowHandler();
        var device = new ReplyCheckingDevice();
        responder.ProcessBatch(batch, ref handler, device, FrameFuzzer.UnixMs);
        Assert.Equal(1, counters.TotalDrops + counters[Counter.SynAckSent] + handler.Validated);
        Assert.Null(device.Violation);
    }

    [Fact]
    public void A_fin_in_order_drops_the_out_of_order_bytes_held_beyond_it()
    {
        InEstablished(new TcpConfig { DelayedAckMs = 0 });
        SeqNumber start = ClientNext;
        Send(start + 800, payload: Pattern(start + 800, 500));    // out of order, beyond the coming FIN
        Recv();                                                     // duplicate ACK
        Send(start, flags: TcpFlags.Fin | TcpFlags.Ack, payload: Pattern(start, 400));

        SentSegment ack = Recv();
        Assert.Equal(start + 401, ack.Ack);                         // the FIN, at its own place
        Assert.Equal(TcpState.CloseWait, Ep.State);
        Assert.Equal(400, Ep.ReceiveAvailable);                     // nothing from beyond the FIN
        Assert.True(Ep.ReceiveFinished == false);
    }
}
