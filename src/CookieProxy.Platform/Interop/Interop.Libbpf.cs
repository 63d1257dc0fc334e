// Struct and function names keep their C spelling (STYLE.md lesson 10).
#pragma warning disable CS8981 // lower-case type names
#pragma warning disable SA1300, IDE1006 // C names

using System.Runtime.InteropServices;

namespace CookieProxy.Platform;

/// <summary>
/// libbpf (libbpf.so.1, Debian's libbpf1; include/bpf/libbpf.h and bpf.h): the calls that open, load and
/// attach our XDP objects and reach their maps. Every signature is blittable; libbpf 1.x returns a negative
/// errno (and sets errno) on failure, or NULL with errno for the pointer-returning calls.
/// <para>The <c>*_opts</c> structs start with their own size (<c>sz</c>): libbpf treats the fields past
/// <c>sz</c> as zero, so each struct stops after the last field we use and works with newer libbpf too.</para>
/// </summary>
internal static partial class Interop
{
    internal static unsafe partial class Libbpf
    {
        static Libbpf() => Libraries.EnsureResolver();

        // enum libbpf_print_level
        internal const int LIBBPF_WARN = 0;
        internal const int LIBBPF_INFO = 1;
        internal const int LIBBPF_DEBUG = 2;

        /// <summary>Verifier log levels (kernel BPF_LOG_*): 1 = the instructions of a failure, 4 = statistics.</summary>
        internal const uint BPF_LOG_LEVEL1 = 1;
        internal const uint BPF_LOG_STATS = 4;

        /// <summary>struct bpf_object_open_opts, up to object_name.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct bpf_object_open_opts
        {
            public nuint sz;
            public byte* object_name;
        }

        /// <summary>struct bpf_link_create_opts, up to target_btf_id (32 bytes).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct bpf_link_create_opts
        {
            public nuint sz;
            public uint flags;          // XDP_FLAGS_* for BPF_XDP
            public void* iter_info;
            public uint iter_info_len;
            public uint target_btf_id;
        }

        /// <summary>struct bpf_xdp_attach_opts (16 bytes).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct bpf_xdp_attach_opts
        {
            public nuint sz;
            public int old_prog_fd;
        }

        /// <summary>struct bpf_xdp_query_opts, up to attach_mode (32 bytes with the trailing padding).</summary>
        [StructLayout(LayoutKind.Sequential, Size = 32)]
        internal struct bpf_xdp_query_opts
        {
            public nuint sz;
            public uint prog_id;
            public uint drv_prog_id;
            public uint hw_prog_id;
            public uint skb_prog_id;
            public byte attach_mode;    // XDP_ATTACHED_*
        }

        /// <summary>struct bpf_test_run_opts (80 bytes).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct bpf_test_run_opts
        {
            public nuint sz;
            public void* data_in;
            public void* data_out;
            public uint data_size_in;
            public uint data_size_out;
            public void* ctx_in;
            public void* ctx_out;
            public uint ctx_size_in;
            public uint ctx_size_out;
            public uint retval;
            public int repeat;
            public uint duration;
            public uint flags;
            public uint cpu;
            public uint batch_size;
        }

        /// <summary>struct bpf_prog_info (include/uapi/linux/bpf.h), up to name: the kernel copies no more than we ask.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct bpf_prog_info
        {
            public uint type;
            public uint id;
            public fixed byte tag[8];
            public uint jited_prog_len;
            public uint xlated_prog_len;
            public ulong jited_prog_insns;
            public ulong xlated_prog_insns;
            public ulong load_time;
            public uint created_by_uid;
            public uint nr_map_ids;
            public ulong map_ids;
            public fixed byte name[Bpf.BPF_OBJ_NAME_LEN];
        }

        // XDP_ATTACHED_* (include/uapi/linux/if_link.h)
        internal const byte XDP_ATTACHED_NONE = 0;
        internal const byte XDP_ATTACHED_DRV = 1;
        internal const byte XDP_ATTACHED_SKB = 2;
        internal const byte XDP_ATTACHED_HW = 3;
        internal const byte XDP_ATTACHED_MULTI = 4;

        /// <summary>libbpf_print_fn_t: int (*)(enum libbpf_print_level, const char *fmt, va_list). A va_list is
        /// a pointer on x86_64 and, being a 32-byte struct, passed by reference on arm64: one pointer either way.</summary>
        [LibraryImport(Libraries.Libbpf)]
        internal static partial nint libbpf_set_print(delegate* unmanaged[Cdecl]<int, byte*, nint, int> fn);

        [LibraryImport(Libraries.Libbpf, SetLastError = true)]
        internal static partial nint bpf_object__open_mem(void* obj_buf, nuint obj_buf_sz, bpf_object_open_opts* opts);

        [LibraryImport(Libraries.Libbpf, SetLastError = true)]
        internal static partial int bpf_object__load(nint obj);

        [LibraryImport(Libraries.Libbpf)]
        internal static partial void bpf_object__close(nint obj);

        [LibraryImport(Libraries.Libbpf, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial nint bpf_object__find_program_by_name(nint obj, string name);

        [LibraryImport(Libraries.Libbpf, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial nint bpf_object__find_map_by_name(nint obj, string name);

        [LibraryImport(Libraries.Libbpf)]
        internal static partial int bpf_program__fd(nint prog);

        [LibraryImport(Libraries.Libbpf)]
        internal static partial int bpf_program__set_log_level(nint prog, uint log_level);

        [LibraryImport(Libraries.Libbpf)]
        internal static partial int bpf_program__set_log_buf(nint prog, byte* log_buf, nuint log_size);

        [LibraryImport(Libraries.Libbpf)]
        internal static partial int bpf_map__fd(nint map);

        [LibraryImport(Libraries.Libbpf)]
        internal static partial int bpf_map__set_max_entries(nint map, uint max_entries);

        [LibraryImport(Libraries.Libbpf)]
        internal static partial uint bpf_map__key_size(nint map);

        [LibraryImport(Libraries.Libbpf)]
        internal static partial uint bpf_map__value_size(nint map);

        [LibraryImport(Libraries.Libbpf, SetLastError = true)]
        internal static partial int bpf_map_update_elem(int fd, void* key, void* value, ulong flags);

        [LibraryImport(Libraries.Libbpf, SetLastError = true)]
        internal static partial int bpf_map_lookup_elem(int fd, void* key, void* value);

        [LibraryImport(Libraries.Libbpf, SetLastError = true)]
        internal static partial int bpf_map_delete_elem(int fd, void* key);

        /// <summary>BPF_LINK_CREATE: a link fd that detaches the program when it closes, also when the process dies.</summary>
        [LibraryImport(Libraries.Libbpf, SetLastError = true)]
        internal static partial int bpf_link_create(int prog_fd, int target_fd, uint attach_type, bpf_link_create_opts* opts);

        /// <summary>The netlink attachment (no link: it outlives the process). Only for replacing a stale program.</summary>
        [LibraryImport(Libraries.Libbpf, SetLastError = true)]
        internal static partial int bpf_xdp_attach(int ifindex, int prog_fd, uint flags, bpf_xdp_attach_opts* opts);

        [LibraryImport(Libraries.Libbpf, SetLastError = true)]
        internal static partial int bpf_xdp_detach(int ifindex, uint flags, bpf_xdp_attach_opts* opts);

        [LibraryImport(Libraries.Libbpf, SetLastError = true)]
        internal static partial int bpf_xdp_query(int ifindex, int flags, bpf_xdp_query_opts* opts);

        [LibraryImport(Libraries.Libbpf, SetLastError = true)]
        internal static partial int bpf_prog_test_run_opts(int prog_fd, bpf_test_run_opts* opts);

        [LibraryImport(Libraries.Libbpf, SetLastError = true)]
        internal static partial int bpf_prog_get_fd_by_id(uint id);

        [LibraryImport(Libraries.Libbpf, SetLastError = true)]
        internal static partial int bpf_obj_get_info_by_fd(int bpf_fd, void* info, uint* info_len);

        /// <summary>libc's vsnprintf, to format what libbpf hands the print callback.</summary>
        [LibraryImport(Libraries.Libc)]
        internal static partial int vsnprintf(byte* str, nuint size, byte* format, nint ap);
    }
}
