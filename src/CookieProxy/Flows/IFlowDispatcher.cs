namespace CookieProxy.Host.Flows;

/// <summary>
/// The host's half of a flow's output: emits what the flow's endpoint has due. Implemented by the capture
/// loop as a struct so the table's generic methods are specialised (no virtual call per flow).
/// </summary>
public interface IFlowDispatcher
{
    /// <summary>
    /// Build the segment sink from <see cref="Flow.ReplyTemplate"/> and call
    /// <c>flow.Endpoint.Dispatch(ref sink, nowMs)</c>. Called after every pump, on the owner thread.
    /// </summary>
    void Dispatch(Flow flow, long nowMs);
}
