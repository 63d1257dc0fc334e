using CookieProxy.Wire;

namespace CookieProxy.Host.Capture;

/// <summary>How to reach a flow's client: the L2/L3 reply template and the ports, fixed at flow creation
/// (from the cookie ACK's frame). Stored as the flow's ReplyTemplate.</summary>
internal sealed class ClientPath
{
    public L2L3Template Template;
    public ushort OurPort;
    public ushort ClientPort;
}
