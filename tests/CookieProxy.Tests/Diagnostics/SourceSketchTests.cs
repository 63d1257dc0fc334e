using System.Net;
using CookieProxy.Diagnostics;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Diagnostics;

public class SourceSketchTests
{
    private const long T0 = 1_763_700_000_000;

    private static IpAddr Ip(string text) => IpAddr.FromIPAddress(IPAddress.Parse(text));

    private static SourceCount[] Completed(SourceSketch sketch, out SourceWindow window)
    {
        var buffer = new SourceCount[sketch.Capacity];
        window = sketch.CopyCompleted(buffer);
        return buffer[..window.Entries];
    }

    [Fact]
    public void SourcesAreCountedByPrefixAndShownOnceTheirWindowCompletes()
    {
        var sketch = new SourceSketch(ipv4PrefixLength: 24, ipv6PrefixLength: 48, sampleEvery: 1);
        sketch.Advance(T0);
        for (int i = 0; i < 30; i++)
        {
            sketch.OnSyn(Ip($"198.18.1.{i + 1}"));
        }
        for (int i = 0; i < 5; i++)
        {
            sketch.OnSyn(Ip($"2001:db8:1:{i}::7"));
        }
        Assert.Empty(Completed(sketch, out _));    // the window is still open

        sketch.Advance(T0 + 1000);
        SourceCount[] top = Completed(sketch, out SourceWindow window);

        Assert.Equal(2, top.Length);
        Assert.Contains(new SourceCount(Ip("198.18.1.0"), 30, 0), top);
        Assert.Contains(new SourceCount(Ip("2001:db8:1::"), 5, 0), top);
        Assert.Equal(1.0, window.Seconds);
        Assert.Equal(35, window.Samples);
    }

    [Fact]
    public void OnlyOneInSampleEverySynsIsCounted()
    {
        var sketch = new SourceSketch(sampleEvery: 8);
        sketch.Advance(T0);
        for (int i = 0; i < 800; i++)
        {
            sketch.OnSyn(Ip("198.18.1.9"));
        }
        sketch.Advance(T0 + 1000);

        SourceCount only = Assert.Single(Completed(sketch, out SourceWindow window));
        Assert.Equal(100, only.Count);
        Assert.Equal(8, window.SampleEvery);
    }

    [Fact]
    public void AHeavySourceAmidRandomSourcesKeepsItsPlaceAndANearlyExactCount()
    {
        var sketch = new SourceSketch(ipv4PrefixLength: 32, capacity: 16, sampleEvery: 1);
        var random = new Random(11);
        sketch.Advance(T0);
        int heavy = 0;
        for (int i = 0; i < 20_000; i++)
        {
            if (i % 5 == 0)
            {
                sketch.OnSyn(Ip("198.18.1.9"));
                heavy++;
            }
            else
            {
                sketch.OnSyn(IpAddr.FromV4((uint)random.Next()));
            }
        }
        sketch.Advance(T0 + 1000);

        SourceCount[] top = Completed(sketch, out _);
        SourceCount best = top.MaxBy(c => c.Guaranteed);
        Assert.Equal(Ip("198.18.1.9"), best.Prefix);
        Assert.InRange(best.Guaranteed, 1, heavy);
        Assert.True(best.Count >= heavy, "space-saving never undercounts a kept entry");
        Assert.All(top.Where(c => c.Prefix != best.Prefix), c => Assert.True(c.Guaranteed <= 2, $"{c} is noise"));
    }

    [Fact]
    public void AWindowIsReplacedByTheNextAndANewWindowStartsEmpty()
    {
        var sketch = new SourceSketch(sampleEvery: 1);
        sketch.Advance(T0);
        sketch.OnSyn(Ip("198.18.1.1"));
        sketch.Advance(T0 + 1000);
        sketch.OnSyn(Ip("198.18.2.1"));
        sketch.Advance(T0 + 1500);    // not a second yet: the first window is still the completed one
        Assert.Equal(Ip("198.18.1.0"), Assert.Single(Completed(sketch, out _)).Prefix);

        sketch.Advance(T0 + 2000);
        Assert.Equal(Ip("198.18.2.0"), Assert.Single(Completed(sketch, out _)).Prefix);
        sketch.Advance(T0 + 3000);
        Assert.Empty(Completed(sketch, out SourceWindow quiet));
        Assert.Equal(T0 + 3000, quiet.EndUnixMs);
    }

    [Fact]
    public void AReaderOnAnotherThreadNeverSeesAHalfSwappedWindow()
    {
        // Every window holds exactly 100 samples of one prefix, the window's own number: a reader that saw a
        // table being cleared or refilled would see another count or a mixed prefix.
        var sketch = new SourceSketch(ipv4PrefixLength: 32, sampleEvery: 1);
        using var stop = new ManualResetEventSlim();
        var writer = new Thread(() =>
        {
            long now = T0;
            sketch.Advance(now);
            for (uint w = 1; !stop.IsSet && w < 2_000_000; w++)
            {
                for (int i = 0; i < 100; i++)
                {
                    sketch.OnSyn(IpAddr.FromV4(w));
                }
                now += 1000;
                sketch.Advance(now);
            }
        });
        writer.Start();
        var buffer = new SourceCount[sketch.Capacity];
        int checkedWindows = 0;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (clock.ElapsedMilliseconds < 500 && writer.IsAlive)
        {
            SourceWindow window = sketch.CopyCompleted(buffer);
            if (window.Entries == 0)
            {
                continue;
            }
            Assert.Equal(1, window.Entries);
            Assert.Equal(100, buffer[0].Count);
            Assert.Equal(100, window.Samples);
            checkedWindows++;
        }
        stop.Set();
        writer.Join();
        Assert.True(checkedWindows > 0);
    }
}
