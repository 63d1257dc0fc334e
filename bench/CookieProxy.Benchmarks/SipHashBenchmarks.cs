using System.Runtime.Intrinsics;
using BenchmarkDotNet.Attributes;
using CookieProxy.Crypto;

namespace CookieProxy.Benchmarks;

/// <summary>
/// SipHash-2-4 cost per cookie for one capture batch of 64 SYNs: IPv4 inputs are 3 words (24 bytes),
/// IPv6 inputs 6 words (48 bytes). OperationsPerInvoke = 64, so every row is nanoseconds per cookie.
/// Baseline: the same batch one serial hash at a time (scalar strategy). Vector512 runs on the API's
/// software fallback where AVX-512 is missing (Vector512.IsHardwareAccelerated is printed in the
/// global setup output); dispatch never uses it there.
/// On a shared, overloaded machine the means measure the scheduler more than the code (one 64-cookie
/// batch is well under a microsecond): compare the Min column, or run on an idle machine.
/// </summary>
[MemoryDiagnoser]
[MinColumn]
[MedianColumn]
public class SipHashBenchmarks
{
    private const int Batch = 64;

    private readonly ulong[] _words = new ulong[8 * Batch];
    // Allocated apart from _words (see Setup). The standalone vector rows are layout-sensitive under tiered
    // JIT: with _hashes right behind the 4 KiB words array they measured 84 ns/cookie, apart 26 ns, and 6.2 ns
    // with DOTNET_TieredCompilation=0 (scalar: 19 ns in all three). HelperAddComputeRead is the usage pattern
    // of the responder (own SoA arrays) and is the row to compare with Scalar.
    private ulong[] _hashes = null!;
    private byte[] _gap = null!;
    private SipKey _key;
    private SipHashBatch _helper = null!;

    public enum CookieInput
    {
        IPv4 = 3,
        IPv6 = 6,
    }

    [Params(CookieInput.IPv4, CookieInput.IPv6)]
    public CookieInput Input { get; set; }

    private int Words => (int)Input;

    [GlobalSetup]
    public void Setup()
    {
        var random = new Random(42);
        random.NextBytes(System.Runtime.InteropServices.MemoryMarshal.AsBytes(_words.AsSpan()));
        _key = new SipKey(0x0706050403020100, 0x0f0e0d0c0b0a0908);
        _gap = new byte[1000];
        _hashes = new ulong[Batch];
        _helper = new SipHashBatch(Words);
        Console.WriteLine($"// Vector256.IsHardwareAccelerated={Vector256.IsHardwareAccelerated} " +
            $"Vector512.IsHardwareAccelerated={Vector512.IsHardwareAccelerated} dispatch(64)={SipHash.SelectBatchStrategy(Batch)}");
    }

    [Benchmark(Baseline = true, OperationsPerInvoke = Batch)]
    public void Scalar() => SipHash.HashBatchScalar(_key, _words.AsSpan(0, Words * Batch), Words, Batch, _hashes);

    [Benchmark(OperationsPerInvoke = Batch)]
    public void Vector256Lanes4() => SipHash.HashBatchVector256(_key, _words.AsSpan(0, Words * Batch), Words, Batch, _hashes);

    [Benchmark(OperationsPerInvoke = Batch)]
    public void Vector512Lanes8() => SipHash.HashBatchVector512(_key, _words.AsSpan(0, Words * Batch), Words, Batch, _hashes);

    /// <summary>The public entry point: what the cookie code gets on this machine.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public void Dispatch() => SipHash.HashBatch(_key, _words.AsSpan(0, Words * Batch), Words, Batch, _hashes);

    /// <summary>No batching at all: Hash3/Hash6 per SYN on AoS input, what a per-packet cookie path costs.</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public ulong FixedArityPerSyn()
    {
        ulong[] w = _words;
        ulong sum = 0;
        if (Input == CookieInput.IPv4)
        {
            for (int i = 0; i < 3 * Batch; i += 3)
            {
                sum += SipHash.Hash3(_key, w[i], w[i + 1], w[i + 2]);
            }
        }
        else
        {
            for (int i = 0; i < 6 * Batch; i += 6)
            {
                sum += SipHash.Hash6(_key, w[i], w[i + 1], w[i + 2], w[i + 3], w[i + 4], w[i + 5]);
            }
        }

        return sum;
    }

    /// <summary>The SipHashBatch helper end to end: 64 Adds, Compute, 64 reads (shows 0 B/op).</summary>
    [Benchmark(OperationsPerInvoke = Batch)]
    public ulong HelperAddComputeRead()
    {
        SipHashBatch batch = _helper;
        ulong[] w = _words;
        batch.Clear();
        if (Input == CookieInput.IPv4)
        {
            for (int i = 0; i < 3 * Batch; i += 3)
            {
                batch.Add(w[i], w[i + 1], w[i + 2]);
            }
        }
        else
        {
            for (int i = 0; i < 6 * Batch; i += 6)
            {
                batch.Add(w[i], w[i + 1], w[i + 2], w[i + 3], w[i + 4], w[i + 5]);
            }
        }

        batch.Compute(_key);
        ulong sum = 0;
        foreach (ulong h in batch.Hashes)
        {
            sum += h;
        }

        return sum;
    }
}
