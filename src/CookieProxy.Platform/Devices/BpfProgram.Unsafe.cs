namespace CookieProxy.Platform;

/// <summary>
/// A pcap filter compiled to classic BPF without a capture handle (pcap_open_dead + pcap_compile): works
/// without root, and gives the AF_PACKET backend a program for SO_ATTACH_FILTER with no BPF assembler of our own.
/// </summary>
internal sealed unsafe class BpfProgram : IDisposable
{
    private readonly SafePcapHandle _dead;
    private Interop.Pcap.bpf_program _program;

    private BpfProgram(SafePcapHandle dead, Interop.Pcap.bpf_program program)
    {
        _dead = dead;
        _program = program;
    }

    public int InstructionCount => (int)_program.bf_len;

    public Interop.Pcap.bpf_insn* Instructions => _program.bf_insns;

    /// <summary>Compiles for Ethernet (DLT_EN10MB), optimised, netmask unknown.</summary>
    public static BpfProgram Compile(string filter, int snapLength = 65535, string interfaceName = "")
    {
        ArgumentNullException.ThrowIfNull(filter);
        SafePcapHandle dead;
        try
        {
            dead = Interop.Pcap.pcap_open_dead(Interop.Pcap.DLT_EN10MB, snapLength);
        }
        catch (DllNotFoundException e)
        {
            throw new PacketDeviceException(interfaceName, $"libpcap is needed to compile the capture filter but is not installed: {e.Message}", innerException: e);
        }
        if (dead.IsInvalid)
        {
            dead.Dispose();
            throw new PacketDeviceException(interfaceName, "pcap_open_dead failed (out of memory?)");
        }
        Interop.Pcap.bpf_program program;
        if (Interop.Pcap.pcap_compile(dead, &program, filter, 1, Interop.Pcap.PCAP_NETMASK_UNKNOWN) != 0)
        {
            string error = Interop.Pcap.GetError(dead);
            dead.Dispose();
            string where = interfaceName.Length == 0 ? "" : $" for '{interfaceName}'";
            throw new PacketDeviceException(interfaceName, $"Invalid capture filter \"{filter}\"{where}: {error}", Interop.Pcap.PCAP_ERROR);
        }
        return new BpfProgram(dead, program);
    }

    /// <summary>The instructions as (code, jt, jf, k) tuples, for tests and diagnostics.</summary>
    public Interop.Pcap.bpf_insn[] ToArray() => new ReadOnlySpan<Interop.Pcap.bpf_insn>(_program.bf_insns, (int)_program.bf_len).ToArray();

    public void Dispose()
    {
        if (_program.bf_insns != null)
        {
            fixed (Interop.Pcap.bpf_program* p = &_program)
            {
                Interop.Pcap.pcap_freecode(p);
            }
            _program = default;
        }
        _dead.Dispose();
    }
}
