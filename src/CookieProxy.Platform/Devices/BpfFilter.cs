using System.Net;
using System.Net.Sockets;
using System.Text;

namespace CookieProxy.Platform;

/// <summary>Which TCP segments to the protected endpoints a filter lets through.</summary>
public enum SegmentClass
{
    /// <summary>Every segment.</summary>
    All,

    /// <summary>Bare SYNs: of SYN, ACK, RST and FIN only SYN is set (what a new connection, or a flood, sends).</summary>
    Syn,

    /// <summary>Every segment but a bare SYN: the cookie ACKs, data, FIN and RST of live flows. The exact complement of
    /// <see cref="Syn"/>, so two sockets with these filters share the frames without overlap or gap.</summary>
    AllButSyn,
}

/// <summary>
/// Builds the pcap filter (pcap-filter(7) syntax) that lets through only TCP towards the protected endpoints,
/// untagged or with one 802.1Q tag, IPv4 or IPv6. The same text feeds libpcap's live handle and, compiled
/// by <see cref="BpfProgram"/>, the classic BPF program attached to the AF_PACKET socket.
/// </summary>
public static class BpfFilter
{
    /// <summary>
    /// E.g. <c>(tcp and dst host 198.18.0.1 and dst port 80) or (vlan and tcp and dst host 198.18.0.1 and dst port 80)</c>.
    /// An unspecified address (0.0.0.0, ::) matches that port on every address of its family.
    /// </summary>
    /// <remarks>
    /// "vlan" shifts the offsets of everything after it in the whole expression, so the untagged
    /// alternative must come first and the tagged one last (pcap-filter(7), "vlan [vlan_id]").
    /// On Linux the kernel strips the tag before socket filters run; the untagged arm then matches
    /// and the backend re-inserts the tag from the ring metadata.
    /// </remarks>
    public static string ForProtectedEndpoints(IEnumerable<IPEndPoint> endpoints) => ForProtectedEndpoints(endpoints, SegmentClass.All);

    /// <summary>
    /// As <see cref="ForProtectedEndpoints(IEnumerable{IPEndPoint})"/>, narrowed to one <see cref="SegmentClass"/>:
    /// <c>(M and S) or (vlan and M and S)</c> for SYNs, <c>not S</c> for the rest, with S = <see cref="BareSyn"/>.
    /// </summary>
    public static string ForProtectedEndpoints(IEnumerable<IPEndPoint> endpoints, SegmentClass segments)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        var clauses = new List<string>();
        foreach (IPEndPoint endpoint in endpoints)
        {
            string clause = Clause(endpoint);
            if (!clauses.Contains(clause))
            {
                clauses.Add(clause);
            }
        }
        if (clauses.Count == 0)
        {
            throw new ArgumentException("At least one protected endpoint is required.", nameof(endpoints));
        }

        string match = clauses.Count == 1
            ? "tcp and " + clauses[0]
            : "tcp and (" + string.Join(" or ", clauses.Select(c => "(" + c + ")")) + ")";
        match = segments switch
        {
            SegmentClass.All => match,
            SegmentClass.Syn => $"{match} and {BareSyn}",
            SegmentClass.AllButSyn => $"{match} and not {BareSyn}",
            _ => throw new ArgumentOutOfRangeException(nameof(segments)),
        };
        return $"({match}) or (vlan and {match})";
    }

    /// <summary>
    /// A bare SYN: (flags &amp; (SYN|ACK|RST|FIN)) == SYN, i.e. 0x17 masked equals 0x02. IPv4 through libpcap's
    /// <c>tcp[13]</c> (which follows the IP header length); IPv6 only when TCP follows the fixed header directly
    /// (next header 6, flags at byte 40 + 13), because pcap-filter's <c>tcp[]</c> does not reach IPv6. An IPv6 SYN
    /// behind extension headers is therefore "not a bare SYN" here: it still reaches the proxy, on the other ring.
    /// </summary>
    public const string BareSyn = "((ip and tcp[13] & 0x17 == 0x02) or (ip6 and ip6[6] == 6 and ip6[53] & 0x17 == 0x02))";

    /// <inheritdoc cref="ForProtectedEndpoints(IEnumerable{IPEndPoint})"/>
    public static string ForProtectedEndpoints(params IPEndPoint[] endpoints) =>
        ForProtectedEndpoints((IEnumerable<IPEndPoint>)endpoints);

    private static string Clause(IPEndPoint endpoint)
    {
        if (endpoint.Port is <= 0 or > 65535)
        {
            throw new ArgumentException($"Port {endpoint.Port} of {endpoint} is not a valid TCP port.", nameof(endpoint));
        }
        IPAddress address = endpoint.Address;
        if (address.IsIPv4MappedToIPv6)
        {
            address = address.MapToIPv4();
        }
        var text = new StringBuilder();
        if (address.Equals(IPAddress.Any))
        {
            text.Append("ip");
        }
        else if (address.Equals(IPAddress.IPv6Any))
        {
            text.Append("ip6");
        }
        else
        {
            if (address.AddressFamily == AddressFamily.InterNetworkV6 && address.ScopeId != 0)
            {
                // pcap-filter has no syntax for a zone; the interface already scopes the capture.
                address = new IPAddress(address.GetAddressBytes());
            }
            text.Append("dst host ").Append(address.ToString());
        }
        text.Append(" and dst port ").Append(endpoint.Port);
        return text.ToString();
    }

    /// <summary>Throws a <see cref="PacketDeviceException"/> with libpcap's message when the text does not compile.</summary>
    public static void Validate(string filter)
    {
        using BpfProgram program = BpfProgram.Compile(filter);
    }
}
