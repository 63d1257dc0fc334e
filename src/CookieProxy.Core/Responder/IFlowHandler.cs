using CookieProxy.Cookies;
using CookieProxy.Wire;

namespace CookieProxy.Responder;

/// <summary>
/// What the host does with segments that are not SYNs to answer. Implemented by a struct so the JIT
/// specialises <see cref="SynResponder.ProcessBatch{THandler}"/> for it (no interface call per packet).
/// </summary>
public interface IFlowHandler
{
    /// <summary>Gives a segment for a protected endpoint to its flow, if one exists. False = no such flow.</summary>
    bool TryDeliver(ref ParsedPacket packet, Span<byte> frame, int listener);

    /// <summary>A cookie ACK passed validation (RecvClientAck → CookieValid): create the flow.</summary>
    void OnCookieValid(ref ParsedPacket packet, Span<byte> frame, int listener, in CookieDecoded cookie);
}
