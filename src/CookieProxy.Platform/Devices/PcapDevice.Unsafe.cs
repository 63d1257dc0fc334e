using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using CookieProxy.Io;

namespace CookieProxy.Platform;

public sealed unsafe partial class PcapDevice
{
    private static SafePcapHandle Create(string interfaceName)
    {
        byte* errbuf = stackalloc byte[Interop.Pcap.PCAP_ERRBUF_SIZE];
        errbuf[0] = 0;
        SafePcapHandle pcap;
        try
        {
            pcap = Interop.Pcap.pcap_create(interfaceName, errbuf);
        }
        catch (DllNotFoundException e)
        {
            throw new PacketDeviceException(interfaceName, $"libpcap is not installed: {e.Message}", innerException: e);
        }
        if (pcap.IsInvalid)
        {
            pcap.Dispose();
            throw new PacketDeviceException(interfaceName,
                $"libpcap: pcap_create('{interfaceName}') failed: {Marshal.PtrToStringUTF8((IntPtr)errbuf)}");
        }
        return pcap;
    }

    private void Activate(PacketDeviceOptions options)
    {
        // These only fail with PCAP_ERROR_ACTIVATED, impossible before pcap_activate.
        _ = Interop.Pcap.pcap_set_snaplen(_pcap, options.SnapLength);
        _ = Interop.Pcap.pcap_set_promisc(_pcap, options.Promiscuous ? 1 : 0);
        // Immediate mode: deliver each frame as it arrives rather than when a buffer fills (a SYN waits for nobody).
        _ = Interop.Pcap.pcap_set_immediate_mode(_pcap, 1);
        _ = Interop.Pcap.pcap_set_buffer_size(_pcap, options.PcapBufferBytes);
        _ = Interop.Pcap.pcap_set_timeout(_pcap, 1);

        int status = Interop.Pcap.pcap_activate(_pcap);
        if (status < 0)
        {
            throw Failure("pcap_activate", status);
        }
        if (status > 0)
        {
            string detail = status == Interop.Pcap.PCAP_WARNING ? Interop.Pcap.GetError(_pcap) : Interop.Pcap.StatusToString(status);
            ActivationWarning = $"libpcap: warning activating '{Name}': {detail}";
        }
    }

    private void RequireEthernet()
    {
        int linkType = Interop.Pcap.pcap_datalink(_pcap);
        if (linkType != Interop.Pcap.DLT_EN10MB)
        {
            throw new PacketDeviceException(Name,
                $"libpcap: '{Name}' has link type {linkType}, not Ethernet (DLT_EN10MB); the proxy needs Ethernet frames");
        }
    }

    private void SetDirectionIn()
    {
        // Not every platform supports it (older BSD/macOS BPF): then our own injected frames come back and
        // the core drops them (not a SYN/ACK towards a protected port), so this is an optimisation only.
        if (Interop.Pcap.pcap_setdirection(_pcap, Interop.Pcap.PCAP_D_IN) != 0)
        {
            string note = $"libpcap: pcap_setdirection(PCAP_D_IN) unsupported on '{Name}': {Interop.Pcap.GetError(_pcap)}";
            ActivationWarning = ActivationWarning is null ? note : ActivationWarning + "; " + note;
        }
    }

    private void SetFilter(string filter)
    {
        Interop.Pcap.bpf_program program;
        if (Interop.Pcap.pcap_compile(_pcap, &program, filter, 1, Interop.Pcap.PCAP_NETMASK_UNKNOWN) != 0)
        {
            throw new PacketDeviceException(Name,
                $"libpcap: invalid capture filter \"{filter}\" for '{Name}': {Interop.Pcap.GetError(_pcap)}", Interop.Pcap.PCAP_ERROR);
        }
        int status = Interop.Pcap.pcap_setfilter(_pcap, &program);
        Interop.Pcap.pcap_freecode(&program);
        if (status != 0)
        {
            throw Failure("pcap_setfilter", status);
        }
    }

    private void SetNonBlocking()
    {
        byte* errbuf = stackalloc byte[Interop.Pcap.PCAP_ERRBUF_SIZE];
        errbuf[0] = 0;
        if (Interop.Pcap.pcap_setnonblock(_pcap, 1, errbuf) != 0)
        {
            throw new PacketDeviceException(Name,
                $"libpcap: pcap_setnonblock on '{Name}' failed: {Marshal.PtrToStringUTF8((IntPtr)errbuf)}", Interop.Pcap.PCAP_ERROR);
        }
    }

    private Interop.Pcap.pcap_stat ReadStats()
    {
        Interop.Pcap.pcap_stat stats;
        return Interop.Pcap.pcap_stats(_pcap, &stats) == 0 ? stats : _lastStats;
    }

    public int Receive(FrameBatch batch, int timeoutMs)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        batch.Clear();
        // Dispatch first: libpcap may hold frames in its own buffer (BSD BPF reads many at once) that poll()
        // on the descriptor would not report.
        Dispatch(batch);
        if (batch.Count == 0 && timeoutMs != 0)
        {
            WakePipe.Ready ready = _wake.Poll(_selectableFd, timeoutMs);
            if ((ready & (WakePipe.Ready.Device | WakePipe.Ready.DeviceError)) != 0)
            {
                Dispatch(batch);
            }
        }
        return batch.Count;
    }

    private void Dispatch(FrameBatch batch)
    {
        int room = batch.MaxFrames - batch.Count;
        if (room <= 0)
        {
            return;
        }
        _current = batch;
        int status = Interop.Pcap.pcap_dispatch(_rawPcap, room, &OnPacket, GCHandle.ToIntPtr(_self));
        _current = null;
        if (status == Interop.Pcap.PCAP_ERROR)
        {
            // The capture itself broke (e.g. "The interface disappeared"): fail fast, not per packet.
            throw new PacketDeviceException(Name, $"libpcap: capture on '{Name}' failed: {Interop.Pcap.GetError(_pcap)}", status);
        }
    }

    /// <summary>pcap_handler: copies one frame into the current batch. Must never throw (it runs under native frames).</summary>
    [UnmanagedCallersOnly(CallConvs = [typeof(CallConvCdecl)])]
    private static void OnPacket(IntPtr user, Interop.Pcap.pcap_pkthdr* header, byte* bytes)
    {
        var device = Unsafe.As<PcapDevice>(GCHandle.FromIntPtr(user).Target);
        FrameBatch? batch = device?._current;
        if (batch is null)
        {
            return;
        }
        uint captured = header->caplen;
        int length = (int)Math.Min(captured, (uint)batch.MaxFrameBytes);
        FrameFlags flags = captured < header->len || length < captured ? FrameFlags.Truncated : FrameFlags.None;
        if (!batch.TryReserve(length, out Span<byte> destination))
        {
            // Out of bytes (several maximal frames in one batch): this frame is lost; stop for this round.
            device!._batchOverflow++;
            Interop.Pcap.pcap_breakloop(device._rawPcap);
            return;
        }
        new ReadOnlySpan<byte>(bytes, length).CopyTo(destination);
        batch.Commit(length, flags);
    }

    public bool Send(ReadOnlySpan<byte> frame)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        int written;
        fixed (byte* data = frame)
        {
            written = Interop.Pcap.pcap_inject(_rawPcap, data, (nuint)frame.Length);
        }
        if (written < 0)
        {
            _sendFailed++;
            return false;
        }
        _sent++;
        return true;
    }
}
