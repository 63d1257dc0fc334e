// Struct and constant names keep their C spelling (STYLE.md lesson 10).
#pragma warning disable CS8981 // lower-case type names

using System.Runtime.InteropServices;

namespace CookieProxy.Platform;

/// <summary>
/// libpcap (https://www.tcpdump.org/manpages/pcap.3pcap.html). Only calls present in libpcap 1.5+ on every
/// platform are bound here, so the portable backend builds and runs on Linux, macOS and FreeBSD alike.
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

        [LibraryImport(Libraries.Pcap, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial SafePcapHandle pcap_create(string source, byte* errbuf);

        [LibraryImport(Libraries.Pcap)]
        internal static partial SafePcapHandle pcap_open_dead(int linktype, int snaplen);

        [LibraryImport(Libraries.Pcap)]
        internal static partial int pcap_set_snaplen(SafePcapHandle p, int snaplen);

        [LibraryImport(Libraries.Pcap)]
        internal static partial int pcap_set_promisc(SafePcapHandle p, int promisc);

        [LibraryImport(Libraries.Pcap)]
        internal static partial int pcap_set_immediate_mode(SafePcapHandle p, int immediate);

        [LibraryImport(Libraries.Pcap)]
        internal static partial int pcap_set_buffer_size(SafePcapHandle p, int bufferSize);

        [LibraryImport(Libraries.Pcap)]
        internal static partial int pcap_set_timeout(SafePcapHandle p, int toMs);

        [LibraryImport(Libraries.Pcap)]
        internal static partial int pcap_activate(SafePcapHandle p);

        [LibraryImport(Libraries.Pcap)]
        internal static partial int pcap_setdirection(SafePcapHandle p, int direction);

        [LibraryImport(Libraries.Pcap, StringMarshalling = StringMarshalling.Utf8)]
        internal static partial int pcap_compile(SafePcapHandle p, bpf_program* fp, string str, int optimize, uint netmask);

        [LibraryImport(Libraries.Pcap)]
        internal static partial int pcap_setfilter(SafePcapHandle p, bpf_program* fp);

        [LibraryImport(Libraries.Pcap)]
        internal static partial void pcap_freecode(bpf_program* fp);

        [LibraryImport(Libraries.Pcap)]
        internal static partial int pcap_setnonblock(SafePcapHandle p, int nonblock, byte* errbuf);

        [LibraryImport(Libraries.Pcap)]
        internal static partial int pcap_get_selectable_fd(SafePcapHandle p);

        [LibraryImport(Libraries.Pcap)]
        internal static partial int pcap_datalink(SafePcapHandle p);

        /// <summary>Hot path: blittable, the handle is passed raw (the device keeps the SafeHandle alive).</summary>
        [LibraryImport(Libraries.Pcap)]
        internal static partial int pcap_dispatch(
            IntPtr p, int cnt, delegate* unmanaged[Cdecl]<IntPtr, pcap_pkthdr*, byte*, void> callback, IntPtr user);

        [LibraryImport(Libraries.Pcap)]
        internal static partial int pcap_inject(IntPtr p, byte* buf, nuint size);

        [LibraryImport(Libraries.Pcap)]
        internal static partial int pcap_stats(SafePcapHandle p, pcap_stat* ps);

        [LibraryImport(Libraries.Pcap)]
        internal static partial void pcap_breakloop(IntPtr p);

        [LibraryImport(Libraries.Pcap)]
        internal static partial void pcap_close(IntPtr p);

        [LibraryImport(Libraries.Pcap)]
        internal static partial byte* pcap_geterr(SafePcapHandle p);

        [LibraryImport(Libraries.Pcap)]
        internal static partial byte* pcap_statustostr(int error);

        [LibraryImport(Libraries.Pcap)]
        internal static partial byte* pcap_lib_version();

        internal static string GetError(SafePcapHandle p) => Marshal.PtrToStringUTF8((IntPtr)pcap_geterr(p)) ?? "";

        internal static string StatusToString(int status) => Marshal.PtrToStringUTF8((IntPtr)pcap_statustostr(status)) ?? status.ToString();

        internal static string LibVersion() => Marshal.PtrToStringUTF8((IntPtr)pcap_lib_version()) ?? "";
    }
}
