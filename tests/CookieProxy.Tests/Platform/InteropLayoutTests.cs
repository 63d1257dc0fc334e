using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using CookieProxy.Platform;
using static CookieProxy.Platform.Interop.PacketSocket;

namespace CookieProxy.Tests.Platform;

/// <summary>
/// Struct layouts against the kernel ABI. Expected numbers come from gcc on x86-64 with
/// /usr/include/linux/if_packet.h (sizeof/offsetof), as recorded in the platform report.
/// </summary>
public class InteropLayoutTests
{
    [Fact]
    public void TpacketReq3Is28Bytes() => Assert.Equal(28, Unsafe.SizeOf<tpacket_req3>());

    [Fact]
    public void TpacketV2StructsMatchTheKernel()
    {
        Assert.Equal(16, Unsafe.SizeOf<tpacket_req>());
        Assert.Equal(8, Unsafe.SizeOf<tpacket_stats>());
        Assert.Equal(32, Unsafe.SizeOf<tpacket2_hdr>());
        Assert.Equal(0, Offset<tpacket2_hdr>(nameof(tpacket2_hdr.tp_status)));
        Assert.Equal(4, Offset<tpacket2_hdr>(nameof(tpacket2_hdr.tp_len)));
        Assert.Equal(8, Offset<tpacket2_hdr>(nameof(tpacket2_hdr.tp_snaplen)));
        Assert.Equal(12, Offset<tpacket2_hdr>(nameof(tpacket2_hdr.tp_mac)));
        Assert.Equal(14, Offset<tpacket2_hdr>(nameof(tpacket2_hdr.tp_net)));
        Assert.Equal(16, Offset<tpacket2_hdr>(nameof(tpacket2_hdr.tp_sec)));
        Assert.Equal(20, Offset<tpacket2_hdr>(nameof(tpacket2_hdr.tp_nsec)));
        Assert.Equal(24, Offset<tpacket2_hdr>(nameof(tpacket2_hdr.tp_vlan_tci)));
        Assert.Equal(26, Offset<tpacket2_hdr>(nameof(tpacket2_hdr.tp_vlan_tpid)));
        Assert.Equal(28, Offset<tpacket2_hdr>(nameof(tpacket2_hdr.tp_padding)));
        // TPACKET2_HDRLEN = TPACKET_ALIGN(sizeof(tpacket2_hdr)) + sizeof(sockaddr_ll)
        Assert.Equal(52, TPACKET2_HDRLEN);
        Assert.Equal(TPACKET2_HDRLEN, (int)TPACKET_ALIGN((uint)Unsafe.SizeOf<tpacket2_hdr>()) + Unsafe.SizeOf<sockaddr_ll>());
    }

    [Fact]
    public void TpacketBlockDescMatchesTheKernel()
    {
        Assert.Equal(48, Unsafe.SizeOf<tpacket_block_desc>());
        Assert.Equal(40, Unsafe.SizeOf<tpacket_hdr_v1>());
        Assert.Equal(8, Offset<tpacket_block_desc>(nameof(tpacket_block_desc.bh1)));
        Assert.Equal(0, Offset<tpacket_hdr_v1>(nameof(tpacket_hdr_v1.block_status)));
        Assert.Equal(4, Offset<tpacket_hdr_v1>(nameof(tpacket_hdr_v1.num_pkts)));
        Assert.Equal(8, Offset<tpacket_hdr_v1>(nameof(tpacket_hdr_v1.offset_to_first_pkt)));
        Assert.Equal(12, Offset<tpacket_hdr_v1>(nameof(tpacket_hdr_v1.blk_len)));
        Assert.Equal(16, Offset<tpacket_hdr_v1>(nameof(tpacket_hdr_v1.seq_num)));
        Assert.Equal(24, Offset<tpacket_hdr_v1>(nameof(tpacket_hdr_v1.ts_first_pkt)));
        Assert.Equal(32, Offset<tpacket_hdr_v1>(nameof(tpacket_hdr_v1.ts_last_pkt)));
    }

    [Fact]
    public void Tpacket3HdrIs48BytesIncludingHv1()
    {
        Assert.Equal(48, Unsafe.SizeOf<tpacket3_hdr>());
        Assert.Equal(12, Unsafe.SizeOf<tpacket_hdr_variant1>());
        Assert.Equal(0, Offset<tpacket3_hdr>(nameof(tpacket3_hdr.tp_next_offset)));
        Assert.Equal(12, Offset<tpacket3_hdr>(nameof(tpacket3_hdr.tp_snaplen)));
        Assert.Equal(16, Offset<tpacket3_hdr>(nameof(tpacket3_hdr.tp_len)));
        Assert.Equal(20, Offset<tpacket3_hdr>(nameof(tpacket3_hdr.tp_status)));
        Assert.Equal(24, Offset<tpacket3_hdr>(nameof(tpacket3_hdr.tp_mac)));
        Assert.Equal(26, Offset<tpacket3_hdr>(nameof(tpacket3_hdr.tp_net)));
        Assert.Equal(28, Offset<tpacket3_hdr>(nameof(tpacket3_hdr.hv1)));
        Assert.Equal(4, Offset<tpacket_hdr_variant1>(nameof(tpacket_hdr_variant1.tp_vlan_tci)));
        Assert.Equal(8, Offset<tpacket_hdr_variant1>(nameof(tpacket_hdr_variant1.tp_vlan_tpid)));
        Assert.Equal(40, Offset<tpacket3_hdr>(nameof(tpacket3_hdr.tp_padding)));
        // TPACKET_ALIGN(sizeof(tpacket3_hdr)): where the walker finds sockaddr_ll.
        Assert.Equal(48u, TPACKET_ALIGN((uint)Unsafe.SizeOf<tpacket3_hdr>()));
    }

    [Fact]
    public void SocketStructsMatchTheKernel()
    {
        Assert.Equal(20, Unsafe.SizeOf<sockaddr_ll>());
        Assert.Equal(10, Offset<sockaddr_ll>(nameof(sockaddr_ll.sll_pkttype)));
        Assert.Equal(16, Unsafe.SizeOf<packet_mreq>());
        Assert.Equal(12, Unsafe.SizeOf<tpacket_stats_v3>());
        Assert.Equal(16, Unsafe.SizeOf<sock_fprog>());
        Assert.Equal(8, Unsafe.SizeOf<Interop.Pcap.bpf_insn>());
        Assert.Equal(16, Unsafe.SizeOf<Interop.Pcap.bpf_program>());
        Assert.Equal(56, Unsafe.SizeOf<msghdr>());
        Assert.Equal(64, Unsafe.SizeOf<mmsghdr>());
        Assert.Equal(8, Unsafe.SizeOf<Interop.Libc.pollfd>());
    }

    [Fact]
    public void PcapStructsMatchLibpcap()
    {
        Assert.Equal(24, Unsafe.SizeOf<Interop.Pcap.pcap_pkthdr>());
        Assert.Equal(16, Offset<Interop.Pcap.pcap_pkthdr>(nameof(Interop.Pcap.pcap_pkthdr.caplen)));
        Assert.Equal(12, Unsafe.SizeOf<Interop.Pcap.pcap_stat>());
    }

    private static int Offset<T>(string field) => (int)Marshal.OffsetOf<T>(field);
}

/// <summary>AF_XDP and bpf(2) structs against include/uapi/linux/if_xdp.h and bpf.h (gcc sizeof on x86-64).</summary>
public class XdpInteropLayoutTests
{
    [Fact]
    public void AfXdpStructsMatchTheKernel()
    {
        Assert.Equal(16, Unsafe.SizeOf<Interop.Xdp.sockaddr_xdp>());
        Assert.Equal(32, Unsafe.SizeOf<Interop.Xdp.xdp_ring_offset>());
        Assert.Equal(128, Unsafe.SizeOf<Interop.Xdp.xdp_mmap_offsets>());
        Assert.Equal(32, Unsafe.SizeOf<Interop.Xdp.xdp_umem_reg>());
        Assert.Equal(48, Unsafe.SizeOf<Interop.Xdp.xdp_statistics>());
        Assert.Equal(16, Unsafe.SizeOf<Interop.Xdp.xdp_desc>());
    }

    [Fact]
    public void LibbpfOptionStructsMatchLibbpf()
    {
        // Sizes and offsets from gcc on x86-64 with /usr/include/bpf/{bpf,libbpf}.h (libbpf 1.1), each struct
        // cut after the last field we set (libbpf takes sz and treats the rest as zero).
        Assert.Equal(16, Unsafe.SizeOf<Interop.Libbpf.bpf_object_open_opts>());
        Assert.Equal(32, Unsafe.SizeOf<Interop.Libbpf.bpf_link_create_opts>());
        Assert.Equal(28, (int)Marshal.OffsetOf<Interop.Libbpf.bpf_link_create_opts>(nameof(Interop.Libbpf.bpf_link_create_opts.target_btf_id)));
        Assert.Equal(16, Unsafe.SizeOf<Interop.Libbpf.bpf_xdp_attach_opts>());
        Assert.Equal(32, Unsafe.SizeOf<Interop.Libbpf.bpf_xdp_query_opts>());
        Assert.Equal(24, (int)Marshal.OffsetOf<Interop.Libbpf.bpf_xdp_query_opts>(nameof(Interop.Libbpf.bpf_xdp_query_opts.attach_mode)));
        Assert.Equal(80, Unsafe.SizeOf<Interop.Libbpf.bpf_test_run_opts>());
        Assert.Equal(56, (int)Marshal.OffsetOf<Interop.Libbpf.bpf_test_run_opts>(nameof(Interop.Libbpf.bpf_test_run_opts.retval)));
        Assert.Equal(64, (int)Marshal.OffsetOf<Interop.Libbpf.bpf_prog_info>(nameof(Interop.Libbpf.bpf_prog_info.name)));
    }

    [Fact]
    public void EthtoolAndIfreqMatchTheKernel()
    {
        Assert.Equal(196, Unsafe.SizeOf<Interop.Xdp.ethtool_drvinfo>());
        Assert.Equal(40, Unsafe.SizeOf<Interop.Xdp.ifreq_data>());
    }

    [Fact]
    public void XdpMapStructsMatchNativeCpXdpH()
    {
        // native/cp_xdp.h; the loader checks these against the object's BTF at every load as well.
        Assert.Equal(20, Unsafe.SizeOf<XdpMaps.cp_endpoint_key>());
        Assert.Equal(36, Unsafe.SizeOf<XdpMaps.cp_flow_key>());
        Assert.Equal(16, Unsafe.SizeOf<XdpMaps.cp_prefix_key>());
        Assert.Equal(24, Unsafe.SizeOf<XdpMaps.cp_syn_key>());
        Assert.Equal(112, Unsafe.SizeOf<XdpMaps.cp_syn_config>());
        Assert.Equal(56, (int)Marshal.OffsetOf<XdpMaps.cp_syn_config>(nameof(XdpMaps.cp_syn_config.mss_v4)));
        Assert.Equal(88, (int)Marshal.OffsetOf<XdpMaps.cp_syn_config>(nameof(XdpMaps.cp_syn_config.mac_bits)));
        Assert.Equal(96, (int)Marshal.OffsetOf<XdpMaps.cp_syn_config>(nameof(XdpMaps.cp_syn_config.syn_interval_ns)));
        Assert.Equal(64, Unsafe.SizeOf<XdpMaps.cp_syn_counters>());
    }
}
