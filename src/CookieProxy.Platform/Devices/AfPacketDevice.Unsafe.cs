using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using CookieProxy.Io;
using static CookieProxy.Platform.Interop.PacketSocket;

namespace CookieProxy.Platform;

public sealed unsafe partial class AfPacketDevice
{
    private const int MaxSendmmsgBatch = 1024;

    /// <summary>The SYN ring: 256-byte V2 slots (any bare SYN fits), or V3 blocks as the single ring has.</summary>
    private static RxRingShape SynRingShape(PacketDeviceOptions options) => options.Rings == ReceiveRings.SeparateSynBlocks
        ? SingleRingShape(options)
        : new RxRingShape(TPACKET_V2, options.RingBlockSize, options.RingBlockCount, options.SynRingFrameSize);

    /// <summary>The flow ring: V2 slots for an MTU-sized frame; longer frames also queued whole (PACKET_COPY_THRESH).</summary>
    private static RxRingShape FlowRingShape(PacketDeviceOptions options) =>
        new(TPACKET_V2, options.RingBlockSize, options.FlowRingBlockCount, options.FlowRingFrameSize, CopyLongFrames: true);

    private static RxRingShape SingleRingShape(PacketDeviceOptions options) =>
        new(TPACKET_V3, options.RingBlockSize, options.RingBlockCount, options.RingFrameSize, options.RingRetireTimeoutMs);

    /// <summary>The TX queue and the sendmmsg vectors have the same number of slots.</summary>
    private static int TxSlots(PacketDeviceOptions options) => Math.Clamp(options.TxBatchFrames, 1, MaxSendmmsgBatch);

    internal static ushort HostToNetwork(ushort value) => BitConverter.IsLittleEndian ? (ushort)((value >> 8) | (value << 8)) : value;

    public int Receive(FrameBatch batch, int timeoutMs)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        batch.Clear();
        Drain(batch);
        if (batch.Count == 0 && timeoutMs != 0)
        {
            WakePipe.Ready ready = _wake.Poll(_rx.Fd, _flowRx?.Fd ?? -1, timeoutMs);
            if ((ready & WakePipe.Ready.DeviceError) != 0)
            {
                _rx.ThrowIfSocketError();
                _flowRx?.ThrowIfSocketError();
            }
            if ((ready & WakePipe.Ready.Device) != 0)
            {
                Drain(batch);
            }
        }
        return batch.Count;
    }

    /// <summary>The flow ring first: under a SYN flood the segments of live flows never wait behind SYNs.</summary>
    private void Drain(FrameBatch batch)
    {
        _flowRx?.Drain(batch);
        _rx.Drain(batch);
    }

    public bool Send(ReadOnlySpan<byte> frame)
    {
        if (frame.Length < 14 || frame.Length > _tx.MaxFrameBytes)
        {
            _rejected++;
            return false;
        }
        _tx.Add(_rx.Fd, frame);
        return true;
    }

    public Span<byte> ReserveOffloaded(int maxLength)
    {
        if (_offloadTx is null)
        {
            throw new NotSupportedException($"{Name}: no TX offload (PACKET_VNET_HDR unavailable or disabled)");
        }
        return _offloadTx.Reserve(_offloadSocket!.Fd, maxLength);
    }

    public void CommitOffloaded(int length, in TxOffload offload) => _offloadTx!.Commit(length, offload);

    public void Flush()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        _tx.Flush(_rx.Fd);
        _offloadTx?.Flush(_offloadSocket!.Fd);
    }

    /// <summary>
    /// The offload socket: PACKET_VNET_HDR, bound with protocol 0 so it receives nothing. Not QDISC_BYPASS:
    /// __dev_direct_xmit drops a GSO skb that validate_xmit_skb had to segment in software (a NIC without
    /// TSO), while the normal path segments it. Null when the kernel refuses (then flows send plain frames).
    /// </summary>
    private static SafeFdHandle? TryOpenOffloadSocket(int ifindex)
    {
        int fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
        if (fd < 0)
        {
            return null;
        }
        var handle = new SafeFdHandle(fd);
        int one = 1;
        var address = new sockaddr_ll { sll_family = AF_PACKET, sll_protocol = 0, sll_ifindex = ifindex };
        if (setsockopt(handle, SOL_PACKET, PACKET_VNET_HDR, &one, sizeof(int)) != 0
            || bind(handle, &address, (uint)sizeof(sockaddr_ll)) != 0)
        {
            handle.Dispose();
            return null;
        }
        return handle;
    }
}
