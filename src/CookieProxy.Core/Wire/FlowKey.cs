using System.Buffers.Binary;
using System.Net;

namespace CookieProxy.Wire;

/// <summary>
/// An IP address as a 128-bit big-endian number; IPv4 is held IPv4-mapped (::ffff:a.b.c.d, RFC 4291 2.5.5.2)
/// so one key type serves both families without allocation.
/// </summary>
public readonly struct IpAddr : IEquatable<IpAddr>
{
    private const ulong V4MappedHi = 0UL;
    private const ulong V4MappedLoPrefix = 0x0000_FFFF_0000_0000UL;

    public readonly ulong Hi;
    public readonly ulong Lo;

    public IpAddr(ulong hi, ulong lo)
    {
        Hi = hi;
        Lo = lo;
    }

    public static IpAddr FromV4(uint addressBigEndianValue) => new(V4MappedHi, V4MappedLoPrefix | addressBigEndianValue);

    /// <summary>Reads 4 (IPv4) or 16 (IPv6) network-order bytes.</summary>
    public static IpAddr FromBytes(ReadOnlySpan<byte> bytes) => bytes.Length switch
    {
        4 => FromV4(BinaryPrimitives.ReadUInt32BigEndian(bytes)),
        16 => new IpAddr(BinaryPrimitives.ReadUInt64BigEndian(bytes), BinaryPrimitives.ReadUInt64BigEndian(bytes[8..])),
        _ => throw new ArgumentException("An IP address is 4 or 16 bytes.", nameof(bytes)),
    };

    public static IpAddr FromIPAddress(IPAddress address)
    {
        Span<byte> b = stackalloc byte[16];
        address.TryWriteBytes(b, out int n);
        return FromBytes(b[..n]);
    }

    public bool IsV4 => Hi == V4MappedHi && (Lo & 0xFFFF_FFFF_0000_0000UL) == V4MappedLoPrefix;

    /// <summary>The IPv4 address as a big-endian numeric value (only meaningful when <see cref="IsV4"/>).</summary>
    public uint V4 => (uint)Lo;

    /// <summary>Writes 4 bytes for IPv4, 16 for IPv6; returns the count.</summary>
    public int WriteBytes(Span<byte> destination)
    {
        if (IsV4)
        {
            BinaryPrimitives.WriteUInt32BigEndian(destination, V4);
            return 4;
        }
        BinaryPrimitives.WriteUInt64BigEndian(destination, Hi);
        BinaryPrimitives.WriteUInt64BigEndian(destination[8..], Lo);
        return 16;
    }

    public IPAddress ToIPAddress()
    {
        Span<byte> b = stackalloc byte[16];
        int n = WriteBytes(b);
        return new IPAddress(b[..n]);
    }

    public bool Equals(IpAddr other) => Hi == other.Hi && Lo == other.Lo;
    public override bool Equals(object? obj) => obj is IpAddr a && Equals(a);
    public override int GetHashCode() => HashCode.Combine(Hi, Lo);
    public static bool operator ==(IpAddr a, IpAddr b) => a.Equals(b);
    public static bool operator !=(IpAddr a, IpAddr b) => !a.Equals(b);
    public override string ToString() => ToIPAddress().ToString();
}

/// <summary>The TCP 4-tuple as seen in a received packet: Src is the client, Dst is the protected endpoint.</summary>
public readonly struct FlowKey : IEquatable<FlowKey>
{
    public readonly IpAddr SrcAddr;
    public readonly IpAddr DstAddr;
    public readonly ushort SrcPort;
    public readonly ushort DstPort;

    public FlowKey(IpAddr srcAddr, IpAddr dstAddr, ushort srcPort, ushort dstPort)
    {
        SrcAddr = srcAddr;
        DstAddr = dstAddr;
        SrcPort = srcPort;
        DstPort = dstPort;
    }

    public bool IsV4 => SrcAddr.IsV4;

    public bool Equals(FlowKey other) =>
        SrcAddr.Equals(other.SrcAddr) && DstAddr.Equals(other.DstAddr) && SrcPort == other.SrcPort && DstPort == other.DstPort;

    public override bool Equals(object? obj) => obj is FlowKey k && Equals(k);
    public override int GetHashCode() => HashCode.Combine(SrcAddr, DstAddr, SrcPort, DstPort);
    public static bool operator ==(FlowKey a, FlowKey b) => a.Equals(b);
    public static bool operator !=(FlowKey a, FlowKey b) => !a.Equals(b);

    public override string ToString() => IsV4
        ? $"{SrcAddr}:{SrcPort} -> {DstAddr}:{DstPort}"
        : $"[{SrcAddr}]:{SrcPort} -> [{DstAddr}]:{DstPort}";
}
