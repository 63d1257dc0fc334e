namespace CookieProxy.Host.Flows;

/// <summary>
/// Binary min-heap of flows by deadline, indexed (each flow knows its slot) so a deadline can move in
/// O(log n) without searching or allocating. Flows without a deadline are not in the heap.
/// Owner thread only.
/// </summary>
internal sealed class FlowTimerHeap
{
    private Flow[] _items = new Flow[64];
    private int _count;

    public int Count => _count;

    public long MinDeadlineMs => _count == 0 ? long.MaxValue : _items[0].HeapDeadlineMs;

    /// <summary>Inserts, moves or (for long.MaxValue) removes the flow.</summary>
    public void Set(Flow flow, long deadlineMs)
    {
        if (deadlineMs == long.MaxValue)
        {
            Remove(flow);
            return;
        }
        if (flow.HeapIndex < 0)
        {
            if (_count == _items.Length)
            {
                Array.Resize(ref _items, _items.Length * 2);
            }
            flow.HeapDeadlineMs = deadlineMs;
            flow.HeapIndex = _count;
            _items[_count++] = flow;
            SiftUp(flow.HeapIndex);
            return;
        }
        long old = flow.HeapDeadlineMs;
        flow.HeapDeadlineMs = deadlineMs;
        if (deadlineMs < old)
        {
            SiftUp(flow.HeapIndex);
        }
        else if (deadlineMs > old)
        {
            SiftDown(flow.HeapIndex);
        }
    }

    public void Remove(Flow flow)
    {
        int i = flow.HeapIndex;
        if (i < 0)
        {
            return;
        }
        flow.HeapIndex = -1;
        _count--;
        if (i != _count)
        {
            Flow last = _items[_count];
            _items[i] = last;
            last.HeapIndex = i;
            SiftUp(i);
            SiftDown(last.HeapIndex);
        }
        _items[_count] = null!;
    }

    /// <summary>Removes and returns the flow with the earliest deadline if it is due.</summary>
    public bool TryPopDue(long nowMs, out Flow flow)
    {
        if (_count == 0 || _items[0].HeapDeadlineMs > nowMs)
        {
            flow = null!;
            return false;
        }
        flow = _items[0];
        Remove(flow);
        return true;
    }

    private void SiftUp(int i)
    {
        Flow item = _items[i];
        while (i > 0)
        {
            int parent = (i - 1) >> 1;
            Flow p = _items[parent];
            if (p.HeapDeadlineMs <= item.HeapDeadlineMs)
            {
                break;
            }
            _items[i] = p;
            p.HeapIndex = i;
            i = parent;
        }
        _items[i] = item;
        item.HeapIndex = i;
    }

    private void SiftDown(int i)
    {
        Flow item = _items[i];
        while (true)
        {
            int child = 2 * i + 1;
            if (child >= _count)
            {
                break;
            }
            if (child + 1 < _count && _items[child + 1].HeapDeadlineMs < _items[child].HeapDeadlineMs)
            {
                child++;
            }
            Flow c = _items[child];
            if (item.HeapDeadlineMs <= c.HeapDeadlineMs)
            {
                break;
            }
            _items[i] = c;
            c.HeapIndex = i;
            i = child;
        }
        _items[i] = item;
        item.HeapIndex = i;
    }
}
