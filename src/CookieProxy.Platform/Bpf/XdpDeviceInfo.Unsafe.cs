using System.Buffers.Binary;
using System.Runtime.Versioning;
using System.Text;
using static CookieProxy.Platform.Interop.Xdp;

namespace CookieProxy.Platform;

/// <summary>Which XDP mode to use on a device, and why (for the start-up line).</summary>
public readonly record struct XdpModeChoice(XdpAttachMode Mode, string Reason);

/// <summary>
/// What a device's XDP can do: its driver (ETHTOOL_GDRVINFO), its xdp-features (the netdev generic netlink
/// family, Linux 6.3+; null on older kernels) and, for a veth, whether its peer runs native XDP (rtnetlink,
/// also across network namespaces). Decides <c>--xdp-syn auto</c>.
/// </summary>
/// <remarks>
/// A veth is the one device where native XDP_TX can silently go nowhere: veth_xdp_xmit hands the frame to
/// the PEER's receive ring, which is served only while the peer runs NAPI. Measured on 6.18 with a UDP echo
/// through XDP_TX: with the peer's GRO off (the default) all frames are dropped (rx_queue_0_xdp_tx_errors);
/// with GRO on they are queued but not delivered until something else wakes the peer's NAPI (none of 5
/// within 3 s; in the lab a SYN+ACK arrived 2.3 s late); with a native XDP program on the peer (even one
/// that only returns XDP_PASS) every echo came back in 0.15 ms. The kernel's own NETDEV_XDP_ACT_NDO_XMIT on
/// our side is set in both the GRO and the XDP case, so it cannot tell them apart; the peer's attachment
/// (IFLA_XDP, asked for in the peer's namespace with IFLA_TARGET_NETNSID) can.
/// </remarks>
[SupportedOSPlatform("linux")]
public readonly record struct XdpDeviceInfo(string Driver, ulong? XdpFeatures, bool? PeerHasNativeXdp)
{
    public bool IsVeth => Driver == "veth";

    /// <summary>Native XDP_TX reaches the wire promptly (for a veth: the peer runs native XDP). Null when it
    /// cannot be told.</summary>
    public bool? NativeTxDelivers => IsVeth
        ? PeerHasNativeXdp
        : XdpFeatures is ulong f ? (f & NETDEV_XDP_ACT_BASIC) != 0 : null;

    public static XdpDeviceInfo Of(string interfaceName)
    {
        int ifindex = (int)Interop.PacketSocket.if_nametoindex(interfaceName);
        string driver = DriverName(interfaceName);
        return new XdpDeviceInfo(driver, ifindex == 0 ? null : QueryXdpFeatures(ifindex),
            ifindex == 0 || driver != "veth" ? null : QueryPeerNativeXdp(ifindex));
    }

    /// <summary><c>--xdp-syn auto</c>: native where the driver has it and XDP_TX frames really leave, else
    /// generic (which works on every device).</summary>
    public XdpModeChoice ChooseAuto()
    {
        string driver = Driver.Length == 0 ? "unknown driver" : $"driver {Driver}";
        if (XdpFeatures is ulong f && (f & NETDEV_XDP_ACT_BASIC) == 0)
        {
            return new XdpModeChoice(XdpAttachMode.Generic, $"{driver} has no native XDP");
        }
        if (IsVeth)
        {
            return PeerHasNativeXdp switch
            {
                true => new XdpModeChoice(XdpAttachMode.Native, "veth whose peer runs native XDP: native XDP_TX reaches it"),
                false => new XdpModeChoice(XdpAttachMode.Generic, "veth whose peer runs no native XDP: native XDP_TX would not reach it"),
                null => new XdpModeChoice(XdpAttachMode.Generic, "veth whose peer cannot be inspected: native XDP_TX might not reach it"),
            };
        }
        return new XdpModeChoice(XdpAttachMode.Native, XdpFeatures is null ? $"{driver}, native XDP tried first" : $"{driver} has native XDP");
    }

    /// <summary>The driver's name ("veth", "mlx5_core", ...; "" when the device has no ethtool driver info).</summary>
    public static unsafe string DriverName(string interfaceName)
    {
        int fd = Interop.PacketSocket.socket(AF_INET, SOCK_DGRAM | Interop.PacketSocket.SOCK_CLOEXEC, 0);
        if (fd < 0)
        {
            return "";
        }
        using var socket = new SafeFdHandle(fd);
        ethtool_drvinfo info = default;
        info.cmd = ETHTOOL_GDRVINFO;
        ifreq_data request = default;
        byte[] name = Encoding.ASCII.GetBytes(interfaceName);
        if (name.Length >= IFNAMSIZ)
        {
            return "";
        }
        name.CopyTo(new Span<byte>(request.ifr_name, IFNAMSIZ));
        request.ifr_data = &info;
        if (ioctl(fd, SIOCETHTOOL, &request) != 0)
        {
            return "";
        }
        var driver = new ReadOnlySpan<byte>(info.driver, 32);
        int end = driver.IndexOf((byte)0);
        return Encoding.ASCII.GetString(end < 0 ? driver : driver[..end]);
    }

    /// <summary>NETDEV_A_DEV_XDP_FEATURES of <paramref name="ifindex"/>; null when the kernel has no netdev family.</summary>
    public static unsafe ulong? QueryXdpFeatures(int ifindex)
    {
        int fd = Interop.PacketSocket.socket(AF_NETLINK, Interop.PacketSocket.SOCK_RAW | Interop.PacketSocket.SOCK_CLOEXEC, NETLINK_GENERIC);
        if (fd < 0)
        {
            return null;
        }
        using var socket = new SafeFdHandle(fd);
        Span<byte> buffer = stackalloc byte[8192];

        // CTRL_CMD_GETFAMILY "netdev" -> its family id
        Span<byte> name = stackalloc byte[8];
        "netdev\0"u8.CopyTo(name);
        int length = Request(buffer, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, CTRL_ATTR_FAMILY_NAME, name[..7]);
        if (!Exchange(fd, buffer, length, out ReadOnlySpan<byte> reply) || !FindAttribute(reply, CTRL_ATTR_FAMILY_ID, out ReadOnlySpan<byte> id) || id.Length < 2)
        {
            return null;
        }
        ushort family = BinaryPrimitives.ReadUInt16LittleEndian(id);

        Span<byte> index = stackalloc byte[4];
        BinaryPrimitives.WriteInt32LittleEndian(index, ifindex);
        length = Request(buffer, family, NETDEV_CMD_DEV_GET, NETDEV_A_DEV_IFINDEX, index);
        if (!Exchange(fd, buffer, length, out reply) || !FindAttribute(reply, NETDEV_A_DEV_XDP_FEATURES, out ReadOnlySpan<byte> features) || features.Length < 8)
        {
            return null;
        }
        return BinaryPrimitives.ReadUInt64LittleEndian(features);
    }

    /// <summary>
    /// Does the veth <paramref name="ifindex"/>'s peer run a native XDP program? RTM_GETLINK gives the peer's
    /// ifindex (IFLA_LINK) and, when it lives in another namespace, that namespace's id (IFLA_LINK_NETNSID);
    /// a second RTM_GETLINK in that namespace (IFLA_TARGET_NETNSID, Linux 4.20+) reports its IFLA_XDP. Null
    /// when either answer is missing.
    /// </summary>
    public static unsafe bool? QueryPeerNativeXdp(int ifindex)
    {
        int fd = Interop.PacketSocket.socket(AF_NETLINK, Interop.PacketSocket.SOCK_RAW | Interop.PacketSocket.SOCK_CLOEXEC, NETLINK_ROUTE);
        if (fd < 0)
        {
            return null;
        }
        using var socket = new SafeFdHandle(fd);
        Span<byte> buffer = stackalloc byte[16384];
        int length = GetLinkRequest(buffer, ifindex, nsid: null);
        if (!ExchangeLink(fd, buffer, length, out ReadOnlySpan<byte> link) || !FindAttribute(link, IFLA_LINK, out ReadOnlySpan<byte> peer) || peer.Length < 4)
        {
            return null;
        }
        int? nsid = FindAttribute(link, IFLA_LINK_NETNSID, out ReadOnlySpan<byte> ns) && ns.Length >= 4 ? BinaryPrimitives.ReadInt32LittleEndian(ns) : null;
        length = GetLinkRequest(buffer, BinaryPrimitives.ReadInt32LittleEndian(peer), nsid);
        if (!ExchangeLink(fd, buffer, length, out link) || !FindAttribute(link, IFLA_XDP, out ReadOnlySpan<byte> xdp))
        {
            return null;
        }
        if (!FindAttribute(xdp, IFLA_XDP_ATTACHED, out ReadOnlySpan<byte> attached) || attached.Length < 1)
        {
            return null;
        }
        // XDP_ATTACHED_DRV, or MULTI with a driver-mode program among them.
        return attached[0] == Interop.Libbpf.XDP_ATTACHED_DRV
            || (attached[0] == Interop.Libbpf.XDP_ATTACHED_MULTI && FindAttribute(xdp, IFLA_XDP_DRV_PROG_ID, out _));
    }

    /// <summary>nlmsghdr (16) + ifinfomsg (16) [+ IFLA_TARGET_NETNSID].</summary>
    private static int GetLinkRequest(Span<byte> buffer, int ifindex, int? nsid)
    {
        int length = 16 + 16 + (nsid is null ? 0 : 8);
        buffer[..length].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(buffer, (uint)length);
        BinaryPrimitives.WriteUInt16LittleEndian(buffer[4..], RTM_GETLINK);
        BinaryPrimitives.WriteUInt16LittleEndian(buffer[6..], NLM_F_REQUEST);
        BinaryPrimitives.WriteUInt32LittleEndian(buffer[8..], 1);
        BinaryPrimitives.WriteInt32LittleEndian(buffer[20..], ifindex);  // ifinfomsg.ifi_index
        if (nsid is int id)
        {
            BinaryPrimitives.WriteUInt16LittleEndian(buffer[32..], 8);
            BinaryPrimitives.WriteUInt16LittleEndian(buffer[34..], IFLA_TARGET_NETNSID);
            BinaryPrimitives.WriteInt32LittleEndian(buffer[36..], id);
        }
        return length;
    }

    /// <summary>The attributes of the RTM_NEWLINK answer (after nlmsghdr and ifinfomsg).</summary>
    private static unsafe bool ExchangeLink(int fd, Span<byte> buffer, int length, out ReadOnlySpan<byte> attributes)
    {
        attributes = default;
        fixed (byte* b = buffer)
        {
            if (send(fd, b, (nuint)length, 0) != length)
            {
                return false;
            }
            nint n = recv(fd, b, (nuint)buffer.Length, MSG_DONTWAIT);
            if (n < 32)
            {
                return false;
            }
            uint messageLength = BinaryPrimitives.ReadUInt32LittleEndian(buffer);
            ushort type = BinaryPrimitives.ReadUInt16LittleEndian(buffer[4..]);
            if (type != RTM_NEWLINK || messageLength < 32 || messageLength > n)
            {
                return false;
            }
            attributes = buffer[32..(int)messageLength];
            return true;
        }
    }

    /// <summary>nlmsghdr (16) + genlmsghdr (4) + one attribute.</summary>
    private static int Request(Span<byte> buffer, ushort type, byte command, ushort attribute, ReadOnlySpan<byte> value)
    {
        int attributeLength = 4 + value.Length;
        int length = 16 + 4 + ((attributeLength + 3) & ~3);
        buffer[..length].Clear();
        BinaryPrimitives.WriteUInt32LittleEndian(buffer, (uint)length);
        BinaryPrimitives.WriteUInt16LittleEndian(buffer[4..], type);
        BinaryPrimitives.WriteUInt16LittleEndian(buffer[6..], NLM_F_REQUEST);
        BinaryPrimitives.WriteUInt32LittleEndian(buffer[8..], 1);     // sequence
        buffer[16] = command;
        buffer[17] = 1;                                                // genl version
        BinaryPrimitives.WriteUInt16LittleEndian(buffer[20..], (ushort)attributeLength);
        BinaryPrimitives.WriteUInt16LittleEndian(buffer[22..], attribute);
        value.CopyTo(buffer[24..]);
        return length;
    }

    /// <summary>Sends the request and returns the attributes of the reply (after nlmsghdr and genlmsghdr).</summary>
    private static unsafe bool Exchange(int fd, Span<byte> buffer, int length, out ReadOnlySpan<byte> attributes)
    {
        attributes = default;
        fixed (byte* b = buffer)
        {
            if (send(fd, b, (nuint)length, 0) != length)
            {
                return false;
            }
            // The kernel answers within send(): the reply is queued already, so never wait for it.
            nint n = recv(fd, b, (nuint)buffer.Length, MSG_DONTWAIT);
            if (n < 20)
            {
                return false;
            }
            uint messageLength = BinaryPrimitives.ReadUInt32LittleEndian(buffer);
            ushort type = BinaryPrimitives.ReadUInt16LittleEndian(buffer[4..]);
            if (type is NLMSG_ERROR or NLMSG_DONE || messageLength < 20 || messageLength > n)
            {
                return false;
            }
            attributes = buffer[20..(int)messageLength];
            return true;
        }
    }

    private static bool FindAttribute(ReadOnlySpan<byte> attributes, ushort type, out ReadOnlySpan<byte> value)
    {
        value = default;
        while (attributes.Length >= 4)
        {
            int length = BinaryPrimitives.ReadUInt16LittleEndian(attributes);
            ushort kind = (ushort)(BinaryPrimitives.ReadUInt16LittleEndian(attributes[2..]) & 0x3fff);
            if (length < 4 || length > attributes.Length)
            {
                return false;
            }
            if (kind == type)
            {
                value = attributes[4..length];
                return true;
            }
            int next = (length + 3) & ~3;
            attributes = next >= attributes.Length ? default : attributes[next..];
        }
        return false;
    }
}
