using CookieProxy.Tcp;
using CookieProxy.Tests.Tcp;

namespace CookieProxy.Tests.Memory;

/// <summary>
/// The endpoint's side of the host's memory budget (TcpEndpoint.Memory.cs): the window the host grants, the
/// footprint it counts, rings that restart at their first page and give idle pages back.
/// </summary>
public class ReceiveWindowLimitTests : TcpTestBase
{
    // A 64 KiB ring with no window scaling: every window the endpoint can offer fits the 16-bit field.
    private static readonly TcpConfig s_config = new() { DelayedAckMs = 0, ReceiveBufferSize = 65535 };

    [Fact]
    public void A_limit_of_zero_keeps_the_window_to_what_the_syn_ack_already_promised()
    {
        InEstablished(s_config);
        Ep.ReceiveWindowLimit = 0;
        SendData(10_000);
        SentSegment ack = Recv();

        // Window scaling is off here: the field is bytes. The right edge stays at RCV.NXT + 65535 - 10000.
        Assert.Equal(ClientNext, ack.Ack);
        Assert.Equal(65535 - 10_000, ack.Window);
    }

    [Fact]
    public void Without_a_limit_the_window_opens_as_the_backend_reads()
    {
        InEstablished(s_config);
        SendData(40_000);
        Recv();
        ReadAll();
        SentSegment update = Recv();    // twice what the client still had: worth an update (Linux's rule)
        Assert.Equal(65535, update.Window);
    }

    [Fact]
    public void Raising_the_limit_over_a_zero_window_sends_the_window_update_the_client_waits_for()
    {
        InEstablished(s_config);
        Ep.ReceiveWindowLimit = 0;
        SendData(65535);
        SentSegment closed = Recv();
        Assert.Equal(0, closed.Window);
        ReadAll();    // the backend took everything, but the budget is spent: no update
        RecvNothing();

        Ep.ReceiveWindowLimit = int.MaxValue;
        SentSegment update = Recv();
        Assert.Equal(ClientNext, update.Ack);
        Assert.True(update.Window > 0);
    }

    [Fact]
    public void The_footprint_counts_the_promised_window_and_what_the_rings_touched()
    {
        InEstablished(s_config);
        Assert.Equal(65535, Ep.MemoryFootprint);    // the SYN+ACK's window, before any byte

        // Data inside the promised window, with no budget to open it further: nothing more is counted.
        Ep.ReceiveWindowLimit = 0;
        SendData(30_000);
        Recv();
        Assert.Equal(65535, Ep.MemoryFootprint);

        // With room, the window moves on: what arrived plus the new window (the 16-bit field, unscaled here).
        Ep.ReceiveWindowLimit = int.MaxValue;
        SendData(1000);
        SentSegment ack = Recv();
        Assert.Equal(31_000 + ack.Window, Ep.MemoryFootprint);
        Assert.Equal(ack.Window, Ep.ReceiveWindowAdvertised);
    }

    [Fact]
    public void An_emptied_receive_ring_restarts_at_its_first_page_and_can_give_its_pages_back()
    {
        Pool = new RingBufferPool(s_config.ReceiveBufferSize, maxPooled: 4, maxColdPooled: 4, (a, n) =>
        {
            a.AsSpan(0, n).Clear();
            return true;
        });
        InEstablished(s_config);
        SendData(40_000);
        Recv();
        ReadAll();
        Recv();    // window update

        // Empty again: the next bytes land at the ring's start, in pages already touched.
        long footprint = Ep.MemoryFootprint;
        SendData(10_000);
        Recv();
        Assert.Equal(footprint, Ep.MemoryFootprint);
        ReadAll();
        DispatchAll();

        Assert.Equal(40_000, Ep.TrimBuffers());
        Assert.Equal(0, Ep.TrimBuffers());    // nothing left to give
        Pool = null;
    }

    [Fact]
    public void Send_space_within_a_budget_is_free_in_pages_already_touched()
    {
        InEstablished(s_config);
        Assert.Equal(0, Ep.SendSpaceWithin(0));    // a fresh ring: every byte touches a new page
        Assert.Equal(1000, Ep.SendSpaceWithin(1000));
        Assert.Equal(1000, Ep.Send(new byte[1000]));
        Assert.Equal(0, Ep.SendSpaceWithin(0));
        Assert.Equal(s_config.SendBufferSize - 1000, Ep.SendSpaceWithin(long.MaxValue));
    }
}
