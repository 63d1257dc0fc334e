using System.Runtime.Intrinsics;
using CookieProxy.Crypto;
using Xunit.Abstractions;

namespace CookieProxy.Tests.Crypto;

/// <summary>
/// Pins every SipHash entry point to the reference vectors: the generic scalar hash for all 64,
/// the fixed-arity helpers and every batch strategy in every lane for the whole-word lengths, then
/// seeded random batches lane by lane against scalar. The vector strategies are run on every
/// machine (without acceleration the Vector256/Vector512 API falls back to software), so none of
/// these tests is skipped; <see cref="ReportsAndUsesTheAcceleratedPaths"/> says which ones the
/// hardware actually accelerates and checks that dispatch picks them.
/// </summary>
public class SipHashTests(ITestOutputHelper output)
{
    public delegate void BatchFunction(in SipKey key, ReadOnlySpan<ulong> words, int wordsPerMessage, int count, Span<ulong> hashes);

    public static TheoryData<string> Strategies => new() { "Dispatch", "Scalar", "Vector256", "Vector512" };

    public static TheoryData<int> VectorLengths()
    {
        var data = new TheoryData<int>();
        for (int length = 0; length < SipHashReferenceVectors.Count; length++)
        {
            data.Add(length);
        }

        return data;
    }

    // Every message length that is whole words and has a reference vector: 8, 16, .., 56 bytes.
    public static TheoryData<string, int> StrategiesByWordCount()
    {
        var data = new TheoryData<string, int>();
        foreach (string strategy in new[] { "Dispatch", "Scalar", "Vector256", "Vector512" })
        {
            for (int words = 1; words <= 7; words++)
            {
                data.Add(strategy, words);
            }
        }

        return data;
    }

    private static readonly SipKey s_referenceKey = SipKey.FromBytes(SipHashReferenceVectors.KeyBytes());

    internal static BatchFunction Strategy(string name) => name switch
    {
        "Dispatch" => SipHash.HashBatch,
        "Scalar" => SipHash.HashBatchScalar,
        "Vector256" => SipHash.HashBatchVector256,
        "Vector512" => SipHash.HashBatchVector512,
        _ => throw new ArgumentOutOfRangeException(nameof(name)),
    };

    [Theory]
    [MemberData(nameof(VectorLengths))]
    public void GenericHashMatchesTheReferenceVector(int length)
    {
        ulong actual = SipHash.Hash(s_referenceKey, SipHashReferenceVectors.Message(length));
        Assert.Equal(SipHashReferenceVectors.Expected(length), actual);
    }

    [Fact]
    public void KeyIsReadLittleEndianLikeTheReference()
    {
        Assert.Equal(0x0706050403020100UL, s_referenceKey.K0);
        Assert.Equal(0x0f0e0d0c0b0a0908UL, s_referenceKey.K1);

        Span<byte> roundTrip = stackalloc byte[SipKey.Size];
        s_referenceKey.WriteBytes(roundTrip);
        Assert.Equal(SipHashReferenceVectors.KeyBytes(), roundTrip.ToArray());
    }

    [Theory]
    [InlineData(0)]
    [InlineData(15)]
    [InlineData(17)]
    public void KeyOfTheWrongLengthIsRejected(int length)
        => Assert.Throws<ArgumentException>(() => SipKey.FromBytes(new byte[length]));

    [Fact]
    public void Hash3MatchesTheReferenceVectorFor24Bytes()
    {
        ulong[] w = SipHashReferenceVectors.MessageWords(3);
        Assert.Equal(SipHashReferenceVectors.Expected(24), SipHash.Hash3(s_referenceKey, w[0], w[1], w[2]));
    }

    [Fact]
    public void Hash6MatchesTheReferenceVectorFor48Bytes()
    {
        ulong[] w = SipHashReferenceVectors.MessageWords(6);
        Assert.Equal(SipHashReferenceVectors.Expected(48), SipHash.Hash6(s_referenceKey, w[0], w[1], w[2], w[3], w[4], w[5]));
    }

    [Fact]
    public void FixedArityHelpersEqualTheGenericHashOfTheSameBytes()
    {
        var random = new Random(0x5195);
        Span<byte> bytes = stackalloc byte[48];
        for (int trial = 0; trial < 2000; trial++)
        {
            var key = new SipKey(NextUInt64(random), NextUInt64(random));
            random.NextBytes(bytes);
            ulong[] w = new ulong[6];
            for (int i = 0; i < w.Length; i++)
            {
                w[i] = BitConverter.ToUInt64(bytes.Slice(8 * i, 8));
            }

            Assert.True(BitConverter.IsLittleEndian);
            Assert.Equal(SipHash.Hash(key, bytes.Slice(0, 24)), SipHash.Hash3(key, w[0], w[1], w[2]));
            Assert.Equal(SipHash.Hash(key, bytes), SipHash.Hash6(key, w[0], w[1], w[2], w[3], w[4], w[5]));
        }
    }

    /// <summary>
    /// The reference message of <paramref name="wordCount"/> words, placed in lane j of a batch whose
    /// other lanes are random, comes out of lane j as the reference vector, for every lane j of many
    /// batch sizes (including sizes that are not a multiple of the vector width, whose last pass overlaps).
    /// </summary>
    [Theory]
    [MemberData(nameof(StrategiesByWordCount))]
    public void BatchMatchesTheReferenceVectorInEveryLane(string strategy, int wordCount)
    {
        BatchFunction hashBatch = Strategy(strategy);
        ulong[] message = SipHashReferenceVectors.MessageWords(wordCount);
        ulong expected = SipHashReferenceVectors.Expected(8 * wordCount);
        var random = new Random(1000 + wordCount);

        int lanesChecked = 0;
        foreach (int count in BatchSizes())
        {
            ulong[] words = new ulong[wordCount * count];
            ulong[] hashes = new ulong[count];
            for (int lane = 0; lane < count; lane++)
            {
                FillRandom(random, words);
                for (int w = 0; w < wordCount; w++)
                {
                    words[(w * count) + lane] = message[w];
                }

                hashes.AsSpan().Fill(0xA5A5_A5A5_A5A5_A5A5);
                hashBatch(s_referenceKey, words, wordCount, count, hashes);
                if (hashes[lane] != expected)
                {
                    Assert.Fail($"{strategy}: {wordCount} words, batch of {count}, lane {lane}: got {hashes[lane]:x16}, expected {expected:x16}");
                }

                lanesChecked++;
            }
        }

        output.WriteLine($"{strategy}, {wordCount} words: {lanesChecked} lane positions checked");
    }

    /// <summary>Seeded random batches (sizes 1..64, 1..8 words, random keys) equal scalar lane by lane.</summary>
    [Theory]
    [MemberData(nameof(Strategies))]
    public void RandomBatchesEqualScalarLaneByLane(string strategy)
    {
        BatchFunction hashBatch = Strategy(strategy);
        var random = new Random(0xC00C1E);
        for (int wordCount = 1; wordCount <= 8; wordCount++)
        {
            for (int count = 1; count <= 64; count++)
            {
                var key = new SipKey(NextUInt64(random), NextUInt64(random));
                ulong[] words = new ulong[wordCount * count];
                FillRandom(random, words);
                ulong[] hashes = new ulong[count];
                hashBatch(key, words, wordCount, count, hashes);

                byte[] bytes = new byte[8 * wordCount];
                for (int lane = 0; lane < count; lane++)
                {
                    for (int w = 0; w < wordCount; w++)
                    {
                        BitConverter.TryWriteBytes(bytes.AsSpan(8 * w), words[(w * count) + lane]);
                    }

                    ulong expected = SipHash.Hash(key, bytes);
                    if (hashes[lane] != expected)
                    {
                        Assert.Fail($"{strategy}: {wordCount} words, batch of {count}, lane {lane}: got {hashes[lane]:x16}, expected {expected:x16}");
                    }
                }
            }
        }
    }

    /// <summary>The final block carries the length mod 256: 32 words (256 bytes) wraps to 0.</summary>
    [Theory]
    [MemberData(nameof(Strategies))]
    public void LongMessagesCarryTheLengthModulo256(string strategy)
    {
        BatchFunction hashBatch = Strategy(strategy);
        var random = new Random(256);
        foreach (int wordCount in new[] { 9, 31, 32, 33, 40 })
        {
            const int Count = 11;
            var key = new SipKey(NextUInt64(random), NextUInt64(random));
            ulong[] words = new ulong[wordCount * Count];
            FillRandom(random, words);
            ulong[] hashes = new ulong[Count];
            hashBatch(key, words, wordCount, Count, hashes);

            byte[] bytes = new byte[8 * wordCount];
            for (int lane = 0; lane < Count; lane++)
            {
                for (int w = 0; w < wordCount; w++)
                {
                    BitConverter.TryWriteBytes(bytes.AsSpan(8 * w), words[(w * Count) + lane]);
                }

                Assert.Equal(SipHash.Hash(key, bytes), hashes[lane]);
            }
        }
    }

    [Theory]
    [MemberData(nameof(Strategies))]
    public void BatchAgreesWithTheFixedArityHelpers(string strategy)
    {
        BatchFunction hashBatch = Strategy(strategy);
        var random = new Random(36);
        var key = new SipKey(NextUInt64(random), NextUInt64(random));
        const int Count = 64;
        ulong[] v4 = new ulong[3 * Count];
        ulong[] v6 = new ulong[6 * Count];
        FillRandom(random, v4);
        FillRandom(random, v6);
        ulong[] h4 = new ulong[Count];
        ulong[] h6 = new ulong[Count];
        hashBatch(key, v4, 3, Count, h4);
        hashBatch(key, v6, 6, Count, h6);

        for (int i = 0; i < Count; i++)
        {
            Assert.Equal(SipHash.Hash3(key, v4[i], v4[Count + i], v4[(2 * Count) + i]), h4[i]);
            Assert.Equal(
                SipHash.Hash6(key, v6[i], v6[Count + i], v6[(2 * Count) + i], v6[(3 * Count) + i], v6[(4 * Count) + i], v6[(5 * Count) + i]),
                h6[i]);
        }
    }

    [Fact]
    public void StridedBatchReadsOnlyTheFirstCountLanesOfEachRow()
    {
        var random = new Random(7);
        var key = new SipKey(NextUInt64(random), NextUInt64(random));
        const int Stride = 64;
        foreach (int count in new[] { 0, 1, 3, 4, 5, 8, 13, 63, 64 })
        {
            ulong[] words = new ulong[3 * Stride];
            FillRandom(random, words);
            ulong[] hashes = new ulong[Stride];
            hashes.AsSpan().Fill(42);
            SipHash.HashBatch(key, words, 3, Stride, count, hashes);
            for (int i = 0; i < count; i++)
            {
                Assert.Equal(SipHash.Hash3(key, words[i], words[Stride + i], words[(2 * Stride) + i]), hashes[i]);
            }

            for (int i = count; i < Stride; i++)
            {
                Assert.Equal(42UL, hashes[i]);
            }
        }
    }

    [Fact]
    public void EmptyBatchDoesNothing()
    {
        foreach (string name in new[] { "Dispatch", "Scalar", "Vector256", "Vector512" })
        {
            Strategy(name)(s_referenceKey, ReadOnlySpan<ulong>.Empty, 3, 0, Span<ulong>.Empty);
        }
    }

    [Fact]
    public void BatchOfTheWrongShapeThrows()
    {
        ulong[] words = new ulong[3 * 8];
        ulong[] hashes = new ulong[8];
        Assert.Throws<ArgumentOutOfRangeException>(() => SipHash.HashBatch(s_referenceKey, words, 0, 8, hashes));
        Assert.Throws<ArgumentOutOfRangeException>(() => SipHash.HashBatch(s_referenceKey, words, 3, -1, hashes));
        Assert.Throws<ArgumentOutOfRangeException>(() => SipHash.HashBatch(s_referenceKey, words, 4, 8, hashes));
        Assert.Throws<ArgumentOutOfRangeException>(() => SipHash.HashBatch(s_referenceKey, words, 3, 8, new ulong[7]));
        Assert.Throws<ArgumentOutOfRangeException>(() => SipHash.HashBatch(s_referenceKey, words, 3, 7, 8, hashes));
        Assert.Throws<ArgumentOutOfRangeException>(() => SipHash.HashBatch(s_referenceKey, words, 3, 9, 8, hashes));
        Assert.Throws<ArgumentOutOfRangeException>(() => SipHash.HashBatchVector256(s_referenceKey, words, 3, 9, hashes));
        Assert.Throws<ArgumentOutOfRangeException>(() => SipHash.HashBatchVector512(s_referenceKey, words, 3, 9, hashes));
    }

    /// <summary>
    /// Says which SIMD paths this machine (and this run: DOTNET_EnableHWIntrinsic=0 turns them all off)
    /// accelerates, and checks that dispatch sends a batch of 64 through the widest of them, so an
    /// accelerated vector path cannot go unused while the lane tests above pass on scalar.
    /// </summary>
    [Fact]
    public void ReportsAndUsesTheAcceleratedPaths()
    {
        bool v256 = Vector256.IsHardwareAccelerated;
        bool v512 = Vector512.IsHardwareAccelerated;
        SipHash.BatchStrategy for64 = SipHash.SelectBatchStrategy(64);
        output.WriteLine($"Vector256.IsHardwareAccelerated={v256} Vector512.IsHardwareAccelerated={v512} " +
            $"DOTNET_EnableHWIntrinsic={Environment.GetEnvironmentVariable("DOTNET_EnableHWIntrinsic") ?? "(unset)"}");
        output.WriteLine($"dispatch: 64 messages -> {for64}, 7 -> {SipHash.SelectBatchStrategy(7)}, 3 -> {SipHash.SelectBatchStrategy(3)}");

        SipHash.BatchStrategy widest = v512 ? SipHash.BatchStrategy.Vector512
            : v256 ? SipHash.BatchStrategy.Vector256
            : SipHash.BatchStrategy.Scalar;
        Assert.Equal(widest, for64);
        Assert.Equal(v256 ? SipHash.BatchStrategy.Vector256 : SipHash.BatchStrategy.Scalar, SipHash.SelectBatchStrategy(7));
        Assert.Equal(SipHash.BatchStrategy.Scalar, SipHash.SelectBatchStrategy(3));

        // With hardware intrinsics disabled nothing may claim acceleration, or the scalar-fallback CI run proves nothing.
        if (Environment.GetEnvironmentVariable("DOTNET_EnableHWIntrinsic") == "0")
        {
            Assert.Equal(SipHash.BatchStrategy.Scalar, for64);
        }
    }

    internal static IEnumerable<int> BatchSizes()
    {
        for (int count = 1; count <= 17; count++)
        {
            yield return count;
        }

        yield return 31;
        yield return 32;
        yield return 33;
        yield return 63;
        yield return 64;
    }

    internal static ulong NextUInt64(Random random) => ((ulong)(uint)random.Next() << 33) ^ ((ulong)(uint)random.Next() << 12) ^ (uint)random.Next();

    internal static void FillRandom(Random random, Span<ulong> words)
    {
        random.NextBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(words));
    }
}
