namespace CookieProxy.Platform;

/// <summary>How the members of a PACKET_FANOUT group share the frames (packet(7), PACKET_FANOUT).</summary>
public enum FanoutMode
{
    /// <summary>
    /// PACKET_FANOUT_HASH: the kernel's flow hash over the 4-tuple. The best balance, but one source's
    /// flows spread over every member, so per-thread state keyed by source sees only part of it.
    /// </summary>
    FlowHash,

    /// <summary>
    /// PACKET_FANOUT_CBPF with <see cref="FanoutProgram"/>: the member is a hash of the masked source
    /// address, so every frame of every flow from one source prefix reaches the same member.
    /// </summary>
    SourcePrefix,
}

/// <summary>
/// What every member of one fanout group agrees on: the mode and, for <see cref="FanoutMode.SourcePrefix"/>,
/// the parameters of the steering program (the kernel keeps one program per group, not per socket).
/// </summary>
public sealed record class FanoutSteering
{
    /// <summary>PACKET_FANOUT_HASH (no program).</summary>
    public static FanoutSteering FlowHash { get; } = new();

    public FanoutMode Mode { get; private init; } = FanoutMode.FlowHash;

    /// <summary>Members the group will have: the program returns 0..Members-1.</summary>
    public int Members { get; private init; } = 1;

    /// <summary>IPv4 sources sharing this many leading bits go to one member (0..32).</summary>
    public int Ipv4PrefixLength { get; private init; } = 32;

    /// <summary>IPv6 sources sharing this many leading bits go to one member (0..128).</summary>
    public int Ipv6PrefixLength { get; private init; } = 64;

    /// <summary>Mixed into the hash so that nobody who does not know it can aim sources at one member.</summary>
    public uint Seed { get; private init; }

    /// <summary>Steering by source prefix over <paramref name="members"/> members (1..<see cref="FanoutProgram.MaxMembers"/>).</summary>
    /// <exception cref="ArgumentOutOfRangeException">A parameter is out of range.</exception>
    public static FanoutSteering BySourcePrefix(int members, int ipv4PrefixLength, int ipv6PrefixLength, uint seed)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(members, 1);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(members, FanoutProgram.MaxMembers);
        ArgumentOutOfRangeException.ThrowIfNegative(ipv4PrefixLength);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(ipv4PrefixLength, 32);
        ArgumentOutOfRangeException.ThrowIfNegative(ipv6PrefixLength);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(ipv6PrefixLength, 128);
        return new FanoutSteering
        {
            Mode = FanoutMode.SourcePrefix,
            Members = members,
            Ipv4PrefixLength = ipv4PrefixLength,
            Ipv6PrefixLength = ipv6PrefixLength,
            Seed = seed,
        };
    }

    /// <summary>For log lines: "flow hash" or "source prefix /24 /64".</summary>
    public override string ToString() => Mode == FanoutMode.FlowHash
        ? "flow hash"
        : $"source prefix /{Ipv4PrefixLength} /{Ipv6PrefixLength}";
}
