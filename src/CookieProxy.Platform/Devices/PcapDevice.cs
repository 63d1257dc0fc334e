using System.Runtime.InteropServices;
using CookieProxy.Io;

namespace CookieProxy.Platform;

/// <summary>
/// The portable backend: libpcap in immediate, non-blocking mode, inbound direction only. Receive waits with
/// poll() on pcap's selectable descriptor plus a wake pipe, then drains with pcap_dispatch. Send is pcap_inject.
/// Works wherever libpcap gives a selectable descriptor (Linux, macOS, FreeBSD).
/// </summary>
public sealed partial class PcapDevice : IPacketDevice
{
    private readonly SafePcapHandle _pcap;
    private readonly IntPtr _rawPcap;
    private readonly int _selectableFd;
    private readonly WakePipe _wake;
    private readonly GCHandle _self;
    private readonly Lock _statsLock = new();
    private FrameBatch? _current;
    private long _sent;
    private long _sendFailed;
    private long _batchOverflow;
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
        _pcap = Create(interfaceName);
        try
        {
            Activate(options);
            RequireEthernet();
            SetDirectionIn();
            if (!string.IsNullOrEmpty(filter))
            {
                SetFilter(filter);
            }
            SetNonBlocking();
            _selectableFd = Interop.Pcap.pcap_get_selectable_fd(_pcap);
            if (_selectableFd < 0)
            {
                throw new PacketDeviceException(interfaceName,
                    $"libpcap: '{interfaceName}' has no selectable descriptor on this platform; poll() cannot wait on it");
            }
            _wake = new WakePipe(interfaceName);
        }
        catch
        {
            _pcap.Dispose();
            throw;
        }
        _rawPcap = _pcap.DangerousGetHandle();
        // Weak: the callback only runs inside Receive, while the device is alive anyway.
        _self = GCHandle.Alloc(this, GCHandleType.Weak);
    }

    public string Name { get; }

    public string Backend => "libpcap";

    /// <summary>pcap_activate's warning (e.g. promiscuous mode unsupported), or null.</summary>
    public string? ActivationWarning { get; private set; }

    /// <summary>Frames libpcap delivered that did not fit the batch's byte budget (maximal GRO frames only).</summary>
    public long BatchOverflowDrops => Volatile.Read(ref _batchOverflow);

    /// <summary>libpcap's version string, for the startup log.</summary>
    public static string LibraryVersion => Interop.Pcap.LibVersion();

    public void Wake() => _wake.Wake();

    public bool TrySetAuxiliaryWaitFd(int fd)
    {
        _wake.AuxiliaryFd = fd;
        return true;
    }

    public void Flush()
    {
        // pcap_inject sends at once; there is nothing to batch.
    }

    private PacketDeviceException Failure(string what, int status)
    {
        string detail = Interop.Pcap.GetError(_pcap);
        string message = status switch
        {
            Interop.Pcap.PCAP_ERROR_NO_SUCH_DEVICE => $"libpcap: no such interface '{Name}'",
            Interop.Pcap.PCAP_ERROR_PERM_DENIED => $"libpcap: permission denied capturing on '{Name}' (needs root or CAP_NET_RAW)",
            Interop.Pcap.PCAP_ERROR_PROMISC_PERM_DENIED => $"libpcap: permission denied for promiscuous mode on '{Name}'",
            Interop.Pcap.PCAP_ERROR_IFACE_NOT_UP => $"libpcap: interface '{Name}' is not up",
            Interop.Pcap.PCAP_ERROR => $"libpcap: {what} on '{Name}' failed",
            _ => $"libpcap: {what} on '{Name}' failed: {Interop.Pcap.StatusToString(status)}",
        };
        if (detail.Length != 0)
        {
            message += ": " + detail;
        }
        return new PacketDeviceException(Name, message, status);
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
            return new DeviceStats(_received, _kernelDropped, _interfaceDropped,
                Volatile.Read(ref _sent), Volatile.Read(ref _sendFailed));
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
        _pcap.Dispose();
        _wake.Dispose();
        _self.Free();
    }
}
