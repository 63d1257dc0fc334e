namespace CookieProxy.Cookies;

/// <summary>
/// The option tables a 32-bit ISN cookie can carry (3 bits each). Values are always rounded DOWN:
/// a smaller MSS or window-scale than the client offered is safe (we send less), a larger one is not.
/// </summary>
public static class CookieTables
{
    /// <summary>
    /// MSS table (8 entries, 3 bits). Linux keeps 4 entries per family (v4 {536,1300,1440,1460},
    /// v6 {1220,1420,1440,8940}); FreeBSD 8 ({216,536,1200,1360,1400,1440,1452,1460}). One table serves
    /// both families here:
    ///   536  - RFC 9293 3.7.1 default for IPv4 (also the floor for anything smaller)
    ///   1220 - IPv6 minimum link MTU 1280 - 60 (RFC 8200 5)
    ///   1300 - common VPN / tunnel clamp
    ///   1360 - IPv4 over IPsec/GRE-ish paths (1400 - 40)
    ///   1400 - IPv6 behind PPPoE (1460-60) rounds here, and many tunnel MTUs
    ///   1440 - IPv6 on Ethernet (1500 - 60), IPv4 with 20 bytes of tunnel overhead
    ///   1452 - IPv4 over PPPoE (1492 - 40), the most common DSL value
    ///   1460 - IPv4 on Ethernet (1500 - 40), the most common value overall
    /// Jumbo MSS (8940+) rounds down to 1460: loses throughput only on jumbo-frame LANs.
    /// </summary>
    public static ReadOnlySpan<ushort> Mss => [536, 1220, 1300, 1360, 1400, 1440, 1452, 1460];

    /// <summary>Window-scale table (3 bits). Index 0 = the client sent no window-scale option.
    /// Common client shifts: macOS 6, Linux 7 (up to 14 with large buffers), Windows 8.
    /// Odd shifts round down (1→0, 3→2, 5→4, ≥10→9): we then under-read the client's window, never over-read it.</summary>
    public static ReadOnlySpan<sbyte> WindowScale => [-1, 0, 2, 4, 6, 7, 8, 9];

    /// <summary>Index of the largest table MSS not above <paramref name="mss"/> (0 if it is below 536 or absent).</summary>
    public static int EncodeMss(ushort mss)
    {
        ReadOnlySpan<ushort> table = Mss;
        for (int i = table.Length - 1; i > 0; i--)
        {
            if (mss >= table[i])
            {
                return i;
            }
        }
        return 0;
    }

    /// <summary>Index of the largest table shift not above <paramref name="windowScale"/>; 0 for "none" (-1).</summary>
    public static int EncodeWindowScale(sbyte windowScale)
    {
        if (windowScale < 0)
        {
            return 0;
        }
        ReadOnlySpan<sbyte> table = WindowScale;
        for (int i = table.Length - 1; i > 0; i--)
        {
            if (windowScale >= table[i])
            {
                return i;
            }
        }
        return 1;
    }
}
