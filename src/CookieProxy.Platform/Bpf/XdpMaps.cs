// Struct names keep their C spelling (STYLE.md lesson 10).
#pragma warning disable CS8981 // lower-case type names

using System.Buffers.Binary;
using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using CookieProxy.Wire;

namespace CookieProxy.Platform;

/// <summary>
/// The map keys and values of native/cp_xdp.h, byte for byte. <see cref="BpfObjectMap.RequireLayout"/> checks
/// every one against the sizes the compiled object declares (BTF), so the two sides cannot drift apart
/// silently.
/// </summary>
internal static class XdpMaps
{
    /// <summary>struct cp_endpoint_key (20 bytes): the address IPv4-mapped for IPv4, the port in network order.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal unsafe struct cp_endpoint_key : IEquatable<cp_endpoint_key>
    {
        public fixed byte addr[16];
        public ushort port;
        public ushort pad;

        public readonly bool Equals(cp_endpoint_key other)
        {
            cp_endpoint_key self = this;
            return MemoryMarshal.AsBytes(new ReadOnlySpan<cp_endpoint_key>(in self)).SequenceEqual(MemoryMarshal.AsBytes(new ReadOnlySpan<cp_endpoint_key>(in other)));
        }

        public override readonly bool Equals(object? obj) => obj is cp_endpoint_key k && Equals(k);

        public override readonly int GetHashCode()
        {
            cp_endpoint_key self = this;
            var hash = new HashCode();
            hash.AddBytes(MemoryMarshal.AsBytes(new ReadOnlySpan<cp_endpoint_key>(in self)));
            return hash.ToHashCode();
        }
    }

    /// <summary>struct cp_flow_key (36 bytes): client address and port, then ours, as in the SYN.</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal unsafe struct cp_flow_key
    {
        public fixed byte saddr[16];
        public fixed byte daddr[16];
        public ushort sport;
        public ushort dport;
    }

    /// <summary>struct cp_prefix_key (16 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal unsafe struct cp_prefix_key
    {
        public fixed byte addr[16];
    }

    /// <summary>struct cp_budget (8 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct cp_budget
    {
        public ulong tat_ns;
    }

    /// <summary>struct cp_syn_key (24 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal struct cp_syn_key
    {
        public ulong k0;
        public ulong k1;
        public uint slot;
        public uint pad;
    }

    /// <summary>CP_SYN_F_* of cp_syn_config.flags.</summary>
    internal const uint CP_SYN_F_RATE_LIMIT = 1;
    internal const uint CP_SYN_F_PASS_SYNS = 2;

    /// <summary>struct cp_syn_config (112 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal unsafe struct cp_syn_config
    {
        public cp_syn_key key0;
        public cp_syn_key key1;
        public uint active;
        public uint flags;
        public ushort mss_v4;
        public ushort mss_v6;
        public ushort window;
        public byte window_scale;
        public byte pad0;
        public fixed ushort mss_table[8];
        public fixed sbyte ws_table[8];
        public byte mac_bits;
        public byte wsi_shift;
        public byte msi_shift;
        public byte sack_shift;
        public byte ts_ecn_bit;
        public byte ts_ws_none;
        public byte prefix_v4;
        public byte prefix_v6;
        public ulong syn_interval_ns;
        public ulong syn_tolerance_ns;
    }

    /// <summary>enum cp_syn_counter: slots of struct cp_syn_counters (CP_SYN_COUNTERS = 8 u64s).</summary>
    internal const int CP_SYN_ANSWERED = 0;
    internal const int CP_SYN_PASSED = 1;
    internal const int CP_SYN_LIVE_FLOW = 2;
    internal const int CP_SYN_OVER_BUDGET = 3;
    internal const int CP_SYN_INTERNAL_ERROR = 4;
    internal const int CP_SYN_COUNTERS = 8;

    /// <summary>struct cp_syn_counters (64 bytes).</summary>
    [StructLayout(LayoutKind.Sequential)]
    internal unsafe struct cp_syn_counters
    {
        public fixed ulong value[CP_SYN_COUNTERS];
    }

    /// <summary>struct cp_syn_options of xdp_syn.c (the option walk's per-CPU record, 20 bytes).</summary>
    internal const int CpSynOptionsSize = 20;

    /// <summary>The IPv4-mapped form IpAddr keeps (::ffff:a.b.c.d), or the 16 IPv6 bytes.</summary>
    internal static unsafe void WriteAddress(byte* destination, in IpAddr address)
    {
        var span = new Span<byte>(destination, 16);
        BinaryPrimitives.WriteUInt64BigEndian(span, address.Hi);
        BinaryPrimitives.WriteUInt64BigEndian(span[8..], address.Lo);
    }

    internal static ushort NetworkOrder(ushort port) => BitConverter.IsLittleEndian ? BinaryPrimitives.ReverseEndianness(port) : port;

    internal static unsafe cp_flow_key FlowKey(in FlowKey flow)
    {
        cp_flow_key key = default;
        WriteAddress(key.saddr, flow.SrcAddr);
        WriteAddress(key.daddr, flow.DstAddr);
        key.sport = NetworkOrder(flow.SrcPort);
        key.dport = NetworkOrder(flow.DstPort);
        return key;
    }

    /// <summary>The endpoint key; an IPv4-mapped IPv6 endpoint is the IPv4 one (as the parser and the capture
    /// filter see it); 0.0.0.0 and :: are the family wildcards.</summary>
    internal static unsafe cp_endpoint_key EndpointKey(IPEndPoint endpoint)
    {
        if (endpoint.Port is <= 0 or > 65535)
        {
            throw new ArgumentException($"Port {endpoint.Port} of {endpoint} is not a valid TCP port.", nameof(endpoint));
        }
        IPAddress address = endpoint.Address.IsIPv4MappedToIPv6 ? endpoint.Address.MapToIPv4() : endpoint.Address;
        if (address.AddressFamily is not (AddressFamily.InterNetwork or AddressFamily.InterNetworkV6))
        {
            throw new ArgumentException($"{endpoint} is neither IPv4 nor IPv6.", nameof(endpoint));
        }
        cp_endpoint_key key = default;
        WriteAddress(key.addr, IpAddr.FromIPAddress(address));
        key.port = NetworkOrder((ushort)endpoint.Port);
        return key;
    }
}
