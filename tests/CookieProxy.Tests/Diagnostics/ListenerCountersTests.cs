using System.Net;
using CookieProxy.Diagnostics;

namespace CookieProxy.Tests.Diagnostics;

public class ListenerCountersTests
{
    private static readonly IPEndPoint A = IPEndPoint.Parse("198.18.0.1:80");
    private static readonly IPEndPoint B = IPEndPoint.Parse("198.18.0.1:443");
    private static readonly IPEndPoint C = IPEndPoint.Parse("[2001:db8::1]:443");

    [Fact]
    public void EachEndpointCountsApartAndTheThreadsAddUpByEndpoint()
    {
        var t0 = new ListenerCounters();
        var t1 = new ListenerCounters();
        t0.Increment(t0.SlotFor(A), ListenerCounter.SynReceived);
        t0.Increment(t0.SlotFor(B), ListenerCounter.CookieValid);
        // The other thread met the endpoints in another order: its slots differ, the sums must not.
        t1.Increment(t1.SlotFor(C), ListenerCounter.FlowsCreated);
        t1.Increment(t1.SlotFor(A), ListenerCounter.SynReceived);

        var total = new ListenerCounters();
        t0.AddTo(total);
        t1.AddTo(total);

        Assert.Equal([A, B, C], total.Endpoints);
        Assert.Equal(2, total.Read(A, ListenerCounter.SynReceived));
        Assert.Equal(1, total.Read(B, ListenerCounter.CookieValid));
        Assert.Equal(0, total.Read(B, ListenerCounter.SynReceived));
        Assert.Equal(1, total.Read(C, ListenerCounter.FlowsCreated));
    }

    [Fact]
    public void AnEndpointKeepsItsSlotAndItsCountsAndManyEndpointsFit()
    {
        var c = new ListenerCounters();
        int a = c.SlotFor(A);
        c.Increment(a, ListenerCounter.CookieInvalid);
        for (int port = 1000; port < 1100; port++)
        {
            c.Increment(c.SlotFor(new IPEndPoint(IPAddress.Parse("198.18.0.1"), port)), ListenerCounter.SynReceived);
        }

        Assert.Equal(a, c.SlotFor(A));
        Assert.Equal(1, c.Read(A, ListenerCounter.CookieInvalid));
        Assert.Equal(1, c.Read(new IPEndPoint(IPAddress.Parse("198.18.0.1"), 1099), ListenerCounter.SynReceived));
        Assert.Equal(101, c.Endpoints.Count);
    }

    [Fact]
    public void AnUnknownSlotOrEndpointIsNotCountedAndNothingThrows()
    {
        var c = new ListenerCounters();
        c.Increment(1000, ListenerCounter.SynReceived);
        c.Increment(-1, ListenerCounter.SynReceived);
        Assert.Equal(0, c.Read(1000, ListenerCounter.SynReceived));
        Assert.Equal(0, c.Read(-1, ListenerCounter.SynReceived));
        Assert.Equal(0, c.Read(A, ListenerCounter.SynReceived));
    }
}
