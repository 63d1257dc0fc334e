using CookieProxy.Io;

namespace CookieProxy.Tests.Support;

/// <summary>An in-memory IPacketDevice: frames to receive are queued by the test, sent frames are recorded.</summary>
public sealed class MemoryPacketDevice : IPacketDevice
{
    private readonly Queue<(byte[] Frame, FrameFlags Flags)> _rx = new();

    public List<byte[]> Sent { get; } = new();
    public bool FailSends { get; set; }
    public string Name => "mem0";
    public string Backend => "memory";

    public void Inject(byte[] frame, FrameFlags flags = FrameFlags.None) => _rx.Enqueue((frame, flags));

    public int Receive(FrameBatch batch, int timeoutMs)
    {
        batch.Clear();
        while (_rx.Count > 0 && batch.TryAdd(_rx.Peek().Frame, _rx.Peek().Flags))
        {
            _rx.Dequeue();
        }
        return batch.Count;
    }

    public bool Send(ReadOnlySpan<byte> frame)
    {
        if (FailSends)
        {
            return false;
        }
        Sent.Add(frame.ToArray());
        return true;
    }

    public void Flush()
    {
    }

    public void Wake()
    {
    }

    public DeviceStats GetStats() => new(0, 0, 0, Sent.Count, 0);

    public void Dispose()
    {
    }
}
