using System.Globalization;
using CookieProxy.Platform;
using CookieProxy.Tcp;
using CookieProxy.Tests.Support;

namespace CookieProxy.Tests.Memory;

/// <summary>
/// Issue 12.5: free ring arrays beyond the hot few keep their address but give their pages back, so a burst leaves
/// no resident memory and the next burst allocates nothing.
/// </summary>
[Collection(SerialCollection.Name)]
public class RingPoolDecommitTests
{
    private const int Length = 256 * 1024;

    /// <summary>A stand-in for madvise that records the calls and clears like the kernel would.</summary>
    private sealed class FakeDecommit
    {
        public int Calls;

        public bool Decommit(byte[] array, int length)
        {
            Calls++;
            array.AsSpan(0, length).Clear();
            return true;
        }
    }

    [Fact]
    public void A_second_wave_split_differently_over_two_threads_reuses_the_first_waves_arrays_through_the_shared_depot()
    {
        // Issue 12 regression: per-thread cold lists made the thread that got more flows in the second wave allocate
        // while the other's cold arrays sat unused (856 rings created after the second of two 400-flow waves, 800 after the first).
        var fake = new FakeDecommit();
        var depot = new ColdRingDepot(Length, capacity: 100);
        var a = new RingBufferPool(Length, maxPooled: 2, maxColdPooled: 100, fake.Decommit, depot);
        var b = new RingBufferPool(Length, maxPooled: 2, maxColdPooled: 100, fake.Decommit, depot);

        Wave(a, 30, b, 10);    // 40 flows: 30 on thread a, 10 on b
        Assert.Equal(40, a.Created + b.Created);
        Assert.Equal(36, depot.Count);    // all but the two hot arrays of each pool
        Assert.Equal((2, 2, 0), (a.Pooled, b.Pooled, a.ColdPooled));
        Assert.Equal(36, a.SharedColdPooled);

        Wave(a, 10, b, 30);    // the same 40 flows, the other way round
        Assert.Equal(40, a.Created + b.Created);
        Assert.Equal(36, depot.Count);

        static void Wave(RingBufferPool a, int onA, RingBufferPool b, int onB)
        {
            List<byte[]> fromA = Enumerable.Range(0, onA).Select(_ => a.Rent()).ToList();
            List<byte[]> fromB = Enumerable.Range(0, onB).Select(_ => b.Rent()).ToList();
            Assert.All(fromA.Concat(fromB), array => Assert.False(array.AsSpan().ContainsAnyExcept((byte)0)));
            foreach (byte[] array in fromA)
            {
                array.AsSpan(0, 100).Fill(0xA5);
                a.Return(array, 100);
            }
            foreach (byte[] array in fromB)
            {
                array.AsSpan(0, 100).Fill(0xA5);
                b.Return(array, 100);
            }
        }
    }

    [Fact]
    public void A_full_shared_depot_leaves_further_returns_to_the_gc()
    {
        var fake = new FakeDecommit();
        var depot = new ColdRingDepot(Length, capacity: 3);
        var pool = new RingBufferPool(Length, maxPooled: 1, maxColdPooled: 100, fake.Decommit, depot);
        byte[][] rented = Enumerable.Range(0, 6).Select(_ => pool.Rent()).ToArray();
        foreach (byte[] array in rented)
        {
            pool.Return(array, 0);
        }

        Assert.Equal((1, 3, 2L), (pool.Pooled, depot.Count, pool.Discarded));
        Assert.Throws<ArgumentException>(() => new RingBufferPool(Length, 1, 0, decommit: null, depot));
        Assert.Throws<ArgumentException>(() => new RingBufferPool(Length * 2, 1, 0, fake.Decommit, depot));
    }

    [Fact]
    public void Arrays_beyond_the_hot_ones_are_decommitted_kept_and_rented_again_before_any_allocation()
    {
        var fake = new FakeDecommit();
        var pool = new RingBufferPool(Length, maxPooled: 2, maxColdPooled: 100, fake.Decommit);

        var wave = new List<byte[]>();
        for (int i = 0; i < 50; i++)
        {
            byte[] a = pool.Rent();
            a.AsSpan(0, 5000).Fill(0xA5);
            wave.Add(a);
        }
        Assert.Equal(50, pool.Created);
        int callsAfterCreation = fake.Calls;    // each new array is decommitted as it is created
        Assert.Equal(50, callsAfterCreation);

        foreach (byte[] a in wave)
        {
            pool.Return(a, 5000);
        }
        Assert.Equal(50, pool.Pooled);
        Assert.Equal(48, pool.ColdPooled);
        Assert.Equal(callsAfterCreation + 48, fake.Calls);

        // The second wave: every array is one of the first wave's, all zero.
        var again = new HashSet<byte[]>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < 50; i++)
        {
            byte[] a = pool.Rent();
            Assert.False(a.AsSpan().ContainsAnyExcept((byte)0));
            again.Add(a);
        }
        Assert.Equal(50, pool.Created);
        Assert.True(again.SetEquals(wave));
    }

    [Fact]
    public void Without_a_decommit_function_there_is_no_cold_list_and_the_rest_goes_to_the_gc()
    {
        var pool = new RingBufferPool(Length, maxPooled: 2, maxColdPooled: 100);
        Assert.Equal(0, pool.MaxColdPooled);
        var arrays = new[] { pool.Rent(), pool.Rent(), pool.Rent() };
        foreach (byte[] a in arrays)
        {
            pool.Return(a, 0);
        }
        Assert.Equal(2, pool.Pooled);
        Assert.Equal(1, pool.Discarded);
    }

    [LinuxFact]
    public void Decommitted_pages_read_zero_and_the_partial_pages_at_the_ends_are_cleared()
    {
        byte[] array = GC.AllocateArray<byte>(Length, pinned: true);
        array.AsSpan().Fill(0x5A);
        int length = Length - 1000;    // the end of the range falls inside a page

        Assert.True(PinnedPages.TryDecommit(array, length));

        Assert.False(array.AsSpan(0, length).ContainsAnyExcept((byte)0));
        Assert.False(array.AsSpan(length).ContainsAnyExcept((byte)0x5A));    // beyond the range: untouched
    }

    [LinuxFact]
    public void Decommitting_gives_the_resident_memory_back()
    {
        const int Arrays = 64;    // 16 MiB
        var arrays = new byte[Arrays][];
        for (int i = 0; i < Arrays; i++)
        {
            arrays[i] = GC.AllocateArray<byte>(Length, pinned: true);
            arrays[i].AsSpan().Fill(1);
        }
        long touched = RssKiB();

        foreach (byte[] a in arrays)
        {
            Assert.True(PinnedPages.TryDecommit(a, a.Length));
        }
        long released = touched - RssKiB();

        // 16 MiB were resident; allow for other threads' allocations meanwhile.
        Assert.True(released > 12 * 1024, $"RSS fell by {released} KiB after decommitting 16 MiB");
        GC.KeepAlive(arrays);
    }

    [LinuxFact]
    public void A_pool_with_the_real_decommit_keeps_arrays_zero_across_reuse()
    {
        var pool = new RingBufferPool(Length, maxPooled: 0, maxColdPooled: 4, PinnedPages.TryDecommit);
        byte[] a = pool.Rent();
        a.AsSpan().Fill(7);
        pool.Return(a, a.Length);
        byte[] b = pool.Rent();
        Assert.Same(a, b);
        Assert.False(b.AsSpan().ContainsAnyExcept((byte)0));
        Assert.Equal(1, pool.Created);
    }

    private static long RssKiB()
    {
        foreach (string line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return long.Parse(line["VmRSS:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
            }
        }
        throw new InvalidOperationException("no VmRSS");
    }
}
