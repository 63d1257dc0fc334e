using System.Net;
using System.Net.Sockets;
using System.Runtime.InteropServices;
using static CookieProxy.Platform.Ebpf;

namespace CookieProxy.Platform;

/// <summary>
/// The XDP program of the AF_XDP backend, emitted as eBPF bytecode so nothing needs clang at run time.
/// <c>native/xdp_redirect.c</c> is the same program in C, for reading and for checking with clang.
/// It redirects an Ethernet frame (untagged or with one 802.1Q/802.1ad tag) carrying IPv4 or IPv6 TCP whose
/// destination ip:port is a protected endpoint into the XSKMAP slot of the frame's rx queue, and passes
/// everything else (ARP, ICMP, other ports, IPv4 fragments after the first, the host's own connections) to
/// the kernel stack untouched. The same frames as <see cref="BpfFilter.ForProtectedEndpoints(IEnumerable{IPEndPoint})"/>.
/// </summary>
/// <remarks>
/// The endpoints are baked in as immediates: the set is fixed for the life of the device, a handful of
/// compares is cheaper than a hash-map lookup, and there is no second map to create and fill.
/// Multi-byte fields are compared as loaded, i.e. in network byte order read as a host-order integer, so
/// the constants are converted once here instead of byte-swapping in the program.
/// </remarks>
public static class XdpProgram
{
    private const int EthHeader = 14;
    private const int VlanTag = 4;
    private const int Ipv4Header = 20;
    private const int Ipv6Header = 40;

    /// <summary>Field offsets in struct xdp_md.</summary>
    private const short XdpMdData = 0;
    private const short XdpMdDataEnd = 4;
    private const short XdpMdRxQueueIndex = 16;

    /// <summary>
    /// Emits the program. <paramref name="xskMapFd"/> is the XSKMAP's fd, referenced by an ld_imm64 with
    /// BPF_PSEUDO_MAP_FD that the verifier turns into the map's address.
    /// </summary>
    /// <code>
    ///   r6 = ctx->rx_queue_index; r2 = data; r3 = data_end
    ///   [VLAN: r2 += 4]                            r2 + 14 is the L3 header from here on
    ///   IPv4: proto == TCP, fragment offset 0, r2 += ihl*4 - 20; match daddr (r7) and dport (r8)
    ///   IPv6: nexthdr == TCP;                      match daddr words and dport (r8)
    ///   match:    return bpf_redirect_map(&amp;xsks, r6, XDP_PASS)    (no socket in the slot: pass)
    ///   no match: return XDP_PASS
    /// </code>
    public static EbpfInstruction[] Build(IEnumerable<IPEndPoint> endpoints, int xskMapFd)
    {
        SplitEndpoints(endpoints, out var v4, out var v6);

        var a = new EbpfAssembler();
        EbpfAssembler.Label pass = a.NewLabel();
        EbpfAssembler.Label redirect = a.NewLabel();
        EbpfAssembler.Label vlan = a.NewLabel();
        EbpfAssembler.Label l3 = a.NewLabel();
        EbpfAssembler.Label ipv4 = a.NewLabel();
        EbpfAssembler.Label ipv6 = a.NewLabel();

        a.Load(BPF_W, EbpfReg.R6, EbpfReg.R1, XdpMdRxQueueIndex);
        a.Load(BPF_W, EbpfReg.R2, EbpfReg.R1, XdpMdData);
        a.Load(BPF_W, EbpfReg.R3, EbpfReg.R1, XdpMdDataEnd);
        BoundsCheck(a, EthHeader, pass);
        a.Load(BPF_H, EbpfReg.R5, EbpfReg.R2, 12);
        a.Jump32(BPF_JEQ, EbpfReg.R5, NetworkOrderAsLoaded(0x8100), vlan);
        a.Jump32(BPF_JEQ, EbpfReg.R5, NetworkOrderAsLoaded(0x88a8), vlan);
        a.Goto(l3);

        // One tag (IEEE 802.1Q): the real EtherType follows it; from here r2 + 14 is the L3 header.
        a.Mark(vlan);
        BoundsCheck(a, EthHeader + VlanTag, pass);
        a.Load(BPF_H, EbpfReg.R5, EbpfReg.R2, 16);
        a.Add64(EbpfReg.R2, VlanTag);

        a.Mark(l3);
        if (v4.Count > 0)
        {
            a.Jump32(BPF_JEQ, EbpfReg.R5, NetworkOrderAsLoaded(0x0800), ipv4);
        }
        if (v6.Count > 0)
        {
            a.Jump32(BPF_JEQ, EbpfReg.R5, NetworkOrderAsLoaded(0x86dd), ipv6);
        }
        a.Goto(pass);

        if (v4.Count > 0)
        {
            // RFC 791: protocol at 9, flags+fragment offset at 6, destination at 16, IHL in the low nibble of byte 0.
            a.Mark(ipv4);
            BoundsCheck(a, EthHeader + Ipv4Header, pass);
            a.Load(BPF_B, EbpfReg.R0, EbpfReg.R2, EthHeader + 9);
            a.Jump32(BPF_JNE, EbpfReg.R0, 6, pass);
            // A later fragment has no TCP header (pcap's "tcp port" matches offset 0 only): mask 0x1fff.
            a.Load(BPF_H, EbpfReg.R0, EbpfReg.R2, EthHeader + 6);
            a.Jump32(BPF_JSET, EbpfReg.R0, NetworkOrderAsLoaded(0x1fff), pass);
            a.Load(BPF_W, EbpfReg.R7, EbpfReg.R2, EthHeader + 16);
            a.Load(BPF_B, EbpfReg.R0, EbpfReg.R2, EthHeader);
            a.And64(EbpfReg.R0, 0x0f);
            a.Lsh64(EbpfReg.R0, 2);
            a.Jump(BPF_JLT, EbpfReg.R0, Ipv4Header, pass);
            // Variable-length header: the verifier bounds r0 to [20, 60] and wants a fresh check after the add.
            a.Add64(EbpfReg.R2, EbpfReg.R0);
            BoundsCheck(a, EthHeader + 4, pass);
            a.Load(BPF_H, EbpfReg.R8, EbpfReg.R2, EthHeader + 2);
            foreach ((bool any, uint address, ushort port) in v4)
            {
                EbpfAssembler.Label next = a.NewLabel();
                a.Jump32(BPF_JNE, EbpfReg.R8, port, next);
                if (!any)
                {
                    a.Jump32(BPF_JNE, EbpfReg.R7, unchecked((int)address), next);
                }
                a.Goto(redirect);
                a.Mark(next);
            }
            a.Goto(pass);
        }

        if (v6.Count > 0)
        {
            // RFC 8200: next header at 6, destination at 24..40. Extension headers are not followed (as pcap's "tcp").
            a.Mark(ipv6);
            BoundsCheck(a, EthHeader + Ipv6Header + 4, pass);
            a.Load(BPF_B, EbpfReg.R0, EbpfReg.R2, EthHeader + 6);
            a.Jump32(BPF_JNE, EbpfReg.R0, 6, pass);
            a.Load(BPF_H, EbpfReg.R8, EbpfReg.R2, EthHeader + Ipv6Header + 2);
            foreach ((bool any, uint[] words, ushort port) in v6)
            {
                EbpfAssembler.Label next = a.NewLabel();
                a.Jump32(BPF_JNE, EbpfReg.R8, port, next);
                if (!any)
                {
                    for (int i = 0; i < 4; i++)
                    {
                        a.Load(BPF_W, EbpfReg.R0, EbpfReg.R2, (short)(EthHeader + 24 + 4 * i));
                        a.Jump32(BPF_JNE, EbpfReg.R0, unchecked((int)words[i]), next);
                    }
                }
                a.Goto(redirect);
                a.Mark(next);
            }
            a.Goto(pass);
        }

        // bpf_redirect_map's flags: the low bits are the action when the slot is empty (Linux 5.6+), so a
        // frame that arrives before our socket is in the map, or after it left, goes to the stack.
        a.Mark(redirect);
        a.LoadMapFd(EbpfReg.R1, xskMapFd);
        a.Mov64(EbpfReg.R2, EbpfReg.R6);
        a.Mov64(EbpfReg.R3, Interop.Bpf.XDP_PASS);
        a.Call(BPF_FUNC_redirect_map);
        a.Exit();

        a.Mark(pass);
        a.Mov64(EbpfReg.R0, Interop.Bpf.XDP_PASS);
        a.Exit();
        return a.Build();
    }

    /// <summary>The endpoints per family, addresses and ports as a host-order load of their network-order bytes
    /// yields them (so the program compares without byte swaps); IPv4-mapped IPv6 endpoints count as IPv4.</summary>
    internal static void SplitEndpoints(IEnumerable<IPEndPoint> endpoints,
        out List<(bool Any, uint Address, ushort Port)> v4, out List<(bool Any, uint[] Words, ushort Port)> v6)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        v4 = new List<(bool Any, uint Address, ushort Port)>();
        v6 = new List<(bool Any, uint[] Words, ushort Port)>();
        foreach (IPEndPoint endpoint in endpoints)
        {
            if (endpoint.Port is <= 0 or > 65535)
            {
                throw new ArgumentException($"Port {endpoint.Port} of {endpoint} is not a valid TCP port.", nameof(endpoints));
            }
            ushort port = NetworkOrderAsLoaded((ushort)endpoint.Port);
            IPAddress address = endpoint.Address.IsIPv4MappedToIPv6 ? endpoint.Address.MapToIPv4() : endpoint.Address;
            byte[] bytes = address.GetAddressBytes();
            if (address.AddressFamily == AddressFamily.InterNetwork)
            {
                v4.Add((address.Equals(IPAddress.Any), MemoryMarshal.Read<uint>(bytes), port));
            }
            else
            {
                var words = new uint[4];
                for (int i = 0; i < 4; i++)
                {
                    words[i] = MemoryMarshal.Read<uint>(bytes.AsSpan(i * 4));
                }
                v6.Add((address.Equals(IPAddress.IPv6Any), words, port));
            }
        }
        if (v4.Count + v6.Count == 0)
        {
            throw new ArgumentException("At least one protected endpoint is required.", nameof(endpoints));
        }
    }

    /// <summary>r4 = r2 + bytes; if r4 &gt; data_end (r3) goto fail. The verifier's proof that r2[0..bytes) is readable.</summary>
    private static void BoundsCheck(EbpfAssembler a, int bytes, EbpfAssembler.Label fail)
    {
        a.Mov64(EbpfReg.R4, EbpfReg.R2);
        a.Add64(EbpfReg.R4, bytes);
        a.Jump(BPF_JGT, EbpfReg.R4, EbpfReg.R3, fail);
    }

    /// <summary>The value a host-order 16-bit load of the network-order bytes of <paramref name="value"/> yields.</summary>
    internal static ushort NetworkOrderAsLoaded(ushort value)
    {
        Span<byte> bytes = stackalloc byte[2];
        System.Buffers.Binary.BinaryPrimitives.WriteUInt16BigEndian(bytes, value);
        return MemoryMarshal.Read<ushort>(bytes);
    }
}
