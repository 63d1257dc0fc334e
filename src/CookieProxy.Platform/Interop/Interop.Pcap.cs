// Struct and constant names keep their C spelling (STYLE.md lesson 10).
#pragma warning disable CS8981 // lower-case type names

using System.Runtime.InteropServices;

namespace CookieProxy.Platform;

/// <summary>
/// libpcap (https://www.tcpdump.org/manpages/pcap.3pcap.html): the few calls we make ourselves. SharpPcap opens,
/// configures and reads the capture device; what is left here is filter compilation without a device and the calls
/// SharpPcap lacks or makes in a way the hot path cannot afford (PcapDevice's remarks). Only calls present in
/// libpcap 1.5+ on every platform, so the portable backend builds and runs on Linux, macOS and FreeBSD alike.
/// </summary>
internal static partial class Interop
{
    internal static unsafe partial class Pcap
    {
        static Pcap() => Libraries.EnsureResolver();

        internal const int PCAP_ERRBUF_SIZE = 256;
        internal const uint PCAP_NETMASK_UNKNOWN = 0xffffffff;

        internal const int PCAP_ERROR = -1;
        internal const int PCAP_ERROR_BREAK = -2;
        internal const int PCAP_ERROR_NOT_ACTIVATED = -3;
        internal const int PCAP_ERROR_ACTIVATED = -4;
        internal const int PCAP_ERROR_NO_SUCH_DEVICE = -5;
        internal const int PCAP_ERROR_RFMON_NOTSUP = -6;
        internal const int PCAP_ERROR_NOT_RFMON = -7;
        internal const int PCAP_ERROR_PERM_DENIED = -8;
        internal const int PCAP_ERROR_IFACE_NOT_UP = -9;
        internal const int PCAP_ERROR_PROMISC_PERM_DENIED = -11;

        internal const int PCAP_WARNING = 1;
        internal const int PCAP_WARNING_PROMISC_NOTSUP = 2;
        internal const int PCAP_WARNING_TSTAMP_TYPE_NOTSUP = 3;

        // pcap_direction_t
        internal const int PCAP_D_INOUT = 0;
        internal const int PCAP_D_IN = 1;
        internal const int PCAP_D_OUT = 2;

        internal const int DLT_EN10MB = 1;

        /// <summary>struct bpf_insn, identical in layout to Linux's struct sock_filter.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct bpf_insn
        {
            public ushort code;
            public byte jt;
            public byte jf;
            public uint k;
        }

        /// <summary>struct bpf_program.</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct bpf_program
        {
            public uint bf_len;
            public bpf_insn* bf_insns;
        }

        /// <summary>struct pcap_pkthdr: struct timeval is two longs on LP64 (16 bytes, padded on macOS too).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct pcap_pkthdr
        {
            public nint tv_sec;
            public nint tv_usec;
            public uint caplen;
            public uint len;
        }

        /// <summary>struct pcap_stat (non-Windows part).</summary>
        [StructLayout(LayoutKind.Sequential)]
        internal struct pcap_stat
        {
            public uint ps_recv;
            public uint ps_drop;
            public uint ps_ifdrop;
        }

        // Filter compilation without a capture handle (BpfProgram: the classic BPF AF_PACKET attaches).

        [LibraryImport(Libraries.Pcap)]
        internal static partial SafePcapHandle pcap_open_dead(int linktype, int snaplen);

        [LibraryImport(Libraries.Pcap, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int pcap_compile(SafePcapHandle p, bpf_program* fp, string str, int optimize, uint netmask);

        [LibraryImport(Libraries.Pcap)]
        internal static partial void pcap_freecode(bpf_program* fp);

        [LibraryImport(Libraries.Pcap)]
        internal static partial void pcap_close(IntPtr p);

        [LibraryImport(Libraries.Pcap)]
        internal static partial byte* pcap_geterr(SafePcapHandle p);

        // What PcapDevice does beside SharpPcap, on the pcap_t SharpPcap opened (the device keeps it alive):
        // see the remarks on PcapDevice for why each one is ours.

        [LibraryImport(Libraries.Pcap)]
        internal static partial int pcap_setdirection(IntPtr p, int direction);

        [LibraryImport(Libraries.Pcap)]
        internal static partial int pcap_get_selectable_fd(IntPtr p);

        /// <summary>Hot path: blittable, the handle is passed raw.</summary>
        [LibraryImport(Libraries.Pcap)]
        internal static partial int pcap_inject(IntPtr p, byte* buf, nuint size);

        [LibraryImport(Libraries.Pcap)]
        internal static partial int pcap_stats(IntPtr p, pcap_stat* ps);

        internal static string GetError(SafePcapHandle p) => Marshal.PtrToStringUTF8((IntPtr)pcap_geterr(p)) ?? "";

    }
}
