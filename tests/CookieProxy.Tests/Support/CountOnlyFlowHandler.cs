using CookieProxy.Cookies;
using CookieProxy.Responder;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Support;

/// <summary>A handler with no flows: valid cookies are only counted (the responder alone, and its tests).</summary>
public struct CountOnlyFlowHandler : IFlowHandler
{
    public long Validated;

    public readonly bool TryDeliver(ref ParsedPacket packet, Span<byte> frame, int listener) => false;

    public void OnCookieValid(ref ParsedPacket packet, Span<byte> frame, int listener, in CookieDecoded cookie) => Validated++;
}
