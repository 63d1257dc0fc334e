using CookieProxy.Diagnostics;
using CookieProxy.Host.Control;
using CookieProxy.Limits;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Control;

/// <summary>
/// Capture threads' counters and tables, written by the test instead of capture threads, behind a real
/// <see cref="ProxyView"/>: what the control socket and /metrics read.
/// </summary>
internal sealed class FakeProxy
{
    public FakeProxy(int threads = 2, SourceLimiter?[]? limiters = null)
    {
        for (int i = 0; i < threads; i++)
        {
            Counters.Add(new ProxyCounters());
            SourceLimiter? limiter = limiters?[i];
            Threads.Add(new ThreadView(new ListenerCounters(),
                limiter is null ? new SourceSketch(sampleEvery: 1) : new SourceSketch(limiter.Config.Ipv4PrefixLength, limiter.Config.Ipv6PrefixLength, sampleEvery: 1),
                limiter));
        }
        View = new ProxyView(Snapshot, () => Threads, () => Listeners);
    }

    public List<ProxyCounters> Counters { get; } = [];

    public List<ThreadView> Threads { get; } = [];

    public List<ListenerInfo> Listeners { get; } =
    [
        new(System.Net.IPEndPoint.Parse("198.18.0.1:80"), "127.0.0.1:8080"),
        new(System.Net.IPEndPoint.Parse("[2001:db8::1]:443"), "127.0.0.1:8443"),
    ];

    public ProxyView View { get; }

    private ProxyCounters[] Snapshot()
    {
        var copies = new ProxyCounters[Counters.Count];
        for (int i = 0; i < copies.Length; i++)
        {
            copies[i] = new ProxyCounters();
            Counters[i].AddTo(copies[i]);
        }
        return copies;
    }

    /// <summary>Thread <paramref name="t"/> answers <paramref name="n"/> SYNs to listener <paramref name="listener"/>.</summary>
    public void Syns(int t, int n, int listener = 0, string source = "198.18.1.9")
    {
        Counters[t][Counter.FramesReceived] += n;
        Counters[t][Counter.SynReceived] += n;
        Counters[t][Counter.SynAckSent] += n;
        IpAddr src = IpAddr.FromIPAddress(System.Net.IPAddress.Parse(source));
        for (int i = 0; i < n; i++)
        {
            ListenerCounters l = Threads[t].Listeners;
            l.Increment(l.SlotFor(Listeners[listener].Listen), ListenerCounter.SynReceived);
            Threads[t].Sketch!.OnSyn(src);
        }
    }

    public void Drops(int t, DropReason reason, int n)
    {
        Counters[t][Counter.FramesReceived] += n;
        for (int i = 0; i < n; i++)
        {
            Counters[t].Drop(reason);
        }
    }

    /// <summary>Closes every thread's sketch window at <paramref name="unixMs"/>.</summary>
    public void Advance(long unixMs)
    {
        foreach (ThreadView t in Threads)
        {
            t.Sketch!.Advance(unixMs);
        }
    }
}
