using CookieProxy.Tcp;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Tcp.Scenarios;

/// <summary>The steady-state path (Process, Dispatch, Send, Peek/Consume) must not allocate.</summary>
[Collection(CookieProxy.Tests.Support.SerialCollection.Name)]
public class AllocationTests
{
    /// <summary>Preallocated segment slots: the sink copies into them, the loop delivers from them.</summary>
    private sealed class SlotQueue
    {
        public readonly TcpRepr[] Reprs = new TcpRepr[4096];
        public readonly byte[][] Payloads = CreatePayloads();
        public readonly int[] Lengths = new int[4096];
        public int Count;

        private static byte[][] CreatePayloads()
        {
            var p = new byte[4096][];
            for (int i = 0; i < p.Length; i++)
            {
                p[i] = new byte[2048];
            }

            return p;
        }
    }

    private struct SlotSink : ITcpSegmentSink
    {
        public SlotQueue Queue;

        public void Emit(in TcpRepr segment, ReadOnlySpan<byte> payloadHead, ReadOnlySpan<byte> payloadTail)
        {
            int i = Queue.Count++;
            Queue.Reprs[i] = segment;
            payloadHead.CopyTo(Queue.Payloads[i]);
            payloadTail.CopyTo(Queue.Payloads[i].AsSpan(payloadHead.Length));
            Queue.Lengths[i] = payloadHead.Length + payloadTail.Length;
        }
    }

    private static void Deliver(SlotQueue q, TcpEndpoint to, long now)
    {
        for (int i = 0; i < q.Count; i++)
        {
            to.Process(in q.Reprs[i], q.Payloads[i].AsSpan(0, q.Lengths[i]), now);
        }

        q.Count = 0;
    }

    [Theory]
    [InlineData(false, false)]
    [InlineData(true, true)]
    public void A_bidirectional_transfer_allocates_nothing_per_segment(bool sack, bool ts)
    {
        var config = new TcpConfig();
        var a = new TcpHandshake { Iss = new SeqNumber(1), Irs = new SeqNumber(2), SendMss = 1460, SendWindowScale = 7, RecvWindowScale = 7, SackPermitted = sack, TimestampsEnabled = ts, InitialWindow = 2048 };
        var b = new TcpHandshake { Iss = new SeqNumber(2), Irs = new SeqNumber(1), SendMss = 1460, SendWindowScale = 7, RecvWindowScale = 7, SackPermitted = sack, TimestampsEnabled = ts, InitialWindow = 2048 };
        var server = new TcpEndpoint(config, in a, 0);
        var client = new TcpEndpoint(config, in b, 0);
        var toClient = new SlotSink { Queue = new SlotQueue() };
        var toServer = new SlotSink { Queue = new SlotQueue() };
        byte[] chunk = new byte[16 * 1024];
        long now = 0;

        void Step()
        {
            now++;
            server.Send(chunk);
            client.Send(chunk);
            server.Dispatch(ref toClient, now);
            client.Dispatch(ref toServer, now);
            Deliver(toClient.Queue, client, now);
            Deliver(toServer.Queue, server, now);
            server.ConsumeReceived(server.ReceiveAvailable);
            client.PeekReceived(out ReadOnlySpan<byte> head, out ReadOnlySpan<byte> tail);
            client.ConsumeReceived(head.Length + tail.Length);
        }

        for (int i = 0; i < 200; i++)
        {
            Step(); // warm up: JIT, tiering
        }

        long before = GC.GetAllocatedBytesForCurrentThread();
        long acked = server.BytesAcked;
        for (int i = 0; i < 2000; i++)
        {
            Step();
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.True(server.BytesAcked - acked > 10 * 1024 * 1024, $"only {server.BytesAcked - acked} bytes moved");
        Assert.Equal(0, allocated);
    }
}
