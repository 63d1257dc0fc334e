namespace CookieProxy.Responder;

/// <summary>
/// Sizes and thresholds of one capture thread's <see cref="SynCache"/>. <see cref="For"/> derives the rates from
/// the capacity so that the table cannot fill at the rate where it hands over to pure cookies.
/// </summary>
public sealed class SynCacheConfig
{
    /// <summary>The default of <c>--syncache</c>: entries per capture thread.</summary>
    public const int DefaultCapacity = 4096;

    /// <summary>The largest <c>--syncache</c>: 32 MiB of stored SYN+ACKs per capture thread.</summary>
    public const int MaxCapacity = 262_144;

    /// <summary>Bytes kept per entry for its SYN+ACK frame: Ethernet with two VLAN tags (22) + IPv6 (40) + TCP
    /// with the longest option set we emit (60) is 122.</summary>
    public const int FrameSlotBytes = 128;

    /// <summary>When the stored SYN+ACK goes out again, counted from the SYN: Linux's first two SYN+ACK
    /// retransmissions (TCP_TIMEOUT_INIT 1 s, doubling: 1 s, then 2 s later). After the last one the entry is
    /// dropped; a later ACK still validates from its cookie.</summary>
    public static readonly long[] RetransmitAfterMs = [1000, 3000];

    /// <summary>Entries per capture thread (0 = no syncache).</summary>
    public int Capacity { get; init; } = DefaultCapacity;

    /// <summary>SYNs per second (on this thread) at which it stops remembering SYNs: pure cookies from the
    /// SYN that crosses it.</summary>
    public int EnterCookiesPerSecond { get; init; } = DefaultCapacity / 4;

    /// <summary>SYNs per second below which pure-cookie mode counts a window as quiet.</summary>
    public int LeaveCookiesPerSecond { get; init; } = DefaultCapacity / 16;

    /// <summary>The rate is counted over windows of this length.</summary>
    public int WindowMs { get; init; } = 1000;

    /// <summary>Consecutive quiet windows before pure-cookie mode gives way to remembering SYNs again.</summary>
    public int QuietWindowsToLeave { get; init; } = 3;

    /// <summary>
    /// The configuration for <paramref name="capacity"/> entries. An entry lives 3 s (its last retransmission),
    /// so at R SYNs/s the table holds 3R: the hand-over at capacity / 4 per second keeps it at most three
    /// quarters full, and a table that fills anyway (a burst inside one window) answers the rest with pure
    /// cookies. Back to remembering after three windows below a quarter of that rate (hysteresis in level and
    /// in time, so a flood that pauses for a second does not flip the mode back and forth).
    /// </summary>
    public static SynCacheConfig For(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(capacity);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(capacity, MaxCapacity);
        int enter = Math.Max(4, capacity / 4);
        return new SynCacheConfig
        {
            Capacity = capacity,
            EnterCookiesPerSecond = enter,
            LeaveCookiesPerSecond = Math.Max(1, enter / 4),
        };
    }

    public void Validate()
    {
        if (Capacity is < 0 or > MaxCapacity)
        {
            throw new ArgumentOutOfRangeException(nameof(Capacity), Capacity, $"the syncache holds 0..{MaxCapacity} entries");
        }
        if (EnterCookiesPerSecond < 1 || LeaveCookiesPerSecond < 0 || LeaveCookiesPerSecond >= EnterCookiesPerSecond)
        {
            throw new ArgumentOutOfRangeException(nameof(LeaveCookiesPerSecond), LeaveCookiesPerSecond,
                "the leave rate must lie below the enter rate (hysteresis)");
        }
        if (WindowMs < 10 || QuietWindowsToLeave < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(WindowMs), WindowMs, "windows of at least 10 ms, at least one quiet window");
        }
    }
}
