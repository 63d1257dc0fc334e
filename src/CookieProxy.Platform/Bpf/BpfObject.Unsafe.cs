using System.Runtime.InteropServices;
using System.Runtime.Versioning;
using System.Text;
using static CookieProxy.Platform.Interop.Libbpf;

namespace CookieProxy.Platform;

/// <summary>A libbpf call failed: the message names the step and carries libbpf's own words (and, for a
/// program the kernel refused, the verifier's log).</summary>
public sealed class BpfException : Exception
{
    public BpfException(string message, int errno)
        : base(message)
    {
        Errno = errno;
    }

    /// <summary>The positive errno libbpf reported (0 when none).</summary>
    public int Errno { get; }
}

/// <summary>Owns a <c>struct bpf_object *</c>: bpf_object__close frees it and closes its program and map fds.</summary>
internal sealed class SafeBpfObjectHandle : SafeHandle
{
    public SafeBpfObjectHandle()
        : base(IntPtr.Zero, ownsHandle: true)
    {
    }

    public override bool IsInvalid => handle == IntPtr.Zero;

    internal void Set(nint obj) => SetHandle(obj);

    protected override bool ReleaseHandle()
    {
        bpf_object__close(handle);
        return true;
    }
}

/// <summary>
/// A BPF ELF object opened from memory and loaded through libbpf: maps are created (after the host has
/// sized them with <see cref="BpfObjectMap.SetMaxEntries"/>), the programs verified, each with a log buffer whose
/// text ends up in the exception when the verifier refuses, or in <see cref="BpfObjectProgram.Log"/> when asked
/// for statistics. Disposing closes every fd of the object, which detaches nothing by itself: attachments
/// are BPF links of their own (<see cref="XdpAttachment"/>).
/// </summary>
[SupportedOSPlatform("linux")]
internal sealed unsafe class BpfObject : IDisposable
{
    private const int LogBytes = 1 << 20;

    private readonly SafeBpfObjectHandle _handle;
    private readonly Dictionary<string, BpfObjectProgram> _programs = new(StringComparer.Ordinal);
    private readonly Dictionary<string, BpfObjectMap> _maps = new(StringComparer.Ordinal);
    private byte* _elf;
    private bool _loaded;

    private BpfObject(string name, SafeBpfObjectHandle handle, byte* elf)
    {
        Name = name;
        _handle = handle;
        _elf = elf;
    }

    public string Name { get; }

    /// <summary>bpf_object__open_mem on a copy of <paramref name="elf"/> that lives as long as the object
    /// (libelf reads the buffer in place).</summary>
    public static BpfObject Open(ReadOnlySpan<byte> elf, string name)
    {
        byte* copy = (byte*)NativeMemory.Alloc((nuint)elf.Length);
        elf.CopyTo(new Span<byte>(copy, elf.Length));
        byte[] objectName = Encoding.UTF8.GetBytes(name + "\0");
        var handle = new SafeBpfObjectHandle();
        using (LibbpfLog.Capture(out StringBuilder log))
        {
            fixed (byte* n = objectName)
            {
                var opts = new bpf_object_open_opts { sz = (nuint)sizeof(bpf_object_open_opts), object_name = n };
                nint obj = bpf_object__open_mem(copy, (nuint)elf.Length, &opts);
                if (obj == 0)
                {
                    int errno = Marshal.GetLastPInvokeError();
                    NativeMemory.Free(copy);
                    handle.Dispose();
                    throw Failure($"libbpf could not open the BPF object {name}", errno, log.ToString());
                }
                handle.Set(obj);
            }
        }
        return new BpfObject(name, handle, copy);
    }

    /// <summary>Opens the embedded object <paramref name="resource"/> and hands it to <paramref name="build"/>, which
    /// sizes its maps, loads it, fills them and returns the owner of the object. Any failure closes the object and
    /// becomes the device error the host reports in one line (a verifier refusal, or libbpf missing).</summary>
    public static T OpenEmbedded<T>(string interfaceName, string resource, Func<BpfObject, T> build)
    {
        BpfObject? obj = null;
        try
        {
            obj = Open(BpfObjectResources.Read(resource), resource);
            return build(obj);
        }
        catch (BpfException e)
        {
            obj?.Dispose();
            throw new PacketDeviceException(interfaceName, $"xdp: {e.Message}", e.Errno, e);
        }
        catch (DllNotFoundException e)
        {
            obj?.Dispose();
            throw new PacketDeviceException(interfaceName, $"xdp: libbpf is not installed (install libbpf1): {e.Message}", 0, e);
        }
        catch
        {
            obj?.Dispose();
            throw;
        }
    }

    public BpfObjectProgram Program(string name)
    {
        if (!_programs.TryGetValue(name, out BpfObjectProgram? program))
        {
            nint p = bpf_object__find_program_by_name(Obj, name);
            if (p == 0)
            {
                throw new BpfException($"the BPF object {Name} has no program {name}", 0);
            }
            program = new BpfObjectProgram(this, name, p);
            _programs.Add(name, program);
        }
        return program;
    }

    public BpfObjectMap Map(string name)
    {
        if (!_maps.TryGetValue(name, out BpfObjectMap? map))
        {
            nint m = bpf_object__find_map_by_name(Obj, name);
            if (m == 0)
            {
                throw new BpfException($"the BPF object {Name} has no map {name}", 0);
            }
            map = new BpfObjectMap(this, name, m);
            _maps.Add(name, map);
        }
        return map;
    }

    /// <summary>bpf_object__load: creates the maps and loads the programs. Each program looked up with
    /// <see cref="Program"/> gets a log buffer (level 0 = only on failure, which libbpf then repeats at
    /// level 1).</summary>
    public void Load()
    {
        ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
        if (_loaded)
        {
            throw new InvalidOperationException($"{Name} is loaded already");
        }
        foreach (BpfObjectProgram program in _programs.Values)
        {
            program.PrepareLog(LogBytes);
        }
        int rc;
        string libbpf;
        using (LibbpfLog.Capture(out StringBuilder log))
        {
            rc = bpf_object__load(Obj);
            libbpf = log.ToString();
        }
        foreach (BpfObjectProgram program in _programs.Values)
        {
            program.CollectLog();
        }
        if (rc != 0)
        {
            string verifier = string.Join("\n", _programs.Values.Where(p => p.Log.Length > 0).Select(p => $"{p.Name}:\n{p.Log}"));
            throw Failure($"libbpf could not load the BPF object {Name}", -rc, libbpf + (verifier.Length > 0 ? "\nverifier log:\n" + verifier : ""));
        }
        _loaded = true;
    }

    public bool IsLoaded => _loaded;

    internal nint Obj
    {
        get
        {
            ObjectDisposedException.ThrowIf(_handle.IsClosed, this);
            return _handle.DangerousGetHandle();
        }
    }

    internal static BpfException Failure(string what, int errno, string log)
    {
        string reason = errno > 0 ? $": {Marshal.GetPInvokeErrorMessage(errno)} (errno {errno})" : "";
        string hint = errno switch
        {
            Interop.Libc.EPERM or Interop.Libc.EACCES when !log.Contains("verifier log", StringComparison.Ordinal)
                => " (BPF needs root: CAP_BPF or CAP_SYS_ADMIN to load, CAP_NET_ADMIN to attach)",
            Interop.Bpf.ENOSYS => " (kernel without the bpf system call: CONFIG_BPF_SYSCALL)",
            _ => "",
        };
        string text = log.Trim();
        return new BpfException($"{what}{reason}{hint}{(text.Length > 0 ? "\n" + Tail(text, 6000) : "")}", errno);
    }

    private static string Tail(string text, int max) => text.Length <= max ? text : "..." + text[^max..];

    public void Dispose()
    {
        _handle.Dispose();
        foreach (BpfObjectProgram program in _programs.Values)
        {
            program.FreeLog();
        }
        if (_elf is not null)
        {
            NativeMemory.Free(_elf);
            _elf = null;
        }
    }
}

/// <summary>A program of a <see cref="BpfObject"/>.</summary>
[SupportedOSPlatform("linux")]
internal sealed unsafe class BpfObjectProgram
{
    private readonly BpfObject _owner;
    private readonly nint _program;
    private byte* _log;
    private uint _logLevel;

    internal BpfObjectProgram(BpfObject owner, string name, nint program)
    {
        _owner = owner;
        Name = name;
        _program = program;
    }

    public string Name { get; }

    /// <summary>What the verifier wrote: its statistics after <see cref="SetLogLevel"/>(BPF_LOG_STATS), the
    /// refusal otherwise; "" when it had nothing to say.</summary>
    public string Log { get; private set; } = "";

    /// <summary>Before load: the verifier log level (Interop.Libbpf.BPF_LOG_*).</summary>
    public void SetLogLevel(uint level) => _logLevel = level;

    /// <summary>The program fd (after load; closed with the object).</summary>
    public int Fd
    {
        get
        {
            _ = _owner.Obj;
            int fd = bpf_program__fd(_program);
            if (fd < 0)
            {
                throw new InvalidOperationException($"{Name} is not loaded");
            }
            return fd;
        }
    }

    /// <summary>BPF_PROG_TEST_RUN once on <paramref name="frame"/>: the XDP action, and the frame as the
    /// program left it in <paramref name="output"/> (<paramref name="outputLength"/> bytes).</summary>
    public int TestRun(ReadOnlySpan<byte> frame, Span<byte> output, out int outputLength)
    {
        fixed (byte* input = frame)
        fixed (byte* outputBuffer = output)
        {
            var opts = new bpf_test_run_opts
            {
                sz = (nuint)sizeof(bpf_test_run_opts),
                data_in = input,
                data_size_in = (uint)frame.Length,
                data_out = outputBuffer,
                data_size_out = (uint)output.Length,
                repeat = 1,
            };
            int rc = bpf_prog_test_run_opts(Fd, &opts);
            if (rc != 0)
            {
                throw BpfObject.Failure($"BPF_PROG_TEST_RUN of {Name}", -rc, "");
            }
            outputLength = (int)opts.data_size_out;
            return (int)opts.retval;
        }
    }

    internal void PrepareLog(int bytes)
    {
        _log = (byte*)NativeMemory.AllocZeroed((nuint)bytes);
        bpf_program__set_log_buf(_program, _log, (nuint)bytes);
        bpf_program__set_log_level(_program, _logLevel);
    }

    internal void CollectLog()
    {
        if (_log is not null)
        {
            Log = (Marshal.PtrToStringUTF8((nint)_log) ?? "").Trim();
            // The object keeps the pointer: it must outlive it, so it is freed with the object.
        }
    }

    internal void FreeLog()
    {
        if (_log is not null)
        {
            NativeMemory.Free(_log);
            _log = null;
        }
    }
}

/// <summary>A map of a <see cref="BpfObject"/>: sized before load, read and written through its fd after.</summary>
[SupportedOSPlatform("linux")]
internal sealed unsafe class BpfObjectMap
{
    private readonly BpfObject _owner;
    private readonly nint _map;

    internal BpfObjectMap(BpfObject owner, string name, nint map)
    {
        _owner = owner;
        Name = name;
        _map = map;
    }

    public string Name { get; }

    public int KeySize => (int)bpf_map__key_size(_map);

    public int ValueSize => (int)bpf_map__value_size(_map);

    public int Fd
    {
        get
        {
            _ = _owner.Obj;
            return bpf_map__fd(_map);
        }
    }

    /// <summary>Before load: the number of entries the kernel allocates.</summary>
    public void SetMaxEntries(uint entries)
    {
        int rc = bpf_map__set_max_entries(_map, entries);
        if (rc != 0)
        {
            throw BpfObject.Failure($"bpf_map__set_max_entries({Name}, {entries})", -rc, "");
        }
    }

    /// <summary>Throws unless the map's key and value are exactly the sizes of the C# mirrors (the ABI in
    /// native/cp_xdp.h changed on one side only). <paramref name="valueSize"/> is per CPU for per-CPU maps.</summary>
    public void RequireLayout(int keySize, int valueSize)
    {
        if (KeySize != keySize || ValueSize != valueSize)
        {
            throw new BpfException($"map {Name} of {_owner.Name}: key {KeySize} / value {ValueSize} bytes in the object, "
                + $"{keySize} / {valueSize} in CookieProxy.Platform (native/cp_xdp.h and Bpf/XdpMaps.cs disagree)", 0);
        }
    }

    /// <summary>bpf_map_update_elem; the errno on failure (0 on success). Hot-path safe: no allocation.</summary>
    public int TryUpdate<TKey, TValue>(in TKey key, in TValue value, ulong flags = Interop.Bpf.BPF_ANY)
        where TKey : unmanaged
        where TValue : unmanaged
    {
        fixed (TKey* k = &key)
        fixed (TValue* v = &value)
        {
            int rc = bpf_map_update_elem(Fd, k, v, flags);
            return rc == 0 ? 0 : -rc;
        }
    }

    public void Update<TKey, TValue>(in TKey key, in TValue value, ulong flags = Interop.Bpf.BPF_ANY)
        where TKey : unmanaged
        where TValue : unmanaged
    {
        int errno = TryUpdate(key, value, flags);
        if (errno != 0)
        {
            throw BpfObject.Failure($"bpf_map_update_elem({Name})", errno, "");
        }
    }

    /// <summary>bpf_map_delete_elem; the errno on failure (ENOENT when absent), 0 on success.</summary>
    public int TryDelete<TKey>(in TKey key)
        where TKey : unmanaged
    {
        fixed (TKey* k = &key)
        {
            int rc = bpf_map_delete_elem(Fd, k);
            return rc == 0 ? 0 : -rc;
        }
    }

    /// <summary>bpf_map_lookup_elem into <paramref name="value"/> (for a per-CPU map: one value per possible
    /// CPU, each rounded up to 8 bytes). False when the key is absent.</summary>
    public bool Lookup<TKey>(in TKey key, Span<byte> value)
        where TKey : unmanaged
    {
        fixed (TKey* k = &key)
        fixed (byte* v = value)
        {
            int rc = bpf_map_lookup_elem(Fd, k, v);
            if (rc == 0)
            {
                return true;
            }
            if (-rc == Interop.Bpf.ENOENT)
            {
                return false;
            }
            throw BpfObject.Failure($"bpf_map_lookup_elem({Name})", -rc, "");
        }
    }

    public bool Lookup<TKey, TValue>(in TKey key, out TValue value)
        where TKey : unmanaged
        where TValue : unmanaged
    {
        value = default;
        return Lookup(key, MemoryMarshal.AsBytes(new Span<TValue>(ref value)));
    }
}

/// <summary>
/// libbpf's messages (libbpf_set_print, which is process-wide) go to the thread that made the call while it
/// holds a <see cref="Capture"/>, and nowhere otherwise (libbpf's default prints to stderr).
/// </summary>
[SupportedOSPlatform("linux")]
internal static unsafe class LibbpfLog
{
    [ThreadStatic]
    private static StringBuilder? t_capture;

    private static int s_installed;

    public static Scope Capture(out StringBuilder log)
    {
        if (Interlocked.Exchange(ref s_installed, 1) == 0)
        {
            libbpf_set_print(&Print);
        }
        log = new StringBuilder();
        StringBuilder? previous = t_capture;
        t_capture = log;
        return new Scope(previous);
    }

    [UnmanagedCallersOnly(CallConvs = [typeof(System.Runtime.CompilerServices.CallConvCdecl)])]
    private static int Print(int level, byte* format, nint args)
    {
        StringBuilder? log = t_capture;
        if (log is null || level > LIBBPF_INFO)
        {
            return 0;
        }
        const int Size = 4096;
        byte* buffer = stackalloc byte[Size];
        int n = vsnprintf(buffer, Size, format, args);
        if (n > 0)
        {
            log.Append(Encoding.UTF8.GetString(buffer, Math.Min(n, Size - 1)));
        }
        return 0;
    }

    public readonly struct Scope : IDisposable
    {
        private readonly StringBuilder? _previous;

        internal Scope(StringBuilder? previous) => _previous = previous;

        public void Dispose() => t_capture = _previous;
    }
}
