using System.Net;
using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using System.Text;
using static CookieProxy.Platform.Interop.Bpf;

namespace CookieProxy.Platform;

/// <summary>Where an XDP program runs (XDP_FLAGS_*_MODE, include/uapi/linux/if_link.h).</summary>
public enum XdpAttachMode
{
    /// <summary>
    /// Generic XDP (XDP_FLAGS_SKB_MODE): runs in __netif_receive_skb_core on the CPU that processes the
    /// receive, after RPS. Works on every device; costs an skb per frame. The default, and the honest one on
    /// veth: see <see cref="Native"/>.
    /// </summary>
    Generic,

    /// <summary>
    /// Driver XDP (XDP_FLAGS_DRV_MODE). On a veth this runs in the receiving veth's NAPI poll, which the
    /// PEER's transmit schedules on the SENDER's CPU (veth_xmit → veth_xdp_rx → napi_schedule): in a two-netns
    /// lab our per-frame work would be billed to the attacker's core and the CPU numbers would be fake.
    /// </summary>
    Native,
}

/// <summary>
/// The kernel side of the AF_XDP backend: an XSKMAP (one slot per rx queue), the <see cref="XdpProgram"/>
/// loaded with bpf(BPF_PROG_LOAD), and a BPF link attaching it to the interface (BPF_LINK_CREATE,
/// attach_type BPF_XDP, Linux 5.9+). The link belongs to this process: closing its fd, or the process
/// dying, detaches the program, so a crash leaves nothing attached.
/// </summary>
[SupportedOSPlatform("linux")]
internal sealed unsafe class XdpRedirect : IDisposable
{
    private const int VerifierLogBytes = 1 << 20;

    private readonly SafeFdHandle _map;
    private readonly SafeFdHandle _program;
    private SafeFdHandle? _link;

    private XdpRedirect(string interfaceName, SafeFdHandle map, SafeFdHandle program, int instructionCount)
    {
        InterfaceName = interfaceName;
        _map = map;
        _program = program;
        InstructionCount = instructionCount;
    }

    public string InterfaceName { get; }

    public int InstructionCount { get; }

    public int ProgramFd => _program.Fd;

    public bool IsAttached => _link is not null;

    /// <summary>Creates the XSKMAP with <paramref name="queues"/> slots and loads the program for <paramref name="endpoints"/>.</summary>
    public static XdpRedirect Load(string interfaceName, IEnumerable<IPEndPoint> endpoints, int queues = 1)
    {
        SafeFdHandle map = CreateXskMap(interfaceName, queues);
        try
        {
            EbpfInstruction[] code = XdpProgram.Build(endpoints, map.Fd);
            SafeFdHandle program = LoadProgram(interfaceName, code);
            return new XdpRedirect(interfaceName, map, program, code.Length);
        }
        catch
        {
            map.Dispose();
            throw;
        }
    }

    private static SafeFdHandle CreateXskMap(string interfaceName, int queues)
    {
        var attr = new bpf_map_create_attr
        {
            map_type = BPF_MAP_TYPE_XSKMAP,
            key_size = sizeof(uint),
            value_size = sizeof(uint),
            max_entries = (uint)queues,
        };
        WriteName(attr.map_name, "cp_xsks");
        int fd = bpf(BPF_MAP_CREATE, &attr, (uint)sizeof(bpf_map_create_attr));
        if (fd < 0)
        {
            throw Failure(interfaceName, "bpf(BPF_MAP_CREATE, XSKMAP)", Marshal.GetLastPInvokeError());
        }
        return new SafeFdHandle(fd);
    }

    internal static SafeFdHandle LoadProgram(string interfaceName, EbpfInstruction[] code)
    {
        byte[] bytes = EbpfAssembler.ToBytes(code);
        byte[] license = "GPL\0"u8.ToArray();   // bpf_redirect_map is not GPL-only; any license would do
        byte[] log = GC.AllocateUninitializedArray<byte>(VerifierLogBytes);
        fixed (byte* insns = bytes)
        fixed (byte* lic = license)
        fixed (byte* logBuffer = log)
        {
            var attr = new bpf_prog_load_attr
            {
                prog_type = BPF_PROG_TYPE_XDP,
                insn_cnt = (uint)code.Length,
                insns = (ulong)insns,
                license = (ulong)lic,
                expected_attach_type = BPF_XDP,
            };
            WriteName(attr.prog_name, "cp_xdp_redirect");
            int fd = bpf(BPF_PROG_LOAD, &attr, (uint)sizeof(bpf_prog_load_attr));
            if (fd >= 0)
            {
                return new SafeFdHandle(fd);
            }
            int errno = Marshal.GetLastPInvokeError();
            if (errno is not (Interop.Libc.EACCES or Interop.PacketSocket.EINVAL or ENOSPC or E2BIG))
            {
                throw Failure(interfaceName, "bpf(BPF_PROG_LOAD)", errno);
            }
            // Rejected: load again with the verifier's log on (log level 1) so the message says why.
            logBuffer[0] = 0;
            attr.log_level = 1;
            attr.log_size = VerifierLogBytes;
            attr.log_buf = (ulong)logBuffer;
            fd = bpf(BPF_PROG_LOAD, &attr, (uint)sizeof(bpf_prog_load_attr));
            if (fd >= 0)
            {
                return new SafeFdHandle(fd);
            }
            errno = Marshal.GetLastPInvokeError();
            string text = Marshal.PtrToStringUTF8((IntPtr)logBuffer) ?? "";
            throw new PacketDeviceException(interfaceName,
                $"af_xdp: the kernel verifier rejected the XDP program ({code.Length} instructions) for '{interfaceName}': "
                + $"{Marshal.GetPInvokeErrorMessage(errno)} (errno {errno}); verifier log:\n{Tail(text, 4000)}", errno);
        }
    }

    /// <summary>Puts the AF_XDP socket <paramref name="xskFd"/> into slot <paramref name="queue"/> (the rx queue it is bound to).</summary>
    public void InsertSocket(int queue, int xskFd)
    {
        uint key = (uint)queue;
        uint value = (uint)xskFd;
        var attr = new bpf_map_elem_attr { map_fd = (uint)_map.Fd, key = (ulong)&key, value = (ulong)&value, flags = BPF_ANY };
        if (bpf(BPF_MAP_UPDATE_ELEM, &attr, (uint)sizeof(bpf_map_elem_attr)) != 0)
        {
            throw Failure(InterfaceName, $"bpf(BPF_MAP_UPDATE_ELEM, XSKMAP[{queue}])", Marshal.GetLastPInvokeError());
        }
    }

    /// <summary>Attaches the program to <paramref name="ifindex"/> through a BPF link owned by this object.</summary>
    public void Attach(int ifindex, XdpAttachMode mode)
    {
        if (_link is not null)
        {
            throw new InvalidOperationException("already attached");
        }
        var attr = new bpf_link_create_attr
        {
            prog_fd = (uint)_program.Fd,
            target_ifindex = (uint)ifindex,
            attach_type = BPF_XDP,
            flags = mode == XdpAttachMode.Native ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE,
        };
        int fd = bpf(BPF_LINK_CREATE, &attr, (uint)sizeof(bpf_link_create_attr));
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw Failure(InterfaceName, $"bpf(BPF_LINK_CREATE, BPF_XDP, {(mode == XdpAttachMode.Native ? "XDP_FLAGS_DRV_MODE" : "XDP_FLAGS_SKB_MODE")})", errno);
        }
        _link = new SafeFdHandle(fd);
    }

    /// <summary>
    /// Runs the loaded program once over <paramref name="frame"/> (BPF_PROG_TEST_RUN, no interface involved)
    /// and returns its XDP action. For tests: checks the program's decisions frame by frame.
    /// </summary>
    public int TestRun(ReadOnlySpan<byte> frame)
    {
        byte[] output = new byte[frame.Length + 512];
        fixed (byte* input = frame)
        fixed (byte* outputBuffer = output)
        {
            var attr = new bpf_test_run_attr
            {
                prog_fd = (uint)_program.Fd,
                data_size_in = (uint)frame.Length,
                data_in = (ulong)input,
                data_size_out = (uint)output.Length,
                data_out = (ulong)outputBuffer,
                repeat = 1,
            };
            if (bpf(BPF_PROG_TEST_RUN, &attr, (uint)sizeof(bpf_test_run_attr)) != 0)
            {
                throw Failure(InterfaceName, "bpf(BPF_PROG_TEST_RUN)", Marshal.GetLastPInvokeError());
            }
            return (int)attr.retval;
        }
    }

    private static void WriteName(byte* destination, string name)
    {
        // BPF_OBJ_NAME_LEN including the terminating NUL; only [A-Za-z0-9_.] is accepted.
        int n = Encoding.ASCII.GetBytes(name.AsSpan(0, Math.Min(name.Length, BPF_OBJ_NAME_LEN - 1)), new Span<byte>(destination, BPF_OBJ_NAME_LEN));
        destination[n] = 0;
    }

    private static string Tail(string text, int max) => text.Length <= max ? text.TrimEnd() : "..." + text[^max..].TrimEnd();

    internal static PacketDeviceException Failure(string interfaceName, string operation, int errno)
    {
        string reason = Marshal.GetPInvokeErrorMessage(errno);
        string hint = errno switch
        {
            Interop.Libc.EPERM or Interop.Libc.EACCES => " (AF_XDP needs root: CAP_BPF or CAP_SYS_ADMIN for the program, CAP_NET_ADMIN to attach it, CAP_NET_RAW for the socket)",
            ENOSYS => " (kernel without the bpf system call: CONFIG_BPF_SYSCALL)",
            EBUSY or EEXIST when operation.Contains("LINK_CREATE", StringComparison.Ordinal)
                => $" (another XDP program is already attached to '{interfaceName}'; see `ip link show {interfaceName}`)",
            Interop.PacketSocket.EINVAL or EOPNOTSUPP when operation.Contains("LINK_CREATE", StringComparison.Ordinal)
                => " (kernel older than 5.9 has no BPF links for XDP, or the driver refuses this mode)",
            Interop.PacketSocket.EINVAL when operation.Contains("XSKMAP", StringComparison.Ordinal)
                => " (kernel without AF_XDP: CONFIG_XDP_SOCKETS)",
            Interop.PacketSocket.ENODEV or Interop.PacketSocket.ENXIO => " (the interface disappeared or is not up)",
            _ => "",
        };
        return new PacketDeviceException(interfaceName, $"af_xdp: {operation} on '{interfaceName}' failed: {reason} (errno {errno}){hint}", errno);
    }

    public void Dispose()
    {
        // The link first: from then on the kernel stack sees the protected port's frames again.
        _link?.Dispose();
        _link = null;
        _program.Dispose();
        _map.Dispose();
    }
}
