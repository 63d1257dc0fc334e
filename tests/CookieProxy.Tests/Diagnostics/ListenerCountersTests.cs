using CookieProxy.Diagnostics;

namespace CookieProxy.Tests.Diagnostics;

public class ListenerCountersTests
{
    [Fact]
    public void EachListenerCountsApartAndTheThreadsAddUp()
    {
        var a = new ListenerCounters(2);
        var b = new ListenerCounters(3);
        a.Increment(0, ListenerCounter.SynReceived);
        a.Increment(1, ListenerCounter.CookieValid);
        b.Increment(2, ListenerCounter.FlowsCreated);
        b.Increment(0, ListenerCounter.SynReceived);

        var total = new ListenerCounters(1);
        a.AddTo(total);
        b.AddTo(total);

        Assert.Equal(3, total.Listeners);
        Assert.Equal(2, total.Read(0, ListenerCounter.SynReceived));
        Assert.Equal(1, total.Read(1, ListenerCounter.CookieValid));
        Assert.Equal(0, total.Read(1, ListenerCounter.SynReceived));
        Assert.Equal(1, total.Read(2, ListenerCounter.FlowsCreated));
    }

    [Fact]
    public void AListenerBeyondTheArrayIsNotCountedUntilTheArrayGrowsAndNothingThrows()
    {
        var c = new ListenerCounters(1);
        c.Increment(1, ListenerCounter.SynReceived);
        c.Increment(-1, ListenerCounter.SynReceived);
        Assert.Equal(0, c.Read(1, ListenerCounter.SynReceived));
        Assert.Equal(0, c.Read(-1, ListenerCounter.SynReceived));

        c.Increment(0, ListenerCounter.CookieInvalid);
        c.EnsureListeners(2);
        c.Increment(1, ListenerCounter.SynReceived);

        Assert.Equal(1, c.Read(0, ListenerCounter.CookieInvalid));
        Assert.Equal(1, c.Read(1, ListenerCounter.SynReceived));
    }
}
