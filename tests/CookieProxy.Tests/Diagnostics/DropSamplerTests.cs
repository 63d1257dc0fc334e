using CookieProxy.Diagnostics;

namespace CookieProxy.Tests.Diagnostics;

public class DropSamplerTests
{
    private readonly ProxyCounters _counters = new();

    private static byte[] Frame(int length, byte fill)
    {
        var frame = new byte[length];
        Array.Fill(frame, fill);
        return frame;
    }

    private static List<(DropSample Sample, byte[] Bytes)> Drain(DropSampler sampler)
    {
        var samples = new List<(DropSample, byte[])>();
        var buffer = new byte[sampler.SnapBytes];
        int n;
        while ((n = sampler.TryRead(buffer, out DropSample sample)) >= 0)
        {
            samples.Add((sample, buffer[..n]));
        }
        return samples;
    }

    [Fact]
    public void OneInEveryNDropsIsKeptOnceTheFirstFramesOfTheReasonAreTaken()
    {
        var sampler = new DropSampler(_counters, every: 10, firstPerReason: 3);
        for (int i = 0; i < 100; i++)
        {
            sampler.OnDrop(Frame(60, (byte)i), DropReason.CookieInvalid);
        }

        List<(DropSample Sample, byte[] Bytes)> kept = Drain(sampler);
        // Frames 0, 1, 2 (the first of the reason), then every tenth: 9, 19, ..., 99.
        Assert.Equal([0, 1, 2, 9, 19, 29, 39, 49, 59, 69, 79, 89, 99], kept.Select(k => (int)k.Bytes[0]));
        Assert.All(kept, k => Assert.Equal(DropReason.CookieInvalid, k.Sample.Reason));
        Assert.Equal(13, _counters[Counter.PcapSampled]);
        Assert.Equal(0, _counters[Counter.PcapSampleLost]);
    }

    [Fact]
    public void TheFirstFramesOfEveryNewReasonAreKeptEvenWhenTheCountdownIsFarOff()
    {
        var sampler = new DropSampler(_counters, every: 1_000_000, firstPerReason: 2);
        foreach (DropReason r in new[] { DropReason.RateLimited, DropReason.TcpBadChecksum, DropReason.RateLimited, DropReason.RateLimited, DropReason.TcpBadChecksum, DropReason.NoFlow })
        {
            sampler.OnDrop(Frame(54, 1), r);
        }

        Assert.Equal([DropReason.RateLimited, DropReason.TcpBadChecksum, DropReason.RateLimited, DropReason.TcpBadChecksum, DropReason.NoFlow],
            Drain(sampler).Select(k => k.Sample.Reason));
    }

    [Fact]
    public void ALongFrameIsCutAtTheSnapLengthAndKeepsItsOriginalLength()
    {
        var sampler = new DropSampler(_counters, every: 1, snapBytes: 128);
        sampler.OnDrop(Frame(9000, 7), DropReason.Ipv4BadTotalLength);

        (DropSample sample, byte[] bytes) = Assert.Single(Drain(sampler));
        Assert.Equal(128, bytes.Length);
        Assert.Equal(9000, sample.OriginalLength);
        Assert.All(bytes, b => Assert.Equal(7, b));
    }

    [Fact]
    public void AFullRingLosesNewSamplesAndCountsThemInsteadOfWaiting()
    {
        var sampler = new DropSampler(_counters, every: 1, slots: 4, firstPerReason: 0);
        for (int i = 0; i < 10; i++)
        {
            sampler.OnDrop(Frame(60, (byte)i), DropReason.NoFlow);
        }

        Assert.Equal([0, 1, 2, 3], Drain(sampler).Select(k => (int)k.Bytes[0]));
        Assert.Equal(4, _counters[Counter.PcapSampled]);
        Assert.Equal(6, _counters[Counter.PcapSampleLost]);

        sampler.OnDrop(Frame(60, 42), DropReason.NoFlow);
        Assert.Equal(42, Assert.Single(Drain(sampler)).Bytes[0]);
    }

    [Fact]
    public void SamplesCarryTheWallClockInMicroseconds()
    {
        var sampler = new DropSampler(_counters, every: 1);
        long before = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() * 1000;
        sampler.OnDrop(Frame(60, 0), DropReason.NoFlow);
        long after = (DateTimeOffset.UtcNow.ToUnixTimeMilliseconds() + 1) * 1000;

        long at = Assert.Single(Drain(sampler)).Sample.UnixMicroseconds;
        Assert.InRange(at, before, after);
    }

    [Fact]
    public void AProducerAndAConsumerOnTwoThreadsSeeEverySampleIntactAndInOrder()
    {
        var sampler = new DropSampler(_counters, every: 1, slots: 16, firstPerReason: 0);
        const int Frames = 200_000;
        var producer = new Thread(() =>
        {
            var frame = new byte[64];
            for (int i = 0; i < Frames; i++)
            {
                BitConverter.TryWriteBytes(frame, i);
                BitConverter.TryWriteBytes(frame.AsSpan(60), i);
                sampler.OnDrop(frame, DropReason.NoFlow);
            }
        });
        producer.Start();

        var buffer = new byte[sampler.SnapBytes];
        int last = -1, seen = 0;
        while (producer.IsAlive || sampler.Pending > 0)
        {
            int n = sampler.TryRead(buffer, out _);
            if (n < 0)
            {
                Thread.Yield();
                continue;
            }
            int head = BitConverter.ToInt32(buffer, 0);
            Assert.Equal(head, BitConverter.ToInt32(buffer, 60));    // never a half-written slot
            Assert.True(head > last, $"sample {head} after {last}");
            last = head;
            seen++;
        }
        producer.Join();

        Assert.Equal(Frames, seen + _counters[Counter.PcapSampleLost]);
        Assert.Equal(seen, _counters[Counter.PcapSampled]);
    }

    [Theory]
    [InlineData(0, 256)]
    [InlineData(1, 3)]
    [InlineData(1, 100)]
    public void AnEveryBelowOneOrASlotCountThatIsNoPowerOfTwoIsRefused(int every, int slots)
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new DropSampler(_counters, every, slots));
    }
}
