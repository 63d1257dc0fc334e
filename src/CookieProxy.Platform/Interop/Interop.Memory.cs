// Struct and constant names keep their C spelling (STYLE.md lesson 10).
#pragma warning disable CS8981 // lower-case type names

using System.Runtime.InteropServices;

namespace CookieProxy.Platform;

internal static partial class Interop
{
    /// <summary>madvise(2): giving a range of anonymous memory back to the kernel while keeping the mapping.</summary>
    internal static unsafe partial class Memory
    {
        static Memory() => Libraries.EnsureResolver();

        /// <summary>Linux: the pages of a private anonymous mapping are freed now; the next touch maps fresh zero pages.</summary>
        internal const int MADV_DONTNEED = 4;

        [LibraryImport(Libraries.Libc, SetLastError = true)]
        internal static partial int madvise(void* addr, nuint length, int advice);
    }
}
