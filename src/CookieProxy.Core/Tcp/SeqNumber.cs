using System.Runtime.CompilerServices;

namespace CookieProxy.Tcp;

/// <summary>
/// A TCP sequence number: arithmetic modulo 2^32 with wrap-safe comparisons (RFC 9293 3.4,
/// RFC 1982 serial number arithmetic). No implicit conversion to or from int.
/// </summary>
public readonly struct SeqNumber : IEquatable<SeqNumber>
{
    public readonly uint Value;

    public SeqNumber(uint value) => Value = value;

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static SeqNumber operator +(SeqNumber s, int n) => new(unchecked(s.Value + (uint)n));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static SeqNumber operator -(SeqNumber s, int n) => new(unchecked(s.Value - (uint)n));

    /// <summary>Signed distance a - b; valid while |a - b| &lt; 2^31.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int operator -(SeqNumber a, SeqNumber b) => unchecked((int)(a.Value - b.Value));

    public static bool operator <(SeqNumber a, SeqNumber b) => (a - b) < 0;
    public static bool operator >(SeqNumber a, SeqNumber b) => (a - b) > 0;
    public static bool operator <=(SeqNumber a, SeqNumber b) => (a - b) <= 0;
    public static bool operator >=(SeqNumber a, SeqNumber b) => (a - b) >= 0;
    public static bool operator ==(SeqNumber a, SeqNumber b) => a.Value == b.Value;
    public static bool operator !=(SeqNumber a, SeqNumber b) => a.Value != b.Value;

    /// <summary>Distance from <paramref name="from"/> to this, as an unsigned count (caller knows this &gt;= from).</summary>
    public uint DistanceFrom(SeqNumber from) => unchecked(Value - from.Value);

    /// <summary>start &lt;= this &lt; start + size (RFC 9293 3.10.7.4 acceptability tests).</summary>
    public bool InWindow(SeqNumber start, uint size) => unchecked(Value - start.Value) < size;

    public static SeqNumber Max(SeqNumber a, SeqNumber b) => a > b ? a : b;
    public static SeqNumber Min(SeqNumber a, SeqNumber b) => a < b ? a : b;

    public bool Equals(SeqNumber other) => Value == other.Value;
    public override bool Equals(object? obj) => obj is SeqNumber s && s.Value == Value;
    public override int GetHashCode() => (int)Value;
    public override string ToString() => Value.ToString(System.Globalization.CultureInfo.InvariantCulture);
}
