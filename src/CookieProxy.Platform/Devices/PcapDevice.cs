using CookieProxy.Io;
using SharpPcap;
using SharpPcap.LibPcap;

namespace CookieProxy.Platform;

/// <summary>
/// The portable backend: libpcap through SharpPcap's <see cref="LibPcapLiveDevice"/>, in immediate, non-blocking
/// mode, inbound direction only. Receive waits with poll() on pcap's selectable descriptor plus a wake pipe, then
/// drains with pcap_next_ex. Works wherever libpcap gives a selectable descriptor (Linux, macOS, FreeBSD).
/// </summary>
/// <remarks>
/// SharpPcap opens, configures, filters and receives; where its usual call costs the hot path or gets a value wrong,
/// we take another of its calls or keep our own binding (Interop.Pcap.cs) for that call only. Numbers from
/// bench/CookieProxy.Benchmarks/PcapBenchmarks.cs (BenchmarkDotNet short job, 2-core build machine):
/// <list type="bullet">
/// <item>Receive uses <see cref="SharpPcap.LibPcap.PcapDevice.GetNextPacketPointers"/>, SharpPcap's own zero-copy
/// call, not <c>GetNextPacket(out PacketCapture)</c>: that one allocates a PcapHeader, a PosixTimeval and a
/// one-element pollfd array for every packet (96 B per frame in PcapBenchmarks, where this device allocates 0 B),
/// and it polls the descriptor before reading, but libpcap keeps the rest of a TPACKET_V3 block in user space,
/// where poll() does not see it: with 64 frames queued it returned ReadTimeout after 32, the others still
/// buffered. We drain first, then poll.</item>
/// <item>Send on Linux queues the frame; Flush hands the queue to the kernel with one sendmmsg on libpcap's own
/// descriptor, which is what pcap_inject does there one frame per system call (<see cref="PacketTxQueue"/>, waiting for room). In the
/// flood bench that took the path from 8.3-9.3 to 5.4-7.2 µs of server CPU per SYN+ACK, and from 85-88% to 100% of a
/// 100-167 kpps flood answered (docs/pcap.md). Elsewhere (BSD/macOS BPF has no batch
/// write) send is pcap_inject: SharpPcap's <c>SendPacket(ReadOnlySpan&lt;byte&gt;)</c> allocates nothing when the
/// frame goes out, but throws a PcapException with a formatted message for every frame the interface refuses
/// (ENOBUFS when a flood fills a BSD interface queue, EMSGSIZE, ENETDOWN): 600 B and ~5.7 µs per refused frame in
/// PcapBenchmarks, against 0 B and ~0.8 µs for pcap_inject, where a refused SYN+ACK must only be a counter.</item>
/// <item>pcap_stats: SharpPcap reads struct pcap_stat with pointer-sized fields, but libpcap's are u_int, so on
/// 64-bit Unix its DroppedPackets is really ps_ifdrop and the kernel drops are never seen.</item>
/// <item>pcap_setdirection and pcap_get_selectable_fd, which SharpPcap does not expose (it only reads the
/// descriptor on Linux, into a field of its own).</item>
/// </list>
/// </remarks>
public sealed partial class PcapDevice : IPacketDevice
{
    private readonly LibPcapLiveDevice _device;
    private readonly IntPtr _rawPcap;
    private readonly int _selectableFd;
    private readonly WakePipe _wake;
    // Linux only: replies queued and sent with one sendmmsg per Flush on libpcap's descriptor (null elsewhere).
    private readonly PacketTxQueue? _txQueue;
    private readonly Lock _statsLock = new();
    private long _sent;
    private long _sendFailed;
    private Interop.Pcap.pcap_stat _lastStats;
    private long _received;
    private long _kernelDropped;
    private long _interfaceDropped;
    private bool _disposed;

    /// <param name="interfaceName">Interface to capture on and inject into.</param>
    /// <param name="filter">pcap filter text (see <see cref="BpfFilter"/>); null or empty captures everything.</param>
    public PcapDevice(string interfaceName, string? filter, PacketDeviceOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(interfaceName);
        options ??= PacketDeviceOptions.Default;
        Name = interfaceName;
        _device = Find(interfaceName);
        try
        {
            Activate(options);
            RequireEthernet();
            _rawPcap = _device.Handle.DangerousGetHandle();
            SetDirectionIn();
            if (!string.IsNullOrEmpty(filter))
            {
                SetFilter(filter);
            }
            SetNonBlocking();
            _selectableFd = Interop.Pcap.pcap_get_selectable_fd(_rawPcap);
            if (_selectableFd < 0)
            {
                throw new PacketDeviceException(interfaceName,
                    $"libpcap: '{interfaceName}' has no selectable descriptor on this platform; poll() cannot wait on it");
            }
            _wake = new WakePipe(interfaceName);
            if (OperatingSystem.IsLinux() && options.PcapSend == PcapSendMode.Batch)
            {
                _txQueue = new PacketTxQueue(options.TxBatchFrames, MaxQueuedFrameBytes, bufferBytes: 0, vnetHeaders: false, waitForRoom: true);
            }
        }
        catch
        {
            _device.Close();
            throw;
        }
    }

    public string Name { get; }

    public string Backend => "libpcap";

    /// <summary>A note from opening (pcap_setdirection unsupported, a setting libpcap refused), or null.</summary>
    public string? ActivationWarning { get; private set; }

    /// <summary>Frames that did not fit the batch's byte budget. Receive stops a batch before a frame could
    /// overflow it (it checks for room for a maximal frame first), so this stays 0; kept for the contract.</summary>
    public long BatchOverflowDrops => 0;

    /// <summary>Largest frame the Linux send queue takes (a 9000-byte jumbo MTU plus headers); a longer one goes
    /// alone through pcap_inject.</summary>
    private const int MaxQueuedFrameBytes = 9216;

    /// <summary>libpcap's version string and SharpPcap's version, for the startup log.</summary>
    public static string LibraryVersion => $"{Pcap.Version} (SharpPcap {Pcap.SharpPcapVersion})";

    public void Wake() => _wake.Wake();

    public bool TrySetAuxiliaryWaitFd(int fd)
    {
        _wake.AuxiliaryFd = fd;
        return true;
    }

    public DeviceStats GetStats()
    {
        lock (_statsLock)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            Interop.Pcap.pcap_stat now = ReadStats();
            // libpcap's counters are 32-bit and wrap; accumulate the (wrapping) differences.
            _received += unchecked(now.ps_recv - _lastStats.ps_recv);
            _kernelDropped += unchecked(now.ps_drop - _lastStats.ps_drop);
            _interfaceDropped += unchecked(now.ps_ifdrop - _lastStats.ps_ifdrop);
            _lastStats = now;
            long sent = Volatile.Read(ref _sent);
            long sendFailed = Volatile.Read(ref _sendFailed);
            if (OperatingSystem.IsLinux() && _txQueue is not null)
            {
                // Read from another thread (stats): a torn read is impossible for a long on 64-bit, and a
                // count one batch old is fine.
                sent += _txQueue.Sent;
                sendFailed += _txQueue.SendFailed;
            }
            return new DeviceStats(_received, _kernelDropped, _interfaceDropped, sent, sendFailed);
        }
    }

    public void Dispose()
    {
        lock (_statsLock)
        {
            if (_disposed)
            {
                return;
            }
            _disposed = true;
        }
        _device.Close();
        _wake.Dispose();
    }
}
