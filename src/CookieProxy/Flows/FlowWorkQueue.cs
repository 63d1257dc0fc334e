using System.Collections.Concurrent;

namespace CookieProxy.Host.Flows;

/// <summary>
/// Flows whose backend reported an event, waiting for their owner (capture) thread. Many producers (the
/// thread-pool loops of <see cref="Backend.BackendConnection"/>), one consumer (the owner).
/// A flow is queued at most once (its <c>Queued</c> flag), and the owner is woken at most once per drain.
/// </summary>
public sealed class FlowWorkQueue
{
    private readonly ConcurrentQueue<Flow> _queue = new();
    private readonly Action _wake;
    private int _wakePending;
    private int _ownerThreadId = -1;

    /// <param name="wake">Interrupts the owner's wait for frames (the capture device's Wake). Thread-safe, cheap.</param>
    public FlowWorkQueue(Action wake) => _wake = wake;

    public bool IsEmpty => _queue.IsEmpty;

    /// <summary>
    /// The owner's loop calls this from its thread before it starts: an event raised on that thread itself (the
    /// owner's own receive saw EOF, or its close) is queued without a wake-up, since the loop drains the queue
    /// later in the same turn, or skips its wait when the queue is not empty (a pipe write, a poll() return and a
    /// read saved per connection). Unset (tests), every enqueue wakes.
    /// </summary>
    public void SetOwnerThread() => _ownerThreadId = Environment.CurrentManagedThreadId;

    /// <summary>Any thread. Queues the flow unless already queued, and wakes the owner unless a wake is pending
    /// or this is the owner's own thread.</summary>
    internal void Enqueue(Flow flow)
    {
        if (Interlocked.Exchange(ref flow.Queued, 1) != 0)
        {
            return;
        }
        _queue.Enqueue(flow);
        if (Environment.CurrentManagedThreadId == _ownerThreadId)
        {
            return;
        }
        if (Interlocked.Exchange(ref _wakePending, 1) == 0)
        {
            _wake();
        }
    }

    /// <summary>Owner thread: work is left over (drain budget spent), so the next wait must return at once.</summary>
    internal void WakeAgain()
    {
        if (Interlocked.Exchange(ref _wakePending, 1) == 0)
        {
            _wake();
        }
    }

    /// <summary>Owner thread, before draining: later enqueues must wake it again.</summary>
    internal void BeginDrain() => Volatile.Write(ref _wakePending, 0);

    /// <summary>Owner thread. The flag is cleared before the flow is pumped, so an event during the pump queues it again.</summary>
    internal bool TryDequeue(out Flow flow)
    {
        if (_queue.TryDequeue(out Flow? next))
        {
            Volatile.Write(ref next.Queued, 0);
            flow = next;
            return true;
        }
        flow = null!;
        return false;
    }
}
