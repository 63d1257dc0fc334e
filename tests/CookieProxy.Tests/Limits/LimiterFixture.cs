using System.Net;
using CookieProxy.Crypto;
using CookieProxy.Limits;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Limits;

/// <summary>Builders shared by the limiter tests: a fixed hash key (so bucket placement repeats run to
/// run) and address helpers. Time is a plain <c>long</c> the test advances: the limiter takes nowMs.</summary>
internal static class LimiterFixture
{
    public static readonly SipKey TestKey = new(0x0706050403020100, 0x0f0e0d0c0b0a0908);

    public static SourceLimiter Create(SourceLimitConfig config) => new(config, TestKey);

    public static IpAddr Ip(string text) => IpAddr.FromIPAddress(IPAddress.Parse(text));

    /// <summary>The i-th of 2^32 distinct IPv4 sources, scattered over the space (odd multiplier: a bijection).</summary>
    public static IpAddr SpoofedV4(uint i) => IpAddr.FromV4(i * 2654435761u);
}
