using System.Diagnostics;

namespace CookieProxy.Host.Capture;

/// <summary>Milliseconds for TCP timers. Environment.TickCount64 is CLOCK_MONOTONIC_COARSE on Linux (4 ms
/// steps at HZ=250): too coarse for RTT samples on a LAN, so use the high-resolution timestamp.</summary>
internal static class MonotonicClock
{
    private static readonly double s_msPerTick = 1000.0 / Stopwatch.Frequency;

    public static long NowMs => (long)(Stopwatch.GetTimestamp() * s_msPerTick);
}
