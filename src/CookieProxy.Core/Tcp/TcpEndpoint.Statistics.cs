using CookieProxy.Diagnostics;

namespace CookieProxy.Tcp;

// What the endpoint counts, handed to the host's counters (Diagnostics/Counter.cs) once per connection, the way
// Linux folds a socket's loss-recovery events into the TcpExt MIB (TCPTimeouts, TCPLossProbes,
// TCPLossProbeRecovery, TCPSackRecovery, TCPDSACKRecv, TCPDSACKUndo, PAWSEstab...). The endpoint keeps its own
// counts (tests read them per connection); the host adds them when the flow is removed, so a connection
// shows up in the totals when it ends.
public sealed partial class TcpEndpoint
{
    /// <summary>
    /// Adds this connection's loss-recovery and robustness counts to <paramref name="counters"/> (the capture
    /// thread's). Call once, when the connection is done with: the counts are totals, not deltas. Retransmissions
    /// are not among them: the flow table reports <see cref="Retransmissions"/> as they happen (Counter.Retransmits).
    /// </summary>
    public void AddStatisticsTo(ProxyCounters counters)
    {
        ArgumentNullException.ThrowIfNull(counters);
        counters[Counter.TcpRetransmitTimeouts] += RetransmitTimeouts;
        counters[Counter.TcpLossProbes] += LossProbes;
        counters[Counter.TcpLossProbeRecoveries] += LossProbeRecoveries;
        counters[Counter.TcpRackMarkedLost] += RackMarkedLost;
        counters[Counter.TcpFastRecoveries] += FastRecoveries;
        counters[Counter.TcpSpuriousRetransmits] += SpuriousRetransmissions;
        counters[Counter.TcpRecoveriesUndone] += SpuriousRecoveriesUndone;
        counters[Counter.TcpDsacksReceived] += DsacksReceived;
        counters[Counter.TcpReorderingRaised] += ReorderingEvents;
        counters[Counter.TcpPawsRejected] += PawsRejected;
        counters[Counter.TcpWindowProbes] += WindowProbes;
        counters[Counter.TcpChallengeAcks] += ChallengeAcksSent;
    }
}
