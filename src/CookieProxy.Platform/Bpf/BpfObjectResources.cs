namespace CookieProxy.Platform;

/// <summary>
/// The compiled XDP programs (native/xdp_*.c, built by the CpCompileBpf target of this project and embedded
/// as "CookieProxy.Bpf.NAME.o"). A build for a platform without XDP may carry none.
/// </summary>
internal static class BpfObjectResources
{
    public const string SynResponder = "xdp_syn";
    public const string Redirect = "xdp_redirect";

    /// <summary>The ELF bytes of <paramref name="name"/>; throws <see cref="BpfException"/> when this build has none.</summary>
    public static byte[] Read(string name)
    {
        using Stream? stream = typeof(BpfObjectResources).Assembly.GetManifestResourceStream($"CookieProxy.Bpf.{name}.o");
        if (stream is null)
        {
            throw new BpfException($"this build of CookieProxy carries no XDP program {name} (built without clang)", 0);
        }
        var bytes = new byte[stream.Length];
        stream.ReadExactly(bytes);
        return bytes;
    }

    public static bool Has(string name) =>
        typeof(BpfObjectResources).Assembly.GetManifestResourceInfo($"CookieProxy.Bpf.{name}.o") is not null;
}
