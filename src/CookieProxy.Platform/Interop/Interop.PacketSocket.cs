// Struct and constant names keep their C spelling (STYLE.md lesson 10).
#pragma warning disable CS8981 // lower-case type names

using System.Runtime.InteropServices;
using System.Runtime.Versioning;

namespace CookieProxy.Platform;

/// <summary>
/// Linux AF_PACKET sockets and their TPACKET_V2 / TPACKET_V3 receive rings (Documentation/networking/packet_mmap.rst,
/// include/uapi/linux/if_packet.h). Struct layouts mirror the kernel ABI byte for byte; the tests assert
/// their sizes and offsets against the values gcc reports for the headers.
/// </summary>
internal static partial class Interop
{
    // The struct layouts are also walked over fake memory (tests, benchmarks), so only the functions are
    // [SupportedOSPlatform("linux")], not the class.
    internal static unsafe partial class PacketSocket
    {
        static PacketSocket() => Libraries.EnsureResolver();

        // <sys/socket.h>, <linux/if_ether.h>
        internal const int AF_PACKET = 17;
        internal const int SOCK_RAW = 3;
        internal const int SOCK_CLOEXEC = 0x80000;
        internal const ushort ETH_P_ALL = 0x0003;
        internal const ushort ETH_P_8021Q = 0x8100;
        internal const int SOL_SOCKET = 1;
        internal const int SO_RCVBUF = 8;
        internal const int SO_ATTACH_FILTER = 26;
        internal const int SO_RCVBUFFORCE = 33;
        internal const int MSG_DONTWAIT = 0x40;
        internal const int SOL_PACKET = 263;

        // <linux/if_packet.h> socket options
        internal const int PACKET_ADD_MEMBERSHIP = 1;
        internal const int PACKET_RX_RING = 5;
        internal const int PACKET_STATISTICS = 6;
        internal const int PACKET_COPY_THRESH = 7;       // V1/V2: a frame too long for its slot is also queued whole
        internal const int PACKET_VERSION = 10;
        internal const int PACKET_FANOUT = 18;
        internal const int PACKET_VNET_HDR = 15;
        internal const int PACKET_QDISC_BYPASS = 20;
        internal const int PACKET_FANOUT_DATA = 22;      // Linux 4.2: the group's steering program
        internal const int PACKET_IGNORE_OUTGOING = 23;

        internal const int PACKET_MR_PROMISC = 1;

        internal const int PACKET_FANOUT_HASH = 0;
        internal const int PACKET_FANOUT_CBPF = 6;       // Linux 4.2: a classic BPF program picks the member
        internal const int PACKET_FANOUT_FLAG_DEFRAG = 0x8000;

        // <linux/filter.h>: negative load offsets relative to skb_network_header() / skb_mac_header()
        // instead of skb->data (kernel/bpf/core.c, bpf_internal_load_pointer_neg_helper).
        internal const int SKF_NET_OFF = -0x100000;
        internal const int SKF_LL_OFF = -0x200000;

        // <linux/bpf_common.h>: classic BPF opcode fields (struct sock_filter.code = class | size | mode, or
        // class | op | src). Only what FanoutProgram emits.
        internal const ushort BPF_LD = 0x00;
        internal const ushort BPF_ALU = 0x04;
        internal const ushort BPF_JMP = 0x05;
        internal const ushort BPF_RET = 0x06;
        internal const ushort BPF_MISC = 0x07;
        internal const ushort BPF_W = 0x00;
        internal const ushort BPF_B = 0x10;
        internal const ushort BPF_IMM = 0x00;
        internal const ushort BPF_ABS = 0x20;
        internal const ushort BPF_MUL = 0x20;
        internal const ushort BPF_AND = 0x50;
        internal const ushort BPF_RSH = 0x70;
        internal const ushort BPF_MOD = 0x90;
        internal const ushort BPF_XOR = 0xa0;
        internal const ushort BPF_JA = 0x00;
        internal const ushort BPF_JEQ = 0x10;
        internal const ushort BPF_K = 0x00;
        internal const ushort BPF_X = 0x08;
        internal const ushort BPF_A = 0x10;
        internal const ushort BPF_TAX = 0x00;
        internal const int BPF_MAXINSNS = 4096;

        internal const int TPACKET_V2 = 1;
        internal const int TPACKET_V3 = 2;

        // Packet types (sockaddr_ll.sll_pkttype)
        internal const byte PACKET_OUTGOING = 4;

        // Rx ring header status
        internal const uint TP_STATUS_KERNEL = 0;
        internal const uint TP_STATUS_USER = 1 << 0;
        internal const uint TP_STATUS_COPY = 1 << 1;
        internal const uint TP_STATUS_LOSING = 1 << 2;
        internal const uint TP_STATUS_CSUMNOTREADY = 1 << 3;
        internal const uint TP_STATUS_VLAN_VALID = 1 << 4;
        internal const uint TP_STATUS_BLK_TMO = 1 << 5;
        internal const uint TP_STATUS_VLAN_TPID_VALID = 1 << 6;
        internal const uint TP_STATUS_CSUM_VALID = 1 << 7;

        internal const int TPACKET_ALIGNMENT = 16;

        // <sys/mman.h>
        internal const int PROT_READ = 1;
        internal const int PROT_WRITE = 2;
        internal const int MAP_SHARED = 1;
        internal static readonly IntPtr MAP_FAILED = -1;

        // <errno.h> (Linux values)
        internal const int ENXIO = 6;
        internal const int EAGAIN = 11;
        internal const int ENODEV = 19;
        internal const int EINVAL = 22;
        internal const int ENOPROTOOPT = 92;
        internal const int EAFNOSUPPORT = 97;
        internal const int ENOBUFS = 105;
        internal const int ENETDOWN = 100;

        /// <summary>struct sockaddr_ll (20 bytes).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct sockaddr_ll
        {
            public ushort sll_family;
            public ushort sll_protocol;   // __be16
            public int sll_ifindex;
            public ushort sll_hatype;
            public byte sll_pkttype;
            public byte sll_halen;
            public fixed byte sll_addr[8];
        }

        /// <summary>struct packet_mreq (16 bytes).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct packet_mreq
        {
            public int mr_ifindex;
            public ushort mr_type;
            public ushort mr_alen;
            public fixed byte mr_address[8];
        }

        /// <summary>struct tpacket_req3 (28 bytes).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct tpacket_req3
        {
            public uint tp_block_size;
            public uint tp_block_nr;
            public uint tp_frame_size;
            public uint tp_frame_nr;
            public uint tp_retire_blk_tov;
            public uint tp_sizeof_priv;
            public uint tp_feature_req_word;
        }

        /// <summary>struct tpacket_req (16 bytes): the ring geometry for TPACKET_V1/V2.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct tpacket_req
        {
            public uint tp_block_size;
            public uint tp_block_nr;
            public uint tp_frame_size;
            public uint tp_frame_nr;
        }

        /// <summary>struct tpacket2_hdr (32 bytes): the header at the start of every TPACKET_V2 frame slot.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct tpacket2_hdr
        {
            public uint tp_status;
            public uint tp_len;
            public uint tp_snaplen;
            public ushort tp_mac;
            public ushort tp_net;
            public uint tp_sec;
            public uint tp_nsec;
            public ushort tp_vlan_tci;
            public ushort tp_vlan_tpid;
            public fixed byte tp_padding[4];
        }

        /// <summary>TPACKET2_HDRLEN: TPACKET_ALIGN(sizeof(tpacket2_hdr)) + sizeof(sockaddr_ll).</summary>
        internal const int TPACKET2_HDRLEN = 32 + 20;

        /// <summary>struct tpacket_stats (8 bytes), PACKET_STATISTICS of a V1/V2 socket. Reading it resets the counters.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct tpacket_stats
        {
            public uint tp_packets;
            public uint tp_drops;
        }

        /// <summary>struct tpacket_bd_ts.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct tpacket_bd_ts
        {
            public uint ts_sec;
            public uint ts_usec_or_nsec;
        }

        /// <summary>struct tpacket_hdr_v1 (40 bytes), the only member of union tpacket_bd_header_u.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct tpacket_hdr_v1
        {
            public uint block_status;
            public uint num_pkts;
            public uint offset_to_first_pkt;
            public uint blk_len;
            public ulong seq_num;          // __aligned_u64: offset 16 within the header, 24 in the block
            public tpacket_bd_ts ts_first_pkt;
            public tpacket_bd_ts ts_last_pkt;
        }

        /// <summary>struct tpacket_block_desc (48 bytes): the header at the start of every ring block.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct tpacket_block_desc
        {
            public uint version;
            public uint offset_to_priv;
            public tpacket_hdr_v1 bh1;
        }

        /// <summary>struct tpacket_hdr_variant1 (12 bytes).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct tpacket_hdr_variant1
        {
            public uint tp_rxhash;
            public uint tp_vlan_tci;
            public ushort tp_vlan_tpid;
            public ushort tp_padding;
        }

        /// <summary>struct tpacket3_hdr (48 bytes): one per frame inside a block.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct tpacket3_hdr
        {
            public uint tp_next_offset;
            public uint tp_sec;
            public uint tp_nsec;
            public uint tp_snaplen;
            public uint tp_len;
            public uint tp_status;
            public ushort tp_mac;
            public ushort tp_net;
            public tpacket_hdr_variant1 hv1;
            public fixed byte tp_padding[8];
        }

        /// <summary>struct tpacket_stats_v3 (12 bytes). Reading it resets the kernel counters.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct tpacket_stats_v3
        {
            public uint tp_packets;
            public uint tp_drops;
            public uint tp_freeze_q_cnt;
        }

        /// <summary>struct sock_fprog (16 bytes on LP64): instructions are struct sock_filter == struct bpf_insn.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct sock_fprog
        {
            public ushort len;
            public Pcap.bpf_insn* filter;
        }

        // <linux/virtio_net.h>
        internal const byte VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
        internal const byte VIRTIO_NET_HDR_GSO_NONE = 0;
        internal const byte VIRTIO_NET_HDR_GSO_TCPV4 = 1;
        internal const byte VIRTIO_NET_HDR_GSO_TCPV6 = 4;

        /// <summary>struct virtio_net_hdr (10 bytes), prefixed to every frame sent on a PACKET_VNET_HDR socket.
        /// Packet sockets use the legacy (native) byte order for its 16-bit fields (vio_le() in af_packet.c).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct virtio_net_hdr
        {
            public byte flags;
            public byte gso_type;
            public ushort hdr_len;
            public ushort gso_size;
            public ushort csum_start;
            public ushort csum_offset;
        }

        /// <summary>struct iovec.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct iovec
        {
            public void* iov_base;
            public nuint iov_len;
        }

        /// <summary>struct msghdr (56 bytes on LP64).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct msghdr
        {
            public void* msg_name;
            public uint msg_namelen;
            public iovec* msg_iov;
            public nuint msg_iovlen;
            public void* msg_control;
            public nuint msg_controllen;
            public int msg_flags;
        }

        /// <summary>struct mmsghdr (64 bytes on LP64).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct mmsghdr
        {
            public msghdr msg_hdr;
            public uint msg_len;
        }

        [SupportedOSPlatform("linux")]
        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial int socket(int domain, int type, int protocol);

        [SupportedOSPlatform("linux")]
        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial int setsockopt(SafeFdHandle fd, int level, int optname, void* optval, uint optlen);

        [SupportedOSPlatform("linux")]
        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial int getsockopt(SafeFdHandle fd, int level, int optname, void* optval, uint* optlen);

        [SupportedOSPlatform("linux")]
        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial int bind(SafeFdHandle fd, sockaddr_ll* addr, uint addrlen);

        [SupportedOSPlatform("linux")]
        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial IntPtr mmap(IntPtr addr, nuint length, int prot, int flags, SafeFdHandle fd, nint offset);

        [SupportedOSPlatform("linux")]
        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial int munmap(IntPtr addr, nuint length);

        [SupportedOSPlatform("linux")]
        [LibraryImport(Libraries.Libc, SetLastError = true, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial uint if_nametoindex(string ifname);

        /// <summary>Hot path: raw descriptor (the device keeps its SafeFdHandle alive).</summary>
        [SupportedOSPlatform("linux")]
        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial int sendmmsg(int fd, mmsghdr* msgvec, uint vlen, int flags);

        /// <summary>Raw descriptor, like <see cref="sendmmsg"/>: the whole copy of a frame its ring slot could not hold.</summary>
        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial nint recv(int fd, void* buf, nuint len, int flags);

        internal static uint TPACKET_ALIGN(uint x) => (x + TPACKET_ALIGNMENT - 1) & ~(uint)(TPACKET_ALIGNMENT - 1);
    }
}
