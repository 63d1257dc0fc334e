using CookieProxy.Crypto;

namespace CookieProxy.Tests.Crypto;

[Collection(CookieProxy.Tests.Support.SerialCollection.Name)]
public class SipHashBatchTests
{
    [Fact]
    public void Ipv4BatchHashesEveryMessageLikeHash3()
    {
        var random = new Random(4);
        var key = new SipKey(SipHashTests.NextUInt64(random), SipHashTests.NextUInt64(random));
        var batch = new SipHashBatch(wordsPerMessage: 3);
        var messages = new List<ulong[]>();
        while (!batch.IsFull)
        {
            ulong[] m = [SipHashTests.NextUInt64(random), SipHashTests.NextUInt64(random), SipHashTests.NextUInt64(random)];
            Assert.Equal(messages.Count, batch.Add(m[0], m[1], m[2]));
            messages.Add(m);
        }

        batch.Compute(key);
        Assert.Equal(SipHashBatch.DefaultCapacity, batch.Count);
        for (int i = 0; i < messages.Count; i++)
        {
            Assert.Equal(SipHash.Hash3(key, messages[i][0], messages[i][1], messages[i][2]), batch.GetHash(i));
            Assert.Equal(batch.GetHash(i), batch.Hashes[i]);
        }
    }

    [Fact]
    public void PartialIpv6BatchesAfterClearHashLikeHash6()
    {
        var random = new Random(6);
        var key = new SipKey(SipHashTests.NextUInt64(random), SipHashTests.NextUInt64(random));
        var batch = new SipHashBatch(wordsPerMessage: 6);
        foreach (int count in new[] { 1, 3, 4, 5, 9, 37, 64 })
        {
            batch.Clear();
            var messages = new ulong[count][];
            for (int i = 0; i < count; i++)
            {
                messages[i] = new ulong[6];
                SipHashTests.FillRandom(random, messages[i]);
                ulong[] m = messages[i];
                if (i % 2 == 0)
                {
                    batch.Add(m[0], m[1], m[2], m[3], m[4], m[5]);
                }
                else
                {
                    batch.Add(m);
                }
            }

            batch.Compute(key);
            Assert.Equal(count, batch.Hashes.Length);
            for (int i = 0; i < count; i++)
            {
                ulong[] m = messages[i];
                Assert.Equal(SipHash.Hash6(key, m[0], m[1], m[2], m[3], m[4], m[5]), batch.GetHash(i));
            }
        }
    }

    [Fact]
    public void ReferenceVectorComesOutOfEveryBatchSlot()
    {
        var key = SipKey.FromBytes(SipHashReferenceVectors.KeyBytes());
        ulong[] reference = SipHashReferenceVectors.MessageWords(3);
        var batch = new SipHashBatch(wordsPerMessage: 3);
        for (int i = 0; i < batch.Capacity; i++)
        {
            batch.Add(reference[0], reference[1], reference[2]);
        }

        batch.Compute(key);
        foreach (ulong hash in batch.Hashes)
        {
            Assert.Equal(SipHashReferenceVectors.Expected(24), hash);
        }
    }

    [Fact]
    public void AddComputeAndReadAllocateNothingAfterConstruction()
    {
        var key = new SipKey(1, 2);
        var v4 = new SipHashBatch(3);
        var v6 = new SipHashBatch(6);
        ulong sink = RunBatches(key, v4, v6); // warm up: JIT, tiering
        long before = GC.GetAllocatedBytesForCurrentThread();
        for (int round = 0; round < 100; round++)
        {
            sink += RunBatches(key, v4, v6);
        }

        long allocated = GC.GetAllocatedBytesForCurrentThread() - before;
        Assert.Equal(0, allocated);
        Assert.NotEqual(0UL, sink);
    }

    [Fact]
    public void MisuseThrows()
    {
        var batch = new SipHashBatch(3, capacity: 2);
        Assert.Throws<InvalidOperationException>(() => batch.Add(1, 2, 3, 4, 5, 6));
        Assert.Throws<ArgumentException>(() => batch.Add(new ulong[] { 1, 2 }));
        batch.Add(1, 2, 3);
        Assert.Throws<InvalidOperationException>(() => batch.GetHash(0));
        batch.Compute(default);
        Assert.Throws<ArgumentOutOfRangeException>(() => batch.GetHash(1));
        batch.Add(1, 2, 3);
        Assert.True(batch.IsFull);
        Assert.Throws<InvalidOperationException>(() => batch.Add(1, 2, 3));
        Assert.Throws<ArgumentOutOfRangeException>(() => new SipHashBatch(0));
    }

    private static ulong RunBatches(SipKey key, SipHashBatch v4, SipHashBatch v6)
    {
        ulong sum = 0;
        v4.Clear();
        v6.Clear();
        Span<ulong> m = stackalloc ulong[6];
        for (ulong i = 0; i < 64; i++)
        {
            v4.Add(i, i * 3, i * 7);
            m.Fill(i);
            v6.Add(m);
        }

        v4.Compute(key);
        v6.Compute(key);
        for (int i = 0; i < 64; i++)
        {
            sum += v4.GetHash(i) ^ v6.GetHash(i);
        }

        return sum;
    }
}
