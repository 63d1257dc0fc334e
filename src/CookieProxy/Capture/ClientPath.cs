using CookieProxy.Wire;

namespace CookieProxy.Host.Capture;

/// <summary>How to reach a flow's client: the L2/L3 reply template, fixed at flow creation from the cookie
/// ACK's frame. Stored as the flow's ReplyTemplate (the ports live on the endpoint).</summary>
internal sealed class ClientPath
{
    public L2L3Template Template;
}
