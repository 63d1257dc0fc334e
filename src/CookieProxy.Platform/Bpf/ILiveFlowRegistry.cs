using CookieProxy.Wire;

namespace CookieProxy.Platform;

/// <summary>
/// Tells the kernel's SYN responder which 4-tuples have a live flow in user space, so that a SYN on one of
/// them is passed up to its flow (RFC 5961 4: the challenge ACK) instead of being answered with a fresh
/// cookie. The capture threads call it as they create and remove flows, each from its own thread. Never
/// throws: a failed update is counted (<see cref="Failures"/>) and the flow goes on regardless; the worst a
/// missing entry costs is a cookie SYN+ACK where a challenge ACK was due.
/// </summary>
public interface ILiveFlowRegistry
{
    void Add(in FlowKey flow);

    void Remove(in FlowKey flow);

    /// <summary>Updates that failed (the map refused or the syscall failed), over all threads.</summary>
    long Failures { get; }
}
