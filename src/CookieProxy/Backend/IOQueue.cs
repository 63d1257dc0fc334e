using System.Collections.Concurrent;
using System.IO.Pipelines;

namespace CookieProxy.Host.Backend;

/// <summary>
/// A pipe scheduler in the manner of Kestrel's IOQueue: continuations go into one queue of structs that a
/// single thread-pool work item drains. <see cref="PipeScheduler.ThreadPool"/> allocates a callback wrapper
/// for every schedule, and the capture thread schedules one each time its flush wakes a backend send loop;
/// with this queue the capture thread allocates nothing in steady state.
/// </summary>
internal sealed class IOQueue : PipeScheduler, IThreadPoolWorkItem
{
    public static readonly IOQueue Shared = new();

    private readonly ConcurrentQueue<Work> _workItems = new();
    private int _doingWork;

    public override void Schedule(Action<object?> action, object? state)
    {
        _workItems.Enqueue(new Work(action, state));
        // Only the transition idle -> busy queues the (reused) work item.
        if (Interlocked.CompareExchange(ref _doingWork, 1, 0) == 0)
        {
            System.Threading.ThreadPool.UnsafeQueueUserWorkItem(this, preferLocal: false);
        }
    }

    void IThreadPoolWorkItem.Execute()
    {
        while (true)
        {
            while (_workItems.TryDequeue(out Work item))
            {
                item.Callback(item.State);
            }

            // Going idle: a Schedule racing with us either sees 0 and queues us again, or enqueued before the
            // barrier and we pick its item up in the re-check below.
            Volatile.Write(ref _doingWork, 0);
            Interlocked.MemoryBarrier();
            if (_workItems.IsEmpty || Interlocked.Exchange(ref _doingWork, 1) == 1)
            {
                break;
            }
        }
    }

    private readonly record struct Work(Action<object?> Callback, object? State);
}
