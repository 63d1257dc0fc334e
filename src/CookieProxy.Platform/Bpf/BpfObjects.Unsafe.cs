using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using System.Text;
using static CookieProxy.Platform.Interop.Bpf;

namespace CookieProxy.Platform;

/// <summary>
/// The bpf(2) calls both XDP users make (the AF_XDP redirect program and the SYN responder): maps with u32
/// keys, program load with the verifier's log on rejection, XDP attach through a BPF link, and
/// BPF_PROG_TEST_RUN for the tests. Failures become <see cref="PacketDeviceException"/>s that name the call
/// and say what usually causes the errno.
/// </summary>
[SupportedOSPlatform("linux")]
internal static unsafe class BpfObjects
{
    private const int VerifierLogBytes = 1 << 20;

    /// <summary>bpf(BPF_MAP_CREATE) with a u32 key; <paramref name="kind"/> names it in errors.</summary>
    internal static SafeFdHandle CreateMap(string interfaceName, uint type, int keySize, int valueSize, uint entries, string name, string kind)
    {
        var attr = new bpf_map_create_attr
        {
            map_type = type,
            key_size = (uint)keySize,
            value_size = (uint)valueSize,
            max_entries = entries,
        };
        WriteName(attr.map_name, name);
        int fd = bpf(BPF_MAP_CREATE, &attr, (uint)sizeof(bpf_map_create_attr));
        if (fd < 0)
        {
            throw Failure(interfaceName, $"bpf(BPF_MAP_CREATE, {kind})", Marshal.GetLastPInvokeError());
        }
        return new SafeFdHandle(fd);
    }

    /// <summary>bpf(BPF_MAP_UPDATE_ELEM) of entry <paramref name="key"/> (u32 keys).</summary>
    internal static void UpdateMap(string interfaceName, SafeFdHandle map, uint key, ReadOnlySpan<byte> value, string what)
    {
        fixed (byte* v = value)
        {
            var attr = new bpf_map_elem_attr { map_fd = (uint)map.Fd, key = (ulong)&key, value = (ulong)v, flags = BPF_ANY };
            if (bpf(BPF_MAP_UPDATE_ELEM, &attr, (uint)sizeof(bpf_map_elem_attr)) != 0)
            {
                throw Failure(interfaceName, $"bpf(BPF_MAP_UPDATE_ELEM, {what})", Marshal.GetLastPInvokeError());
            }
        }
    }

    /// <summary>bpf(BPF_MAP_LOOKUP_ELEM) of entry <paramref name="key"/>; a per-CPU map fills one value per possible CPU.</summary>
    internal static void LookupMap(string interfaceName, SafeFdHandle map, uint key, Span<byte> value, string what)
    {
        fixed (byte* v = value)
        {
            var attr = new bpf_map_elem_attr { map_fd = (uint)map.Fd, key = (ulong)&key, value = (ulong)v };
            if (bpf(BPF_MAP_LOOKUP_ELEM, &attr, (uint)sizeof(bpf_map_elem_attr)) != 0)
            {
                throw Failure(interfaceName, $"bpf(BPF_MAP_LOOKUP_ELEM, {what})", Marshal.GetLastPInvokeError());
            }
        }
    }

    internal static SafeFdHandle LoadProgram(string interfaceName, EbpfInstruction[] code, string name)
    {
        byte[] bytes = EbpfAssembler.ToBytes(code);
        byte[] license = "GPL\0"u8.ToArray();   // none of our helpers is GPL-only; any license would do
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
            WriteName(attr.prog_name, name);
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
                $"xdp: the kernel verifier rejected the XDP program {name} ({code.Length} instructions) for '{interfaceName}': "
                + $"{Marshal.GetPInvokeErrorMessage(errno)} (errno {errno}); verifier log:\n{Tail(text, 4000)}", errno);
        }
    }

    /// <summary>Puts the AF_XDP socket <paramref name="xskFd"/> into slot <paramref name="queue"/> (the rx queue it is bound to).</summary>
    /// <summary>bpf(BPF_LINK_CREATE, BPF_XDP): the link fd belongs to the process, so a crash detaches the program.</summary>
    internal static SafeFdHandle AttachXdp(string interfaceName, SafeFdHandle program, int ifindex, XdpAttachMode mode)
    {
        var attr = new bpf_link_create_attr
        {
            prog_fd = (uint)program.Fd,
            target_ifindex = (uint)ifindex,
            attach_type = BPF_XDP,
            flags = mode == XdpAttachMode.Native ? XDP_FLAGS_DRV_MODE : XDP_FLAGS_SKB_MODE,
        };
        int fd = bpf(BPF_LINK_CREATE, &attr, (uint)sizeof(bpf_link_create_attr));
        if (fd < 0)
        {
            int errno = Marshal.GetLastPInvokeError();
            throw Failure(interfaceName, $"bpf(BPF_LINK_CREATE, BPF_XDP, {(mode == XdpAttachMode.Native ? "XDP_FLAGS_DRV_MODE" : "XDP_FLAGS_SKB_MODE")})", errno);
        }
        return new SafeFdHandle(fd);
    }

    /// <summary>bpf(BPF_PROG_TEST_RUN) once on <paramref name="frame"/>: the XDP action, and the frame as the
    /// program left it in <paramref name="output"/> (<paramref name="outputLength"/> bytes).</summary>
    internal static int TestRun(string interfaceName, SafeFdHandle program, ReadOnlySpan<byte> frame, Span<byte> output, out int outputLength)
    {
        fixed (byte* input = frame)
        fixed (byte* outputBuffer = output)
        {
            var attr = new bpf_test_run_attr
            {
                prog_fd = (uint)program.Fd,
                data_size_in = (uint)frame.Length,
                data_in = (ulong)input,
                data_size_out = (uint)output.Length,
                data_out = (ulong)outputBuffer,
                repeat = 1,
            };
            if (bpf(BPF_PROG_TEST_RUN, &attr, (uint)sizeof(bpf_test_run_attr)) != 0)
            {
                throw Failure(interfaceName, "bpf(BPF_PROG_TEST_RUN)", Marshal.GetLastPInvokeError());
            }
            outputLength = (int)attr.data_size_out;
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
            Interop.Libc.EPERM or Interop.Libc.EACCES => " (XDP needs root: CAP_BPF or CAP_SYS_ADMIN for the program, CAP_NET_ADMIN to attach it, CAP_NET_RAW for an AF_XDP socket)",
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
        return new PacketDeviceException(interfaceName, $"xdp: {operation} on '{interfaceName}' failed: {reason} (errno {errno}){hint}", errno);
    }
}
