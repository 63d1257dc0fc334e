using System.Net;
using System.Net.Sockets;
using CookieProxy.Wire;

namespace CookieProxy.Limits;

/// <summary>
/// An immutable set of address prefixes (<c>198.18.0.0/15</c>, <c>2001:db8::/32</c>, a bare address = /32 or /128),
/// for the allow-source and deny-source lists. <see cref="Contains"/> probes one hash set per distinct prefix
/// length, longest first: allocation-free, and cheap for the handful of lengths real lists use.
/// IPv4 prefixes are held IPv4-mapped (::ffff:a.b.c.d/96+n), as <see cref="IpAddr"/> holds IPv4 addresses.
/// </summary>
public sealed class SourcePrefixSet : IEquatable<SourcePrefixSet>
{
    public static readonly SourcePrefixSet Empty = new([]);

    private readonly (int Length, ulong HiMask, ulong LoMask, HashSet<(ulong Hi, ulong Lo)> Prefixes)[] _byLength;

    private SourcePrefixSet(IReadOnlyList<(IPAddress Address, int Length)> prefixes)
    {
        Text = [.. prefixes.Select(p => $"{p.Address}/{p.Length}")];
        var groups = new SortedDictionary<int, HashSet<(ulong, ulong)>>(Comparer<int>.Create((a, b) => b.CompareTo(a)));
        foreach ((IPAddress address, int length) in prefixes)
        {
            IpAddr ip = IpAddr.FromIPAddress(address);
            int bits = address.AddressFamily == AddressFamily.InterNetwork ? 96 + length : length;
            (ulong hi, ulong lo) = Masks(bits);
            if (!groups.TryGetValue(bits, out HashSet<(ulong, ulong)>? set))
            {
                set = [];
                groups.Add(bits, set);
            }
            set.Add((ip.Hi & hi, ip.Lo & lo));
        }
        _byLength = [.. groups.Select(g => (g.Key, Masks(g.Key).Hi, Masks(g.Key).Lo, g.Value))];
    }

    /// <summary>The prefixes as given, normalised (<c>198.18.0.0/15</c>).</summary>
    public IReadOnlyList<string> Text { get; }

    public int Count => Text.Count;

    public bool IsEmpty => _byLength.Length == 0;

    /// <summary>Whether <paramref name="address"/> lies in one of the prefixes.</summary>
    public bool Contains(in IpAddr address)
    {
        foreach ((int _, ulong hiMask, ulong loMask, HashSet<(ulong Hi, ulong Lo)> prefixes) in _byLength)
        {
            if (prefixes.Contains((address.Hi & hiMask, address.Lo & loMask)))
            {
                return true;
            }
        }
        return false;
    }

    /// <summary>Parses a list of prefixes; on failure <paramref name="error"/> names the bad entry.</summary>
    public static bool TryParse(IEnumerable<string> entries, out SourcePrefixSet set, out string error)
    {
        var parsed = new List<(IPAddress, int)>();
        foreach (string raw in entries)
        {
            string entry = raw.Trim();
            if (entry.Length == 0)
            {
                continue;
            }
            if (!TryParsePrefix(entry, out IPAddress? address, out int length, out error))
            {
                set = Empty;
                error = $"'{entry}': {error}";
                return false;
            }
            parsed.Add((address!, length));
        }
        set = parsed.Count == 0 ? Empty : new SourcePrefixSet(parsed);
        error = "";
        return true;
    }

    /// <summary>One prefix: ADDRESS or ADDRESS/LENGTH, with no host bits set beyond LENGTH.</summary>
    public static bool TryParsePrefix(string text, out IPAddress? address, out int length, out string error)
    {
        address = null;
        length = 0;
        int slash = text.IndexOf('/');
        string addressText = slash < 0 ? text : text[..slash];
        if (!IPAddress.TryParse(addressText, out IPAddress? ip) || addressText.Contains('%'))
        {
            error = "expected ADDRESS/LENGTH (e.g. 198.18.0.0/15 or 2001:db8::/32)";
            return false;
        }
        if (ip.IsIPv4MappedToIPv6)
        {
            ip = ip.MapToIPv4();
        }
        int max = ip.AddressFamily == AddressFamily.InterNetwork ? 32 : 128;
        if (slash < 0)
        {
            length = max;
        }
        else if (!int.TryParse(text.AsSpan(slash + 1), System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out length)
            || length < 0 || length > max)
        {
            error = $"the prefix length must be 0..{max}";
            return false;
        }
        byte[] bytes = ip.GetAddressBytes();
        for (int bit = length; bit < max; bit++)
        {
            if ((bytes[bit / 8] & (0x80 >> (bit % 8))) != 0)
            {
                error = $"host bits are set beyond /{length} (did you mean {Network(bytes, length)}/{length}?)";
                return false;
            }
        }
        address = ip;
        error = "";
        return true;
    }

    private static IPAddress Network(byte[] bytes, int length)
    {
        byte[] copy = (byte[])bytes.Clone();
        for (int bit = length; bit < copy.Length * 8; bit++)
        {
            copy[bit / 8] &= (byte)~(0x80 >> (bit % 8));
        }
        return new IPAddress(copy);
    }

    /// <summary>The (hi, lo) masks of a 128-bit prefix length. C# masks shift counts to 6 bits, so 0, 64 and 128
    /// are spelled out.</summary>
    private static (ulong Hi, ulong Lo) Masks(int bits)
    {
        ulong hi = bits <= 0 ? 0UL : bits >= 64 ? ulong.MaxValue : ulong.MaxValue << (64 - bits);
        ulong lo = bits <= 64 ? 0UL : bits >= 128 ? ulong.MaxValue : ulong.MaxValue << (128 - bits);
        return (hi, lo);
    }

    public override string ToString() => string.Join(", ", Text);

    /// <summary>Same prefixes, in any order (a reload that rewrites the list the same way changes nothing).</summary>
    public bool Equals(SourcePrefixSet? other) =>
        other is not null && (ReferenceEquals(this, other) || new HashSet<string>(Text).SetEquals(other.Text));

    public override bool Equals(object? obj) => Equals(obj as SourcePrefixSet);

    public override int GetHashCode() => Count;
}
