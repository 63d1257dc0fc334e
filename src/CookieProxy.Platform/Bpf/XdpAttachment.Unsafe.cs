using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using System.Text;
using static CookieProxy.Platform.Interop.Libbpf;

namespace CookieProxy.Platform;

/// <summary>Where an XDP program runs (XDP_FLAGS_*_MODE, include/uapi/linux/if_link.h).</summary>
public enum XdpAttachMode
{
    /// <summary>
    /// Generic XDP (XDP_FLAGS_SKB_MODE): runs in __netif_receive_skb_core on the CPU that processes the
    /// receive, after RPS. Works on every device; costs an skb per frame (and on a veth, whose skbs lack
    /// the 256 bytes of headroom XDP wants, a reallocation per frame).
    /// </summary>
    Generic,

    /// <summary>
    /// Driver XDP (XDP_FLAGS_DRV_MODE), in the driver's receive path before any skb exists. On a veth this
    /// runs in the receiving veth's NAPI poll, which the PEER's transmit schedules on the SENDER's CPU
    /// (veth_xmit → napi_schedule), and an XDP_TX there reaches the peer only if the peer has NAPI too (GRO
    /// on, or an XDP program of its own): see <see cref="XdpDeviceInfo"/>.
    /// </summary>
    Native,
}

/// <summary>What is attached to an interface's XDP hook (bpf_xdp_query), if anything.</summary>
/// <param name="ProgramId">The kernel's program id; 0 = nothing attached.</param>
/// <param name="Mode">Generic or native; null when nothing (or a hardware-offloaded program) is attached.</param>
/// <param name="Name">The program's name (BPF_OBJ_NAME_LEN - 1 characters at most), "" when unknown.</param>
public readonly record struct XdpHookState(uint ProgramId, XdpAttachMode? Mode, string Name)
{
    public bool IsEmpty => ProgramId == 0;
}

/// <summary>
/// Attaching our XDP programs: always through a BPF link (BPF_LINK_CREATE, Linux 5.9+), which belongs to
/// this process, so the program is detached when the link fd closes, on every exit path including a crash
/// or SIGKILL. A program of ours that a netlink attachment left behind (an older build, or `ip link set
/// xdp`) is recognised by its name and removed before we attach (<see cref="RemoveStale"/>).
/// </summary>
[SupportedOSPlatform("linux")]
internal static unsafe class XdpAttachment
{
    /// <summary>Attaches <paramref name="programFd"/> to <paramref name="ifindex"/> in <paramref name="mode"/>; the
    /// returned link fd detaches it when disposed.</summary>
    public static SafeFdHandle Attach(string interfaceName, int ifindex, int programFd, XdpAttachMode mode)
    {
        var opts = new bpf_link_create_opts
        {
            sz = (nuint)sizeof(bpf_link_create_opts),
            flags = mode == XdpAttachMode.Native ? Interop.Bpf.XDP_FLAGS_DRV_MODE : Interop.Bpf.XDP_FLAGS_SKB_MODE,
        };
        int fd = bpf_link_create(programFd, ifindex, Interop.Bpf.BPF_XDP, &opts);
        if (fd < 0)
        {
            int errno = -fd;
            string hint = errno switch
            {
                Interop.Libc.EPERM or Interop.Libc.EACCES => " (attaching XDP needs CAP_NET_ADMIN)",
                Interop.Bpf.EBUSY or Interop.Bpf.EEXIST => Occupied(interfaceName, ifindex),
                Interop.PacketSocket.EINVAL or Interop.Bpf.EOPNOTSUPP => mode == XdpAttachMode.Native
                    ? $" (the driver of '{interfaceName}' has no native XDP)"
                    : " (kernel older than 5.9 has no BPF links for XDP)",
                Interop.PacketSocket.ENODEV or Interop.PacketSocket.ENXIO => " (the interface disappeared or is not up)",
                _ => "",
            };
            string flag = mode == XdpAttachMode.Native ? "XDP_FLAGS_DRV_MODE" : "XDP_FLAGS_SKB_MODE";
            throw new BpfException($"bpf_link_create(BPF_XDP, {flag}) on '{interfaceName}' failed: {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno}){hint}", errno);
        }
        return new SafeFdHandle(fd);
    }

    /// <summary>bpf_xdp_query: the program on the hook, by id, mode and name.</summary>
    public static XdpHookState Query(int ifindex)
    {
        var opts = new bpf_xdp_query_opts { sz = (nuint)sizeof(bpf_xdp_query_opts) };
        int rc = bpf_xdp_query(ifindex, 0, &opts);
        if (rc != 0 || opts.attach_mode == XDP_ATTACHED_NONE)
        {
            return default;
        }
        (uint id, XdpAttachMode? mode) = opts.attach_mode switch
        {
            XDP_ATTACHED_DRV => (opts.drv_prog_id, XdpAttachMode.Native),
            XDP_ATTACHED_SKB => (opts.skb_prog_id, XdpAttachMode.Generic),
            XDP_ATTACHED_HW => (opts.hw_prog_id, (XdpAttachMode?)null),
            _ => (opts.prog_id != 0 ? opts.prog_id : opts.drv_prog_id != 0 ? opts.drv_prog_id : opts.skb_prog_id,
                  opts.drv_prog_id != 0 ? XdpAttachMode.Native : XdpAttachMode.Generic),
        };
        return new XdpHookState(id, mode, ProgramName(id));
    }

    /// <summary>The name of program <paramref name="id"/> (bpf_prog_get_fd_by_id + bpf_obj_get_info_by_fd).</summary>
    public static string ProgramName(uint id)
    {
        if (id == 0)
        {
            return "";
        }
        int fd = bpf_prog_get_fd_by_id(id);
        if (fd < 0)
        {
            return "";
        }
        using var handle = new SafeFdHandle(fd);
        bpf_prog_info info = default;
        uint length = (uint)sizeof(bpf_prog_info);
        if (bpf_obj_get_info_by_fd(fd, &info, &length) != 0)
        {
            return "";
        }
        var name = new ReadOnlySpan<byte>(info.name, Interop.Bpf.BPF_OBJ_NAME_LEN);
        int end = name.IndexOf((byte)0);
        return Encoding.ASCII.GetString(end < 0 ? name : name[..end]);
    }

    /// <summary>
    /// If a program named <paramref name="name"/> sits on the hook through a netlink attachment (no link:
    /// nobody's process holds it, so a crash or an older build left it), detaches it and says so in
    /// <paramref name="removed"/>. A link-held program belongs to a running process and is left alone
    /// (the kernel refuses a netlink detach of it with EBUSY).
    /// </summary>
    public static bool RemoveStale(int ifindex, string name, out string? removed)
    {
        removed = null;
        XdpHookState state = Query(ifindex);
        if (state.IsEmpty || state.Mode is null || !string.Equals(state.Name, name, StringComparison.Ordinal))
        {
            return false;
        }
        uint flags = state.Mode == XdpAttachMode.Native ? Interop.Bpf.XDP_FLAGS_DRV_MODE : Interop.Bpf.XDP_FLAGS_SKB_MODE;
        int rc = bpf_xdp_detach(ifindex, flags, null);
        if (rc != 0)
        {
            return false;
        }
        removed = $"{name} (id {state.ProgramId}, {state.Mode.ToString()!.ToLowerInvariant()})";
        return true;
    }

    private static string Occupied(string interfaceName, int ifindex)
    {
        XdpHookState state = Query(ifindex);
        if (state.IsEmpty)
        {
            return $" (another XDP program is attached to '{interfaceName}'; see `ip link show {interfaceName}`)";
        }
        string who = state.Name.StartsWith("cp_xdp", StringComparison.Ordinal) ? ", probably another cookieproxy" : "";
        return $" ('{interfaceName}' already has XDP program {state.Name} (id {state.ProgramId}{who}); see `ip link show {interfaceName}`)";
    }
}
