using System.Globalization;

namespace CookieProxy.Tests.Fuzz;

/// <summary>
/// How much the fuzz targets run. The unit suite (and so CI) runs scale 1 with the fixed seed: one million frames
/// through the responder, 100,000 segment sequences through endpoints, and the rest in proportion.
/// <c>scripts/fuzz.sh N</c> sets <c>CP_FUZZ_SCALE=N</c> (N million frames) and a fresh <c>CP_FUZZ_SEED</c>, which
/// every failure message repeats so the run can be replayed.
/// </summary>
internal static class FuzzSettings
{
    public const int FixedSeed = 20251203;

    /// <summary>Multiplier of every target's input count (CP_FUZZ_SCALE; default 1).</summary>
    public static double Scale { get; } = ReadScale();

    /// <summary>The run's seed (CP_FUZZ_SEED; default the fixed CI seed).</summary>
    public static int Seed { get; } = int.TryParse(Environment.GetEnvironmentVariable("CP_FUZZ_SEED"), NumberStyles.Integer,
        CultureInfo.InvariantCulture, out int seed) ? seed : FixedSeed;

    public static long Count(long atScaleOne) => Math.Max(1, (long)(atScaleOne * Scale));

    /// <summary>The seed of one target: the run's seed mixed with the target's name, so targets draw different inputs.</summary>
    public static int SeedFor(string target)
    {
        uint h = 2166136261;
        foreach (char c in target)
        {
            h = (h ^ c) * 16777619;
        }
        return (int)(h ^ (uint)Seed);
    }

    public static string Describe(string target) =>
        $"fuzz target {target}, seed {Seed} (replay: CP_FUZZ_SEED={Seed} CP_FUZZ_SCALE={Scale.ToString(CultureInfo.InvariantCulture)})";

    private static double ReadScale()
    {
        string? text = Environment.GetEnvironmentVariable("CP_FUZZ_SCALE");
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double scale) && scale > 0 ? scale : 1;
    }
}
