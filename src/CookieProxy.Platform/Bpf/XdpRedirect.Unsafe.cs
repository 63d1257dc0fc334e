using System.Net;
using System.Runtime.Versioning;
using static CookieProxy.Platform.XdpMaps;

namespace CookieProxy.Platform;

/// <summary>
/// The kernel side of the AF_XDP backend: native/xdp_redirect.c (cp_xdp_redirect) loaded with libbpf, its
/// XSKMAP (one slot per rx queue up to the bound one) and endpoint map filled, and a BPF link attaching it
/// to the interface (Linux 5.9+). The link belongs to this process: closing its fd, or the process dying,
/// detaches the program, so a crash leaves nothing attached.
/// </summary>
[SupportedOSPlatform("linux")]
internal sealed unsafe class XdpRedirect : IDisposable
{
    public const string ProgramName = "cp_xdp_redirect";

    private readonly BpfObject _object;
    private readonly BpfObjectProgram _program;
    private readonly BpfObjectMap _sockets;
    private SafeFdHandle? _link;

    private XdpRedirect(string interfaceName, BpfObject obj)
    {
        InterfaceName = interfaceName;
        _object = obj;
        _program = obj.Program(ProgramName);
        _sockets = obj.Map("cp_xsks");
    }

    public string InterfaceName { get; }

    public bool IsAttached => _link is not null;

    /// <summary>Loads the program with an XSKMAP of <paramref name="queues"/> slots and the endpoint map for
    /// <paramref name="endpoints"/>.</summary>
    public static XdpRedirect Load(string interfaceName, IEnumerable<IPEndPoint> endpoints, int queues = 1)
    {
        ArgumentNullException.ThrowIfNull(endpoints);
        IPEndPoint[] list = endpoints.ToArray();
        if (list.Length == 0)
        {
            throw new ArgumentException("At least one protected endpoint is required.", nameof(endpoints));
        }
        cp_endpoint_key[] keys = list.Select(EndpointKey).ToArray();
        return BpfObject.OpenEmbedded(interfaceName, BpfObjectResources.Redirect, obj =>
        {
            obj.Program(ProgramName);
            obj.Map("cp_xsks").SetMaxEntries((uint)queues);
            BpfObjectMap map = obj.Map("cp_endpoints");
            map.SetMaxEntries((uint)keys.Length);
            obj.Load();
            map.RequireLayout(sizeof(cp_endpoint_key), sizeof(uint));
            foreach (cp_endpoint_key key in keys)
            {
                uint one = 1;
                map.Update(key, one);
            }
            return new XdpRedirect(interfaceName, obj);
        });
    }

    public void InsertSocket(int queue, int xskFd)
    {
        try
        {
            _sockets.Update((uint)queue, (uint)xskFd);
        }
        catch (BpfException e)
        {
            string hint = e.Errno == Interop.PacketSocket.EINVAL ? " (kernel without AF_XDP: CONFIG_XDP_SOCKETS)" : "";
            throw new PacketDeviceException(InterfaceName, $"xdp: XSKMAP[{queue}]: {e.Message}{hint}", e.Errno, e);
        }
    }

    public void Attach(int ifindex, XdpAttachMode mode)
    {
        if (_link is not null)
        {
            throw new InvalidOperationException("already attached");
        }
        try
        {
            XdpAttachment.RemoveStale(ifindex, ProgramName, out _);
            _link = XdpAttachment.Attach(InterfaceName, ifindex, _program.Fd, mode);
        }
        catch (BpfException e)
        {
            throw new PacketDeviceException(InterfaceName, $"xdp: {e.Message}", e.Errno, e);
        }
    }

    public int TestRun(ReadOnlySpan<byte> frame)
    {
        try
        {
            return _program.TestRun(frame, new byte[frame.Length + 512], out _);
        }
        catch (BpfException e)
        {
            throw new PacketDeviceException(InterfaceName, $"xdp: {e.Message}", e.Errno, e);
        }
    }

    public void Dispose()
    {
        // The link first: from then on the kernel stack sees the protected port's frames again.
        _link?.Dispose();
        _link = null;
        _object.Dispose();
    }
}
