using CookieProxy.Wire;

namespace CookieProxy.Tests.Tcp.Scenarios;

/// <summary>What the simulated link does to segments (smoltcp's FaultInjector, plus delay and a rate limit).</summary>
public sealed record FaultConfig
{
    public double DropRate { get; init; }
    /// <summary>Corrupted frames fail the checksum and never reach the endpoint: the same as a drop.</summary>
    public double CorruptRate { get; init; }
    public double DuplicateRate { get; init; }
    /// <summary>Chance a segment gets extra delay, so later ones overtake it.</summary>
    public double ReorderRate { get; init; }
    public long OneWayDelayMs { get; init; } = 5;
    /// <summary>Link rate in bytes per millisecond per direction (12_500 = 100 Mbit/s).</summary>
    public double BytesPerMs { get; init; } = 12_500;

    /// <summary>
    /// Deterministic faults on top of the random ones: (direction, segment, payload length) -> drop it. Direction
    /// 0 is server -> client. Called once per transmission, so a filter can drop a segment's first copy only.
    /// </summary>
    public Func<int, TcpRepr, int, bool>? DropIf { get; init; }
}

/// <summary>A segment in flight.</summary>
public sealed record SimPacket(int Direction, TcpRepr Repr, byte[] Payload);

/// <summary>
/// A seeded, two-direction lossy link on a simulated millisecond clock: serialisation at a fixed rate,
/// propagation delay, then random drop / corrupt / duplicate / reorder.
/// </summary>
public sealed class FaultInjector
{
    private const int HeaderBytes = 52; // IPv4 + TCP + timestamps, for the rate model only

    private readonly FaultConfig _config;
    private readonly Random _rng;
    private readonly PriorityQueue<SimPacket, long> _queue = new();
    private readonly double[] _busyUntil = new double[2];
    private long _order;

    public FaultInjector(FaultConfig config, int seed)
    {
        _config = config;
        _rng = new Random(seed);
    }

    public long Sent { get; private set; }
    public long Dropped { get; private set; }
    public long Duplicated { get; private set; }
    public long Reordered { get; private set; }

    public long NextDeliveryMs => _queue.TryPeek(out _, out long priority) ? priority / 100_000_000 : long.MaxValue;

    public void Transmit(int direction, in TcpRepr repr, byte[] payload, long nowMs)
    {
        Sent++;
        if (_config.DropIf is { } dropIf && dropIf(direction, repr, payload.Length))
        {
            Dropped++;
            return;
        }

        if (_rng.NextDouble() < _config.DropRate || _rng.NextDouble() < _config.CorruptRate)
        {
            Dropped++;
            return;
        }

        int copies = 1;
        if (_rng.NextDouble() < _config.DuplicateRate)
        {
            copies = 2;
            Duplicated++;
        }

        for (int i = 0; i < copies; i++)
        {
            double depart = Math.Max(nowMs, _busyUntil[direction]) + ((payload.Length + HeaderBytes) / _config.BytesPerMs);
            _busyUntil[direction] = depart;
            long at = (long)Math.Ceiling(depart) + _config.OneWayDelayMs;
            if (_rng.NextDouble() < _config.ReorderRate)
            {
                at += 1 + _rng.Next((int)Math.Max(2 * _config.OneWayDelayMs, 2));
                Reordered++;
            }

            _queue.Enqueue(new SimPacket(direction, repr, payload), (at * 100_000_000) + (_order++ % 100_000_000));
        }
    }

    public bool TryDeliver(long nowMs, out SimPacket packet)
    {
        if (_queue.TryPeek(out SimPacket? p, out long priority) && priority / 100_000_000 <= nowMs)
        {
            _queue.Dequeue();
            packet = p;
            return true;
        }

        packet = null!;
        return false;
    }
}
