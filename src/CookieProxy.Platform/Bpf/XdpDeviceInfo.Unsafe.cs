using System.Buffers.Binary;
using System.Runtime.Versioning;
using System.Text;
using static CookieProxy.Platform.Interop.Xdp;

namespace CookieProxy.Platform;

/// <summary>Which XDP mode to use on a device, and why (for the start-up line).</summary>
public readonly record struct XdpModeChoice(XdpAttachMode Mode, string Reason);

/// <summary>
/// What a device's XDP can do: its driver (ETHTOOL_GDRVINFO) and its xdp-features (the netdev generic
/// netlink family, Linux 6.3+; null on older kernels). Decides <c>--xdp-syn auto</c>.
/// </summary>
/// <remarks>
/// A veth is the one device where native XDP_TX can silently go nowhere: veth_xdp_xmit hands the frame to
/// the PEER's receive queue, which exists only while the peer runs NAPI (it has an XDP program of its own,
/// or GRO is on: veth_open / veth_set_features), and counts rx_queue_N_xdp_tx_errors otherwise. The kernel
/// mirrors exactly that condition in our side's NETDEV_XDP_ACT_NDO_XMIT (veth_set_xdp_features /
/// xdp_features_set_redirect_target), so it can be read from this namespace even when the peer lives in
/// another. Measured on 6.18: 100 of 100 XDP_TX frames were errors with the peer's GRO off, 100 of 100
/// delivered with GRO on or a peer XDP program, and NDO_XMIT followed each change.
/// </remarks>
[SupportedOSPlatform("linux")]
public readonly record struct XdpDeviceInfo(string Driver, ulong? XdpFeatures)
{
    public bool IsVeth => Driver == "veth";

    /// <summary>Native XDP_TX reaches the wire (for a veth: the peer has NAPI). Null when the kernel cannot say.</summary>
    public bool? NativeTxDelivers => XdpFeatures is not ulong f
        ? null
        : (f & NETDEV_XDP_ACT_BASIC) != 0 && (!IsVeth || (f & NETDEV_XDP_ACT_NDO_XMIT) != 0);

    public static XdpDeviceInfo Of(string interfaceName)
    {
        int ifindex = (int)Interop.PacketSocket.if_nametoindex(interfaceName);
        return new XdpDeviceInfo(DriverName(interfaceName), ifindex == 0 ? null : QueryXdpFeatures(ifindex));
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
            return NativeTxDelivers switch
            {
                true => new XdpModeChoice(XdpAttachMode.Native, "veth whose peer has NAPI (GRO or an XDP program): native XDP_TX reaches it"),
                false => new XdpModeChoice(XdpAttachMode.Generic, "veth whose peer has no NAPI (GRO off, no XDP program): native XDP_TX would be dropped"),
                null => new XdpModeChoice(XdpAttachMode.Generic, "veth, and this kernel (before 6.3) cannot tell whether native XDP_TX reaches the peer"),
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
