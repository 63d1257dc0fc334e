using System.Reflection;
using System.Runtime.InteropServices;

namespace CookieProxy.Platform;

/// <summary>
/// Native library names and the resolver that maps them to the file each OS ships. libpcap's soname
/// differs by distribution ("libpcap.so.0.8" on Debian, "libpcap.so.1" elsewhere, "libpcap.A.dylib" on
/// macOS), and "libc" is a linker script on glibc, so neither name can be left to the default probing.
/// libbpf is the runtime library (libbpf.so.1, Debian's libbpf1), not the development symlink.
/// </summary>
internal static partial class Interop
{
    internal static class Libraries
    {
        internal const string Pcap = "pcap";
        internal const string Libc = "libc";
        internal const string Libbpf = "bpf";

        /// <summary>Debian, other Linux, macOS (in the dyld shared cache: no file on disk, but dlopen finds the
        /// path), FreeBSD's base system.</summary>
        private static readonly string[] s_pcapCandidates =
        [
            "libpcap.so.0.8", "libpcap.so.1", "libpcap.so", "/usr/lib/libpcap.A.dylib", "libpcap.A.dylib", "libpcap.dylib",
            "libpcap.so.8",
        ];

        /// <summary>The library name SharpPcap imports libpcap by (its Windows name).</summary>
        private const string SharpPcapLibrary = "wpcap";

        private static int s_sharpPcapRegistered;

        private static readonly string[] s_libcCandidates =
        [
            "libc.so.6", "libc.musl-x86_64.so.1", "libc.musl-aarch64.so.1", "libc.so.7", "libSystem.dylib", "libc.so",
        ];

        private static readonly string[] s_libbpfCandidates = ["libbpf.so.1", "libbpf.so"];

        private static int s_registered;

        /// <summary>Installs the resolver once; called from the static constructors of every interop group.</summary>
        internal static void EnsureResolver()
        {
            if (Interlocked.Exchange(ref s_registered, 1) == 0)
            {
                NativeLibrary.SetDllImportResolver(typeof(Libraries).Assembly, Resolve);
            }
        }

        /// <summary>
        /// SharpPcap resolves libpcap itself (its own DllImportResolver) on Linux and macOS, but knows no FreeBSD
        /// name, and only "libpcap.dylib" on macOS. When its resolver gives up, the load context asks this handler,
        /// which tries our candidates, so SharpPcap and our own calls share the one libpcap.
        /// </summary>
        internal static void EnsureSharpPcapResolver()
        {
            if (Interlocked.Exchange(ref s_sharpPcapRegistered, 1) == 0)
            {
                System.Runtime.Loader.AssemblyLoadContext.Default.ResolvingUnmanagedDll += (assembly, name) =>
                    name == SharpPcapLibrary && assembly == typeof(SharpPcap.LibPcap.LibPcapLiveDevice).Assembly
                        ? Resolve(Pcap, assembly, null)
                        : IntPtr.Zero;
            }
        }

        private static IntPtr Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
        {
            string[]? candidates = libraryName switch
            {
                Pcap => s_pcapCandidates,
                Libc => s_libcCandidates,
                Libbpf => s_libbpfCandidates,
                _ => null,
            };
            if (candidates is null)
            {
                return IntPtr.Zero;
            }
            foreach (string candidate in candidates)
            {
                if (NativeLibrary.TryLoad(candidate, assembly, searchPath, out IntPtr handle))
                {
                    return handle;
                }
            }
            // Fall back to the runtime's own probing, which throws DllNotFoundException with its search list.
            return IntPtr.Zero;
        }
    }
}
