// Struct and constant names keep their C spelling (STYLE.md lesson 10).
#pragma warning disable CS8981 // lower-case type names

using System.Runtime.InteropServices;
using System.Runtime.Versioning;

namespace CookieProxy.Platform;

/// <summary>
/// The bpf(2) system call (include/uapi/linux/bpf.h): only the commands the AF_XDP backend needs, each with
/// its own member struct of <c>union bpf_attr</c>. The kernel accepts a shorter attr than its own union as
/// long as every byte it knows and we do not send is zero (bpf_check_uarg_tail_zero), so each struct stops
/// after the last field we use.
/// </summary>
internal static partial class Interop
{
    internal static unsafe partial class Bpf
    {
        static Bpf() => Libraries.EnsureResolver();

        /// <summary>__NR_bpf on x86_64 (arch/x86/entry/syscalls/syscall_64.tbl); 280 on arm64.</summary>
        internal static int SYS_bpf => RuntimeInformation.ProcessArchitecture switch
        {
            Architecture.X64 => 321,
            Architecture.Arm64 => 280,
            _ => -1,
        };

        // enum bpf_cmd
        internal const int BPF_MAP_CREATE = 0;
        internal const int BPF_MAP_LOOKUP_ELEM = 1;
        internal const int BPF_MAP_UPDATE_ELEM = 2;
        internal const int BPF_PROG_LOAD = 5;
        internal const int BPF_PROG_TEST_RUN = 10;
        internal const int BPF_LINK_CREATE = 28;

        // enum bpf_map_type
        internal const uint BPF_MAP_TYPE_ARRAY = 2;
        internal const uint BPF_MAP_TYPE_PERCPU_ARRAY = 6;
        internal const uint BPF_MAP_TYPE_XSKMAP = 17;

        // enum bpf_prog_type
        internal const uint BPF_PROG_TYPE_XDP = 6;

        // enum bpf_attach_type
        internal const uint BPF_XDP = 37;

        // BPF_MAP_UPDATE_ELEM flags
        internal const ulong BPF_ANY = 0;

        // include/uapi/linux/if_link.h
        internal const uint XDP_FLAGS_SKB_MODE = 1u << 1;
        internal const uint XDP_FLAGS_DRV_MODE = 1u << 2;

        // enum xdp_action
        internal const int XDP_ABORTED = 0;
        internal const int XDP_DROP = 1;
        internal const int XDP_PASS = 2;
        internal const int XDP_TX = 3;
        internal const int XDP_REDIRECT = 4;

        internal const int BPF_OBJ_NAME_LEN = 16;

        // <errno.h> (Linux values) the bpf paths report
        internal const int ENOENT = 2;
        internal const int E2BIG = 7;
        internal const int EBADF = 9;
        internal const int ENOMEM = 12;
        internal const int EBUSY = 16;
        internal const int EEXIST = 17;
        internal const int ENOSPC = 28;
        internal const int ENOSYS = 38;
        internal const int EOPNOTSUPP = 95;

        /// <summary>union bpf_attr, BPF_MAP_CREATE member (up to map_name: 44 bytes).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct bpf_map_create_attr
        {
            public uint map_type;
            public uint key_size;
            public uint value_size;
            public uint max_entries;
            public uint map_flags;
            public uint inner_map_fd;
            public uint numa_node;
            public fixed byte map_name[BPF_OBJ_NAME_LEN];
        }

        /// <summary>union bpf_attr, BPF_MAP_*_ELEM member (32 bytes).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct bpf_map_elem_attr
        {
            public uint map_fd;
            private uint _pad;
            public ulong key;     // __aligned_u64 pointer
            public ulong value;   // __aligned_u64 pointer
            public ulong flags;
        }

        /// <summary>union bpf_attr, BPF_PROG_LOAD member (up to expected_attach_type: 72 bytes).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct bpf_prog_load_attr
        {
            public uint prog_type;
            public uint insn_cnt;
            public ulong insns;       // const struct bpf_insn *
            public ulong license;     // const char *
            public uint log_level;
            public uint log_size;
            public ulong log_buf;     // char *
            public uint kern_version;
            public uint prog_flags;
            public fixed byte prog_name[BPF_OBJ_NAME_LEN];
            public uint prog_ifindex;
            public uint expected_attach_type;
        }

        /// <summary>union bpf_attr, BPF_LINK_CREATE member (the four leading words: 16 bytes).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct bpf_link_create_attr
        {
            public uint prog_fd;
            public uint target_ifindex;   // union with target_fd
            public uint attach_type;
            public uint flags;            // XDP_FLAGS_* for BPF_XDP
        }

        /// <summary>union bpf_attr, BPF_PROG_TEST_RUN member (up to ctx_out: 64 bytes).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct bpf_test_run_attr
        {
            public uint prog_fd;
            public uint retval;
            public uint data_size_in;
            public uint data_size_out;
            public ulong data_in;
            public ulong data_out;
            public uint repeat;
            public uint duration;
            public uint ctx_size_in;
            public uint ctx_size_out;
            public ulong ctx_in;
            public ulong ctx_out;
        }

        /// <summary>struct xdp_md (24 bytes): the XDP program's context, as BPF_PROG_TEST_RUN takes it.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct xdp_md
        {
            public uint data;
            public uint data_end;
            public uint data_meta;
            public uint ingress_ifindex;
            public uint rx_queue_index;
            public uint egress_ifindex;
        }

        /// <summary>long syscall(long number, ...): the variadic arguments all travel in integer registers on
        /// x86_64 and arm64 Linux, so a fixed three-argument prototype calls it correctly for bpf(cmd, attr, size).</summary>
        [SupportedOSPlatform("linux")]
        [LibraryImport(Libraries.Libc, EntryPoint = "syscall", SetLastError = true)]
        private static partial nint syscall3(nint number, nint cmd, void* attr, nint size);

        /// <summary>bpf(2): a new fd, 0, or -1 with errno.</summary>
        [SupportedOSPlatform("linux")]
        internal static int bpf(int cmd, void* attr, uint size)
        {
            int number = SYS_bpf;
            if (number < 0)
            {
                Marshal.SetLastPInvokeError(ENOSYS);
                return -1;
            }
            return (int)syscall3(number, cmd, attr, (nint)size);
        }
    }
}
