// Struct and constant names keep their C spelling (STYLE.md lesson 10).
#pragma warning disable CS8981 // lower-case type names

using System.Runtime.InteropServices;
using System.Runtime.Versioning;

namespace CookieProxy.Platform;

/// <summary>
/// AF_XDP sockets (Documentation/networking/af_xdp.rst, include/uapi/linux/if_xdp.h). Struct layouts mirror
/// the kernel ABI byte for byte; InteropLayoutTests asserts their sizes.
/// </summary>
internal static partial class Interop
{
    internal static unsafe partial class Xdp
    {
        static Xdp() => Libraries.EnsureResolver();

        // <sys/socket.h>
        internal const int AF_XDP = 44;
        internal const int SOL_XDP = 283;
        internal const int SO_SNDBUF = 7;
        internal const int SO_SNDBUFFORCE = 32;
        internal const int MSG_DONTWAIT = 0x40;

        // sockaddr_xdp.sxdp_flags
        internal const ushort XDP_SHARED_UMEM = 1 << 0;
        internal const ushort XDP_COPY = 1 << 1;
        internal const ushort XDP_ZEROCOPY = 1 << 2;
        internal const ushort XDP_USE_NEED_WAKEUP = 1 << 3;

        // xdp_ring flags word
        internal const uint XDP_RING_NEED_WAKEUP = 1 << 0;

        // SOL_XDP socket options
        internal const int XDP_MMAP_OFFSETS = 1;
        internal const int XDP_RX_RING = 2;
        internal const int XDP_TX_RING = 3;
        internal const int XDP_UMEM_REG = 4;
        internal const int XDP_UMEM_FILL_RING = 5;
        internal const int XDP_UMEM_COMPLETION_RING = 6;
        internal const int XDP_STATISTICS = 7;

        // mmap page offsets of the four rings
        internal const long XDP_PGOFF_RX_RING = 0;
        internal const long XDP_PGOFF_TX_RING = 0x80000000;
        internal const long XDP_UMEM_PGOFF_FILL_RING = 0x100000000;
        internal const long XDP_UMEM_PGOFF_COMPLETION_RING = 0x180000000;

        /// <summary>Bytes the kernel keeps in front of every received frame in its UMEM chunk (include/net/xdp.h).</summary>
        internal const int XDP_PACKET_HEADROOM = 256;

        // <sys/mman.h>
        internal const int MAP_PRIVATE = 0x02;
        internal const int MAP_ANONYMOUS = 0x20;
        internal const int MAP_POPULATE = 0x8000;

        /// <summary>struct sockaddr_xdp (16 bytes).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct sockaddr_xdp
        {
            public ushort sxdp_family;
            public ushort sxdp_flags;
            public uint sxdp_ifindex;
            public uint sxdp_queue_id;
            public uint sxdp_shared_umem_fd;
        }

        /// <summary>struct xdp_ring_offset (32 bytes): where in a ring's mapping each part lives.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct xdp_ring_offset
        {
            public ulong producer;
            public ulong consumer;
            public ulong desc;
            public ulong flags;
        }

        /// <summary>struct xdp_mmap_offsets (128 bytes).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct xdp_mmap_offsets
        {
            public xdp_ring_offset rx;
            public xdp_ring_offset tx;
            public xdp_ring_offset fr;
            public xdp_ring_offset cr;
        }

        /// <summary>struct xdp_umem_reg (32 bytes; tx_metadata_len since 6.8, zero = none).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct xdp_umem_reg
        {
            public ulong addr;
            public ulong len;
            public uint chunk_size;
            public uint headroom;
            public uint flags;
            public uint tx_metadata_len;
        }

        /// <summary>struct xdp_statistics (48 bytes). Counters are cumulative (unlike PACKET_STATISTICS).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct xdp_statistics
        {
            public ulong rx_dropped;
            public ulong rx_invalid_descs;
            public ulong tx_invalid_descs;
            public ulong rx_ring_full;
            public ulong rx_fill_ring_empty_descs;
            public ulong tx_ring_empty_descs;
        }

        /// <summary>struct xdp_desc (16 bytes): one RX or TX ring entry. Fill and completion entries are a bare __u64 address.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct xdp_desc
        {
            public ulong addr;
            public uint len;
            public uint options;
        }

        [SupportedOSPlatform("linux")]
        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial int bind(SafeFdHandle fd, sockaddr_xdp* addr, uint addrlen);

        /// <summary>off_t is 64-bit on LP64: the ring offsets above 2^31 fit.</summary>
        [SupportedOSPlatform("linux")]
        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial IntPtr mmap(IntPtr addr, nuint length, int prot, int flags, int fd, long offset);

        /// <summary>Hot path: the TX kick, sendto(fd, NULL, 0, MSG_DONTWAIT, NULL, 0).</summary>
        [SupportedOSPlatform("linux")]
        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial nint sendto(int fd, void* buf, nuint len, int flags, void* addr, uint addrlen);

        // ---- What a device's XDP can do: the driver's name (SIOCETHTOOL, ETHTOOL_GDRVINFO) and its
        // xdp-features (the "netdev" generic netlink family, Linux 6.3+: Documentation/netlink/specs/netdev.yaml).

        internal const int AF_INET = 2;
        internal const int AF_NETLINK = 16;
        internal const int SOCK_DGRAM = 2;
        internal const int NETLINK_GENERIC = 16;
        internal const int SIOCETHTOOL = 0x8946;
        internal const uint ETHTOOL_GDRVINFO = 0x00000003;
        internal const int IFNAMSIZ = 16;

        // <linux/netlink.h>, <linux/genetlink.h>
        internal const ushort NLM_F_REQUEST = 1;
        internal const ushort NLMSG_ERROR = 2;
        internal const ushort NLMSG_DONE = 3;
        internal const ushort GENL_ID_CTRL = 0x10;
        internal const byte CTRL_CMD_GETFAMILY = 3;
        internal const ushort CTRL_ATTR_FAMILY_ID = 1;
        internal const ushort CTRL_ATTR_FAMILY_NAME = 2;

        // netdev family
        internal const byte NETDEV_CMD_DEV_GET = 1;
        internal const ushort NETDEV_A_DEV_IFINDEX = 1;
        internal const ushort NETDEV_A_DEV_XDP_FEATURES = 3;

        // rtnetlink (<linux/rtnetlink.h>, <linux/if_link.h>): a veth's peer and whether it runs native XDP
        internal const int NETLINK_ROUTE = 0;
        internal const ushort RTM_NEWLINK = 16;
        internal const ushort RTM_GETLINK = 18;
        internal const ushort IFLA_LINK = 5;
        internal const ushort IFLA_LINK_NETNSID = 37;
        internal const ushort IFLA_XDP = 43;
        internal const ushort IFLA_TARGET_NETNSID = 46;
        internal const ushort IFLA_XDP_ATTACHED = 2;
        internal const ushort IFLA_XDP_DRV_PROG_ID = 5;

        // enum netdev_xdp_act
        internal const ulong NETDEV_XDP_ACT_BASIC = 1;       // XDP_ABORTED, XDP_DROP, XDP_PASS, XDP_TX
        internal const ulong NETDEV_XDP_ACT_REDIRECT = 2;
        internal const ulong NETDEV_XDP_ACT_NDO_XMIT = 4;    // frames may be transmitted through it (on a veth: the peer has NAPI)

        /// <summary>struct ethtool_drvinfo (196 bytes).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct ethtool_drvinfo
        {
            public uint cmd;
            public fixed byte driver[32];
            public fixed byte version[32];
            public fixed byte fw_version[32];
            public fixed byte bus_info[32];
            public fixed byte erom_version[32];
            public fixed byte reserved2[12];
            public uint n_priv_flags;
            public uint n_stats;
            public uint testinfo_len;
            public uint eedump_len;
            public uint regdump_len;
        }

        /// <summary>struct ifreq with the ifr_data member (40 bytes on LP64).</summary>
        [StructLayout(LayoutKind.Sequential, Size = 40)]
        internal struct ifreq_data
        {
            public fixed byte ifr_name[IFNAMSIZ];
            public void* ifr_data;
        }

        /// <summary>int ioctl(int, unsigned long, ...): the one variadic pointer travels in a register on x86_64
        /// and arm64 Linux, so the fixed prototype is the same call.</summary>
        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial int ioctl(int fd, nuint request, void* argp);

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial nint send(int fd, void* buf, nuint len, int flags);

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial nint recv(int fd, void* buf, nuint len, int flags);
    }
}
