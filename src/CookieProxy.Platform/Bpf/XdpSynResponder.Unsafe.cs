using System.Buffers.Binary;
using System.Runtime.Versioning;
using static CookieProxy.Platform.Interop.Bpf;

namespace CookieProxy.Platform;

/// <summary>What the XDP SYN responder has done, summed over CPUs.</summary>
public readonly record struct XdpSynCounters(long SynAckSent, long SynPassed, long InternalErrors);

/// <summary>
/// The loaded <see cref="XdpSynProgram"/> with its two maps: the config (SipHash state and time slot) and the
/// per-CPU counters. <see cref="Attach"/> puts it on an interface; disposing detaches it (the BPF link is the
/// process's: a crash detaches it as well, and SYNs then reach the user-space responder again).
/// </summary>
[SupportedOSPlatform("linux")]
public sealed unsafe class XdpSynResponder : IDisposable
{
    private readonly SafeFdHandle _config;
    private readonly SafeFdHandle _counters;
    private readonly SafeFdHandle _program;
    private readonly ulong _k0;
    private readonly ulong _k1;
    private readonly int _cpus;
    private SafeFdHandle? _link;
    private uint _slot;

    private XdpSynResponder(string interfaceName, SafeFdHandle config, SafeFdHandle counters, SafeFdHandle program,
        int instructions, ulong k0, ulong k1, uint slot)
    {
        InterfaceName = interfaceName;
        _config = config;
        _counters = counters;
        _program = program;
        InstructionCount = instructions;
        _k0 = k0;
        _k1 = k1;
        _slot = slot;
        _cpus = PossibleCpus();
    }

    public string InterfaceName { get; }

    public int InstructionCount { get; }

    public XdpAttachMode? Mode { get; private set; }

    /// <summary>Creates the maps, fills the config for the key (k0, k1) and <paramref name="slot"/>, and loads
    /// the program (the verifier's log is in the exception if it refuses). Not attached yet.</summary>
    public static XdpSynResponder Load(string interfaceName, XdpSynSettings settings, ulong k0, ulong k1, uint slot)
    {
        SafeFdHandle? config = null, counters = null;
        try
        {
            config = BpfObjects.CreateMap(interfaceName, BPF_MAP_TYPE_ARRAY, sizeof(uint), XdpSynProgram.ConfigValueSize, 1, "cp_syn_config", "ARRAY");
            counters = BpfObjects.CreateMap(interfaceName, BPF_MAP_TYPE_PERCPU_ARRAY, sizeof(uint), 8 * XdpSynProgram.CounterSlots, 1, "cp_syn_counters", "PERCPU_ARRAY");
            BpfObjects.UpdateMap(interfaceName, config, 0, XdpSynProgram.ConfigValue(k0, k1, slot), "config");
            EbpfInstruction[] code = XdpSynProgram.Build(settings, config.Fd, counters.Fd);
            SafeFdHandle program = BpfObjects.LoadProgram(interfaceName, code, "cp_xdp_syn");
            return new XdpSynResponder(interfaceName, config, counters, program, code.Length, k0, k1, slot);
        }
        catch
        {
            config?.Dispose();
            counters?.Dispose();
            throw;
        }
    }

    /// <summary>Attaches to the interface: SKB (generic) mode works on any device, after RPS; native mode needs
    /// driver support.</summary>
    public void Attach(XdpAttachMode mode)
    {
        if (_link is not null)
        {
            throw new InvalidOperationException("already attached");
        }
        int ifindex = (int)Interop.PacketSocket.if_nametoindex(InterfaceName);
        if (ifindex == 0)
        {
            throw new PacketDeviceException(InterfaceName, $"xdp: no such interface '{InterfaceName}'", Interop.PacketSocket.ENODEV);
        }
        _link = BpfObjects.AttachXdp(InterfaceName, _program, ifindex, mode);
        Mode = mode;
    }

    /// <summary>Moves the cookie clock on. Cheap to call often: the map is written only when the slot changes.
    /// Called from one thread (the host's timer).</summary>
    public void SetSlot(uint slot)
    {
        if (slot == _slot)
        {
            return;
        }
        BpfObjects.UpdateMap(InterfaceName, _config, 0, XdpSynProgram.ConfigValue(_k0, _k1, slot), "config");
        _slot = slot;
    }

    public XdpSynCounters ReadCounters()
    {
        Span<byte> values = new byte[8 * XdpSynProgram.CounterSlots * _cpus];
        BpfObjects.LookupMap(InterfaceName, _counters, 0, values, "counters");
        Span<long> sums = stackalloc long[XdpSynProgram.CounterSlots];
        for (int cpu = 0; cpu < _cpus; cpu++)
        {
            for (int c = 0; c < XdpSynProgram.CounterSlots; c++)
            {
                sums[c] += (long)BinaryPrimitives.ReadUInt64LittleEndian(values.Slice((cpu * XdpSynProgram.CounterSlots + c) * 8));
            }
        }
        return new XdpSynCounters(sums[XdpSynProgram.CounterSynAckSent], sums[XdpSynProgram.CounterSynPassed], sums[XdpSynProgram.CounterInternalError]);
    }

    /// <summary>Runs the program once on <paramref name="frame"/> (BPF_PROG_TEST_RUN): the XDP action and the
    /// frame as it left it. Counters count these runs too.</summary>
    public int TestRun(ReadOnlySpan<byte> frame, out byte[] output)
    {
        var buffer = new byte[frame.Length + 256];
        int action = BpfObjects.TestRun(InterfaceName, _program, frame, buffer, out int length);
        output = buffer.AsSpan(0, length).ToArray();
        return action;
    }

    /// <summary>/sys/devices/system/cpu/possible ("0-3" or "0,2-5"): per-CPU map values come one per possible CPU.</summary>
    internal static int PossibleCpus()
    {
        string text;
        try
        {
            text = File.ReadAllText("/sys/devices/system/cpu/possible").Trim();
        }
        catch (IOException)
        {
            return Environment.ProcessorCount;
        }
        int highest = 0;
        foreach (string part in text.Split(','))
        {
            string last = part.Contains('-') ? part[(part.IndexOf('-') + 1)..] : part;
            if (int.TryParse(last, out int cpu))
            {
                highest = Math.Max(highest, cpu);
            }
        }
        return highest + 1;
    }

    public void Dispose()
    {
        _link?.Dispose();
        _link = null;
        _program.Dispose();
        _config.Dispose();
        _counters.Dispose();
    }
}
