using CookieProxy.Io;
using SharpPcap;
using SharpPcap.LibPcap;

namespace CookieProxy.Platform;

public sealed unsafe partial class PcapDevice
{
    private static LibPcapLiveDevice Find(string interfaceName)
    {
        Interop.Libraries.EnsureSharpPcapResolver();
        LibPcapLiveDeviceList devices;
        try
        {
            // pcap_findalldevs (getifaddrs on Linux: the calling thread's network namespace). SharpPcap opens a
            // device only from this list.
            devices = LibPcapLiveDeviceList.New();
        }
        catch (Exception e) when (NotInstalled(e) is DllNotFoundException missing)
        {
            throw new PacketDeviceException(interfaceName, $"libpcap is not installed: {missing.Message}", innerException: missing);
        }
        catch (PcapException e)
        {
            throw new PacketDeviceException(interfaceName, $"libpcap: cannot list the interfaces: {e.Message}", (int)e.Error, e);
        }
        foreach (LibPcapLiveDevice device in devices)
        {
            if (device.Name == interfaceName)
            {
                return device;
            }
        }
        throw new PacketDeviceException(interfaceName, $"libpcap: no such interface '{interfaceName}'", Interop.Pcap.PCAP_ERROR_NO_SUCH_DEVICE);
    }

    /// <summary>The DllNotFoundException behind <paramref name="e"/> (SharpPcap's static constructor wraps it), or null.</summary>
    private static DllNotFoundException? NotInstalled(Exception e) => e switch
    {
        DllNotFoundException d => d,
        TypeInitializationException { InnerException: DllNotFoundException d } => d,
        _ => null,
    };

    private void Activate(PacketDeviceOptions options)
    {
        var configuration = new DeviceConfiguration
        {
            Mode = options.Promiscuous ? DeviceModes.Promiscuous : DeviceModes.None,
            Snaplen = options.SnapLength,
            BufferSize = options.PcapBufferBytes,
            // Immediate mode: deliver each frame as it arrives rather than when a buffer fills (a SYN waits for nobody).
            Immediate = true,
            ReadTimeout = 1,
        };
        // A setting libpcap refuses (a buffer size, immediate mode on an old libpcap) is a note, not a failure.
        configuration.ConfigurationFailed += (_, failed) => Note($"libpcap: {failed.Property} not applied on '{Name}': {failed.Message}");
        try
        {
            _device.Open(configuration);
        }
        catch (PcapException e)
        {
            throw Failure("pcap_activate", e);
        }
    }

    private PacketDeviceException Failure(string what, PcapException e)
    {
        string detail = _device.Opened || !_device.Handle.IsInvalid ? SafeLastError() : "";
        string message = e.Error switch
        {
            PcapError.NoSuchDevice => $"libpcap: no such interface '{Name}'",
            PcapError.PermissionDenied => $"libpcap: permission denied capturing on '{Name}' (needs root or CAP_NET_RAW)",
            PcapError.PromiscuousPermissionDenied => $"libpcap: permission denied for promiscuous mode on '{Name}'",
            PcapError.InterfaceNotUp => $"libpcap: interface '{Name}' is not up",
            _ => $"libpcap: {what} on '{Name}' failed: {e.Message}",
        };
        if (detail.Length != 0 && !message.Contains(detail, StringComparison.Ordinal))
        {
            message += ": " + detail;
        }
        return new PacketDeviceException(Name, message, (int)e.Error, e);
    }

    private string SafeLastError()
    {
        try
        {
            return _device.LastError ?? "";
        }
        catch (Exception e) when (e is ObjectDisposedException or InvalidOperationException)
        {
            return "";
        }
    }

    private void Note(string note) => ActivationWarning = ActivationWarning is null ? note : ActivationWarning + "; " + note;

    private void RequireEthernet()
    {
        if (_device.LinkType != PacketDotNet.LinkLayers.Ethernet)
        {
            throw new PacketDeviceException(Name,
                $"libpcap: '{Name}' has link type {(int)_device.LinkType} ({_device.LinkType}), not Ethernet (DLT_EN10MB); the proxy needs Ethernet frames");
        }
    }

    private void SetDirectionIn()
    {
        // Not every platform supports it (older BSD/macOS BPF): then our own injected frames come back and
        // the core drops them (not a SYN/ACK towards a protected port), so this is an optimisation only.
        if (Interop.Pcap.pcap_setdirection(_rawPcap, Interop.Pcap.PCAP_D_IN) != 0)
        {
            Note($"libpcap: pcap_setdirection(PCAP_D_IN) unsupported on '{Name}': {SafeLastError()}");
        }
    }

    private void SetFilter(string filter)
    {
        try
        {
            _device.Filter = filter;
        }
        catch (PcapException e)
        {
            throw new PacketDeviceException(Name,
                $"libpcap: invalid capture filter \"{filter}\" for '{Name}': {e.Message}", Interop.Pcap.PCAP_ERROR, e);
        }
    }

    private void SetNonBlocking()
    {
        try
        {
            // SharpPcap's name for pcap_setnonblock(p, 1): true = do not block.
            _device.NonBlockingMode = true;
        }
        catch (PcapException e)
        {
            throw new PacketDeviceException(Name, $"libpcap: pcap_setnonblock on '{Name}' failed: {e.Message}", Interop.Pcap.PCAP_ERROR, e);
        }
    }

    private Interop.Pcap.pcap_stat ReadStats()
    {
        Interop.Pcap.pcap_stat stats;
        return Interop.Pcap.pcap_stats(_rawPcap, &stats) == 0 ? stats : _lastStats;
    }

    public int Receive(FrameBatch batch, int timeoutMs)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        batch.Clear();
        // Drain first: libpcap may hold frames in its own buffer (BSD BPF reads many at once) that poll()
        // on the descriptor would not report.
        Drain(batch);
        if (batch.Count == 0 && timeoutMs != 0)
        {
            WakePipe.Ready ready = _wake.Poll(_selectableFd, timeoutMs);
            if ((ready & (WakePipe.Ready.Device | WakePipe.Ready.DeviceError)) != 0)
            {
                Drain(batch);
            }
        }
        return batch.Count;
    }

    /// <summary>
    /// pcap_next_ex until libpcap has nothing more (non-blocking: 0) or the batch is full. A frame is taken only
    /// while the batch has room for a maximal one, so none is lost for want of bytes: what stays in libpcap's
    /// buffer comes with the next batch.
    /// </summary>
    private void Drain(FrameBatch batch)
    {
        int maxFrame = batch.MaxFrameBytes;
        while (!batch.IsFull && batch.TryReserve(maxFrame, out _))
        {
            IntPtr header = IntPtr.Zero;
            IntPtr data = IntPtr.Zero;
            int status = _device.GetNextPacketPointers(ref header, ref data);
            if (status != 1)
            {
                if (status == Interop.Pcap.PCAP_ERROR)
                {
                    // The capture itself broke (e.g. "The interface disappeared"): fail fast, not per packet.
                    throw new PacketDeviceException(Name, $"libpcap: capture on '{Name}' failed: {SafeLastError()}", status);
                }
                return; // 0: nothing buffered (non-blocking)
            }
            var h = (Interop.Pcap.pcap_pkthdr*)header;
            uint captured = h->caplen;
            int length = (int)Math.Min(captured, (uint)maxFrame);
            FrameFlags flags = captured < h->len || length < captured ? FrameFlags.Truncated : FrameFlags.None;
            bool reserved = batch.TryReserve(length, out Span<byte> destination);
            System.Diagnostics.Debug.Assert(reserved, "room for a maximal frame was checked above");
            new ReadOnlySpan<byte>((void*)data, length).CopyTo(destination);
            batch.Commit(length, flags);
        }
    }

    public bool Send(ReadOnlySpan<byte> frame)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (OperatingSystem.IsLinux() && _txQueue is not null)
        {
            if (frame.Length <= _txQueue.MaxFrameBytes)
            {
                // Sent with the rest of the batch at Flush: one sendmmsg for every reply of a receive batch.
                _txQueue.Add(_selectableFd, frame);
                return true;
            }
            _txQueue.Flush(_selectableFd); // keep the order: what was queued goes first
        }
        return Inject(frame);
    }

    public void Flush()
    {
        if (OperatingSystem.IsLinux() && _txQueue is not null)
        {
            _txQueue.Flush(_selectableFd);
        }
    }

    /// <summary>One frame through pcap_inject (one system call): BSD/macOS always, Linux for an oversized frame.</summary>
    private bool Inject(ReadOnlySpan<byte> frame)
    {
        fixed (byte* data = frame)
        {
            // The descriptor is non-blocking (for the receive side), so a burst that fills the socket's send
            // buffer (Linux: SO_SNDBUF of libpcap's AF_PACKET socket, ~200 KiB; BSD: the interface queue, ENOBUFS)
            // fails instead of waiting. Each such frame used to be a TxFailed drop and a TCP retransmission a full
            // RTO later (a 100 MiB download in the flood bench lab: 734 of them). Wait for room, briefly and a
            // bounded number of times: backpressure on the capture thread, the way a blocking send would be. A
            // real error (an oversized frame) finds the descriptor writable and fails again at once.
            for (int attempt = 0; attempt < SendAttempts; attempt++)
            {
                if (Interop.Pcap.pcap_inject(_rawPcap, data, (nuint)frame.Length) >= 0)
                {
                    _sent++;
                    return true;
                }
                if (attempt + 1 < SendAttempts)
                {
                    WaitWritable();
                }
            }
        }
        _sendFailed++;
        return false;
    }

    /// <summary>Tries per frame before it counts as failed; between two, at most <see cref="SendWaitMs"/> in poll(2).</summary>
    private const int SendAttempts = 4;

    private const int SendWaitMs = 2;

    private void WaitWritable()
    {
        var pfd = new Interop.Libc.pollfd { fd = _selectableFd, events = Interop.Libc.POLLOUT };
        _ = Interop.Libc.poll(&pfd, 1, SendWaitMs); // EINTR or a timeout: the next pcap_inject tells
    }
}
