using System.Runtime.InteropServices;
using System.Runtime.Versioning;

namespace CookieProxy.Platform;

/// <summary>
/// Gives the whole pages inside a pinned array back to the kernel (Linux madvise MADV_DONTNEED) while the array
/// stays allocated: the pages read as zero afterwards and cost no memory until written again. The flow table's
/// ring pool uses it for the free arrays it keeps beyond its hot few, so a burst of connections leaves no resident
/// memory behind and the next burst still reuses the same arrays (no new allocation, no GC).
/// </summary>
/// <remarks>
/// Only for arrays on the pinned object heap (<c>GC.AllocateArray(n, pinned: true)</c>): the GC never moves them,
/// and it never reads their payload (a byte array holds no references). The object header and the array's length
/// sit before the first whole page and are never touched. MADV_DONTNEED on a private anonymous mapping (the GC
/// heap) zero-fills on the next touch; other systems' MADV_FREE keeps old contents until reclaimed, so they do not
/// qualify and <see cref="IsSupported"/> is false there.
/// </remarks>
public static unsafe class PinnedPages
{
    private static readonly nuint s_pageSize = (nuint)Environment.SystemPageSize;

    /// <summary>True where <see cref="TryDecommit"/> can work (Linux).</summary>
    public static bool IsSupported => OperatingSystem.IsLinux();

    /// <summary>
    /// Frees the whole pages of <c>array[0..length)</c> and zeroes the bytes of that range on the partial pages at
    /// either end, so all of it reads as zero afterwards. False (and nothing changed) where unsupported or when
    /// the kernel refused; the caller then clears the range itself.
    /// </summary>
    public static bool TryDecommit(byte[] array, int length)
    {
        ArgumentNullException.ThrowIfNull(array);
        ArgumentOutOfRangeException.ThrowIfNegative(length);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(length, array.Length);
        if (!OperatingSystem.IsLinux())
        {
            return false;
        }
        if (length == 0)
        {
            return true;
        }
        return Decommit(array, length);
    }

    [SupportedOSPlatform("linux")]
    private static bool Decommit(byte[] array, int length)
    {
        // The array is pinned (POH): its address is stable without a fixed statement, which is taken anyway.
        fixed (byte* start = &MemoryMarshal.GetArrayDataReference(array))
        {
            nuint begin = (nuint)start;
            nuint end = begin + (nuint)length;
            nuint firstPage = (begin + s_pageSize - 1) & ~(s_pageSize - 1);
            nuint lastPage = end & ~(s_pageSize - 1);
            if (lastPage > firstPage)
            {
                if (Interop.Memory.madvise((void*)firstPage, lastPage - firstPage, Interop.Memory.MADV_DONTNEED) != 0)
                {
                    return false;
                }
                array.AsSpan(0, (int)(firstPage - begin)).Clear();
                array.AsSpan((int)(lastPage - begin), (int)(end - lastPage)).Clear();
            }
            else
            {
                array.AsSpan(0, length).Clear();    // less than a page: nothing to give back
            }
        }
        return true;
    }
}
