// Constant names keep their C spelling (STYLE.md lesson 10).

namespace CookieProxy.Platform;

/// <summary>
/// Constants of the BPF and XDP ABI (include/uapi/linux/bpf.h, if_link.h) that the host side uses with
/// libbpf (<see cref="Libbpf"/>): XDP actions, attach modes, map update flags, and the errno values the
/// BPF paths report.
/// </summary>
internal static partial class Interop
{
    internal static class Bpf
    {
        // enum bpf_attach_type
        internal const uint BPF_XDP = 37;

        // BPF_MAP_UPDATE_ELEM flags
        internal const ulong BPF_ANY = 0;
        internal const ulong BPF_NOEXIST = 1;

        // include/uapi/linux/if_link.h
        internal const uint XDP_FLAGS_UPDATE_IF_NOEXIST = 1u << 0;
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
    }
}
