using CookieProxy.Host.Flows;
using CookieProxy.Wire;

namespace CookieProxy.Tests.Backend;

/// <summary>What the capture loop does with one segment when it is the whole batch.</summary>
internal static class FlowTableTestExtensions
{
    /// <summary>A validated client segment: process it, then settle (pump, dispatch, re-arm, maybe remove).</summary>
    public static void OnClientSegment<TDispatcher>(this FlowTable table, Flow flow, in TcpRepr segment, ReadOnlySpan<byte> payload,
        long nowMs, ref TDispatcher dispatcher)
        where TDispatcher : struct, IFlowDispatcher
    {
        table.ProcessClientSegment(flow, segment, payload, nowMs);
        table.SettleProcessed(nowMs, ref dispatcher);
    }
}
