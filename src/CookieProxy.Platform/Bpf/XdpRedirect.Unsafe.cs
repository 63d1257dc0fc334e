using System.Net;
using System.Runtime.InteropServices;
using System.Runtime.Versioning;
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
            SafeFdHandle program = BpfObjects.LoadProgram(interfaceName, code, "cp_xdp_redirect");
            return new XdpRedirect(interfaceName, map, program, code.Length);
        }
        catch
        {
            map.Dispose();
            throw;
        }
    }

    private static SafeFdHandle CreateXskMap(string interfaceName, int queues) =>
        BpfObjects.CreateMap(interfaceName, BPF_MAP_TYPE_XSKMAP, sizeof(uint), sizeof(uint), (uint)queues, "cp_xsks", "XSKMAP");

    public void InsertSocket(int queue, int xskFd)
    {
        uint value = (uint)xskFd;
        BpfObjects.UpdateMap(InterfaceName, _map, (uint)queue, MemoryMarshal.AsBytes(new ReadOnlySpan<uint>(in value)), $"XSKMAP[{queue}]");
    }

    public void Attach(int ifindex, XdpAttachMode mode)
    {
        if (_link is not null)
        {
            throw new InvalidOperationException("already attached");
        }
        _link = BpfObjects.AttachXdp(InterfaceName, _program, ifindex, mode);
    }

    public int TestRun(ReadOnlySpan<byte> frame) => BpfObjects.TestRun(InterfaceName, _program, frame, new byte[frame.Length + 512], out _);

    public void Dispose()
    {
        // The link first: from then on the kernel stack sees the protected port's frames again.
        _link?.Dispose();
        _link = null;
        _program.Dispose();
        _map.Dispose();
    }
}
