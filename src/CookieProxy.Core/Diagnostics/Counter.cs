namespace CookieProxy.Diagnostics;

/// <summary>
/// Every counter the proxy keeps, defined once. <see cref="CounterTable"/> gives each its stable name, kind and
/// help text, and every consumer (the counters line, the JSON stats, Prometheus, <c>cookieproxy stats</c>) reads
/// that table instead of listing the counters again (Linux does the same with <c>snmp4_net_list</c>).
/// Keep <see cref="Count"/> last; append new counters before it.
/// </summary>
public enum Counter : byte
{
    FramesReceived,
    SynReceived,
    SynAckSent,
    CookieValid,
    CookieInvalid,
    RstSent,
    FlowsCreated,
    FlowsClosed,
    FlowsActive,
    BackendConnectFailed,
    BytesToBackend,
    BytesToClient,
    SegmentsToClient,
    Retransmits,
    CaptureDropped,
    RingBuffersCreated,
    RingBuffersInUse,
    RingBuffersPooled,
    XdpSynAckSent,
    XdpSynPassed,
    XdpInternalErrors,
    BackendTimeouts,
    FlowsEvicted,
    LoopFaults,
    FlowBufferBytes,
    RingBuffersDecommitted,
    XdpSynLiveFlow,
    XdpSynOverBudget,
    XdpLiveFlowUpdateFailed,
    SynCacheAdded,
    SynCacheRetransmits,
    SynCacheAcked,
    SynCacheReset,
    SynCacheExpired,
    SynCacheOverflow,
    SynCacheModeChanges,
    SynCacheEntries,
    SynCacheFloodMode,
    PcapSampled,
    PcapSampleLost,
    SynCacheXdpFlood,
    // tcp: the client-facing endpoints' loss recovery (TcpEndpoint.AddStatisticsTo, added when a flow ends).
    TcpRetransmitTimeouts,
    TcpLossProbes,
    TcpLossProbeRecoveries,
    TcpRackMarkedLost,
    TcpFastRecoveries,
    TcpSpuriousRetransmits,
    TcpRecoveriesUndone,
    TcpDsacksReceived,
    TcpReorderingRaised,
    TcpPawsRejected,
    TcpWindowProbes,
    TcpChallengeAcks,
    CaptureDroppedFlow,
    // faults: a backend that reset its connection after the connect (killed with unread bytes, crashed, RST).
    BackendResets,

    Count,
}

/// <summary>A monotonically growing count, or a level that goes up and down (Prometheus counter / gauge).</summary>
public enum CounterKind : byte
{
    Counter,
    Gauge,
}

/// <param name="Name">Stable snake_case name: the JSON key, and the Prometheus name after <c>cookieproxy_</c>
/// (plus <c>_total</c> for a counter).</param>
/// <param name="Kind">Counter or gauge.</param>
/// <param name="Help">One line for Prometheus' HELP and <c>cookieproxy stats</c>.</param>
public readonly record struct CounterInfo(string Name, CounterKind Kind, string Help);

/// <summary>The name table of <see cref="Counter"/> and <see cref="DropReason"/>.</summary>
public static class CounterTable
{
    private static readonly CounterInfo[] s_counters = Build();

    public static CounterInfo Of(Counter c) => s_counters[(int)c];

    public static string NameOf(Counter c) => s_counters[(int)c].Name;

    /// <summary>A drop reason's stable name (the enum name: the JSON key and the Prometheus <c>reason</c> label).</summary>
    public static string NameOf(DropReason r) => DropReasonNames[(int)r];

    /// <summary>All drop reason names, indexed by <see cref="DropReason"/>; entry 0 is "None".</summary>
    public static readonly string[] DropReasonNames = BuildDropReasonNames();

    private static CounterInfo[] Build()
    {
        var t = new CounterInfo[(int)Counter.Count];
        void Set(Counter c, string name, string help, CounterKind kind = CounterKind.Counter) => t[(int)c] = new CounterInfo(name, kind, help);

        Set(Counter.FramesReceived, "frames_received", "Frames read from the capture device.");
        Set(Counter.SynReceived, "syn_received", "SYNs to a protected endpoint, answered in XDP or in user space.");
        Set(Counter.SynAckSent, "synack_sent", "Cookie SYN+ACKs sent, by XDP or by user space.");
        Set(Counter.CookieValid, "cookie_valid", "ACKs whose cookie validated (each creates a flow or is refused by a cap).");
        Set(Counter.CookieInvalid, "cookie_invalid", "ACKs to a protected endpoint with no flow and no valid cookie.");
        Set(Counter.RstSent, "rst_sent", "RST segments sent to clients.");
        Set(Counter.FlowsCreated, "flows_created", "Flows created from a valid cookie ACK.");
        Set(Counter.FlowsClosed, "flows_closed", "Flows removed from the flow table.");
        Set(Counter.FlowsActive, "flows_active", "Flows in the flow table now.", CounterKind.Gauge);
        Set(Counter.BackendConnectFailed, "backend_connect_failed", "Backend connects that failed or timed out.");
        Set(Counter.BytesToBackend, "bytes_to_backend", "Client payload bytes written to backends.");
        Set(Counter.BytesToClient, "bytes_to_client", "Backend bytes read for clients.");
        Set(Counter.SegmentsToClient, "segments_to_client", "TCP segments (or super-frames) sent to clients.");
        Set(Counter.Retransmits, "retransmits", "Segments retransmitted to clients.");
        Set(Counter.CaptureDropped, "capture_dropped", "Frames the kernel dropped before the capture thread read them (ring full).");
        Set(Counter.RingBuffersCreated, "ring_buffers_created", "Flow ring buffers the pool allocated.");
        Set(Counter.RingBuffersInUse, "ring_buffers_in_use", "Flow ring buffers held by flows now.", CounterKind.Gauge);
        Set(Counter.RingBuffersPooled, "ring_buffers_pooled", "Free flow ring buffers kept for the next flows.", CounterKind.Gauge);
        Set(Counter.XdpSynAckSent, "xdp_synack_sent", "SYN+ACKs the XDP program sent (part of synack_sent).");
        Set(Counter.XdpSynPassed, "xdp_syn_passed", "SYNs to a protected endpoint the XDP program passed up to user space.");
        Set(Counter.XdpInternalErrors, "xdp_internal_errors", "XDP program errors (map lookups that cannot fail did).");
        Set(Counter.BackendTimeouts, "backend_timeouts",
            "Flows reset because the backend sent nothing within --first-data-timeout of the request, or never took a closed client's last bytes.");
        Set(Counter.FlowsEvicted, "flows_evicted", "Idle flows reset to make room for a new connection (flow table or buffer cap reached).");
        Set(Counter.LoopFaults, "loop_faults", "Bugs caught in a backend or flow loop (logged with their stack; the flow was reset).");
        Set(Counter.FlowBufferBytes, "flow_buffer_bytes",
            "Memory the flows' buffers may occupy now (touched ring pages, promised windows, pipes), held under --max-buffer-mb.", CounterKind.Gauge);
        Set(Counter.RingBuffersDecommitted, "ring_buffers_decommitted",
            "Free ring buffers kept with their pages given back to the kernel (part of ring_buffers_pooled).", CounterKind.Gauge);
        Set(Counter.XdpSynLiveFlow, "xdp_syn_live_flow", "SYNs the XDP program passed up because their 4-tuple has a live flow (part of xdp_syn_passed).");
        Set(Counter.XdpSynOverBudget, "xdp_syn_over_budget", "SYNs the XDP program dropped: their source prefix was over --syn-rate-per-source.");
        Set(Counter.XdpLiveFlowUpdateFailed, "xdp_live_flow_update_failed", "Live-flow map updates for the XDP program that failed (the flow went on).");
        Set(Counter.SynCacheAdded, "syncache_added", "Answered SYNs the syncache remembered (to retransmit their SYN+ACK).");
        Set(Counter.SynCacheRetransmits, "syncache_retransmits", "SYN+ACKs the syncache sent again (part of synack_sent).");
        Set(Counter.SynCacheAcked, "syncache_acked", "Syncache entries ended by their validated ACK.");
        Set(Counter.SynCacheReset, "syncache_reset", "Syncache entries ended by the client's RST.");
        Set(Counter.SynCacheExpired, "syncache_expired", "Syncache entries dropped after their last retransmission, no ACK seen.");
        Set(Counter.SynCacheOverflow, "syncache_overflow", "SYNs answered with a pure cookie because the syncache was full.");
        Set(Counter.SynCacheModeChanges, "syncache_mode_changes", "Switches between remembering SYNs and pure cookies.");
        Set(Counter.SynCacheEntries, "syncache_entries", "SYNs the syncache holds now.", CounterKind.Gauge);
        Set(Counter.SynCacheFloodMode, "syncache_flood_mode", "Capture threads answering pure cookies now (SYN rate above the syncache threshold).", CounterKind.Gauge);
        Set(Counter.PcapSampled, "pcap_sampled", "Dropped frames copied for the sampled pcap (--sample-pcap).");
        Set(Counter.PcapSampleLost, "pcap_sample_lost", "Dropped frames picked for the sampled pcap but lost: the writer was behind.");
        Set(Counter.SynCacheXdpFlood, "syncache_xdp_flood", "1 while the XDP program answers SYNs itself because all SYNs together are above the syncache's rate (0: it passes them up to be remembered).", CounterKind.Gauge);
        Set(Counter.TcpRetransmitTimeouts, "tcp_rto", "Retransmission timeouts on client connections (RFC 6298), counted when the flow ends.");
        Set(Counter.TcpLossProbes, "tcp_loss_probes", "Tail loss probes sent to clients (RFC 8985 7), counted when the flow ends.");
        Set(Counter.TcpLossProbeRecoveries, "tcp_loss_probe_recoveries", "Losses a tail loss probe repaired (RFC 8985 7.4), counted when the flow ends.");
        Set(Counter.TcpRackMarkedLost, "tcp_rack_lost", "Segments to clients RACK marked lost (RFC 8985 6), counted when the flow ends.");
        Set(Counter.TcpFastRecoveries, "tcp_fast_recoveries", "Fast recoveries entered on client connections (RFC 6675 with PRR), counted when the flow ends.");
        Set(Counter.TcpSpuriousRetransmits, "tcp_spurious_retransmits", "Retransmissions to clients proven unnecessary by D-SACK or timestamps (RFC 3708, RFC 3522), counted when the flow ends.");
        Set(Counter.TcpRecoveriesUndone, "tcp_recoveries_undone", "Congestion responses undone because their retransmissions were spurious (RFC 4015), counted when the flow ends.");
        Set(Counter.TcpDsacksReceived, "tcp_dsacks_received", "ACKs from clients carrying a D-SACK (RFC 2883), counted when the flow ends.");
        Set(Counter.TcpReorderingRaised, "tcp_reordering_raised", "Times measured reordering raised a connection's duplicate threshold, counted when the flow ends.");
        Set(Counter.TcpPawsRejected, "tcp_paws_rejected", "Client segments rejected by PAWS (RFC 7323 5), counted when the flow ends.");
        Set(Counter.TcpWindowProbes, "tcp_window_probes", "Zero-window probes sent to clients (RFC 9293 3.8.6.1), counted when the flow ends.");
        Set(Counter.TcpChallengeAcks, "tcp_challenge_acks", "Challenge ACKs sent to clients (RFC 5961), counted when the flow ends.");
        Set(Counter.CaptureDroppedFlow, "capture_dropped_flow",
            "Part of capture_dropped: segments of live flows (not bare SYNs) the kernel dropped because their own ring was full.");
        Set(Counter.BackendResets, "backend_resets",
            "Flows whose backend reset its connection (or a send or receive on it failed) after the connect: the client got an RST, not a FIN.");

        for (int i = 0; i < t.Length; i++)
        {
            if (t[i].Name is null)
            {
                throw new InvalidOperationException($"Counter {(Counter)i} has no entry in CounterTable.");
            }
        }
        return t;
    }

    private static string[] BuildDropReasonNames()
    {
        var names = new string[(int)DropReason.Count];
        for (int i = 0; i < names.Length; i++)
        {
            names[i] = ((DropReason)i).ToString();
        }
        return names;
    }
}
