using System.Buffers.Binary;

namespace CookieProxy.Platform;

/// <summary>
/// eBPF instruction encoding (Documentation/bpf/standardization/instruction-set.rst, include/uapi/linux/bpf.h
/// and bpf_common.h). Each instruction is 8 bytes: opcode, dst_reg (low nibble) | src_reg (high nibble),
/// a signed 16-bit offset and a signed 32-bit immediate, little-endian on the little-endian hosts we run on.
/// <code>
///   opcode = operation | source (K = immediate, X = register) | class
///   class:  LD 0x00  LDX 0x01  ST 0x02  STX 0x03  ALU 0x04  JMP 0x05  JMP32 0x06  ALU64 0x07
/// </code>
/// </summary>
public static class Ebpf
{
    // Instruction classes
    public const byte BPF_LD = 0x00;
    public const byte BPF_LDX = 0x01;
    public const byte BPF_ST = 0x02;
    public const byte BPF_STX = 0x03;
    public const byte BPF_ALU = 0x04;
    public const byte BPF_JMP = 0x05;
    public const byte BPF_JMP32 = 0x06;
    public const byte BPF_ALU64 = 0x07;

    // Load sizes and modes
    public const byte BPF_W = 0x00;
    public const byte BPF_H = 0x08;
    public const byte BPF_B = 0x10;
    public const byte BPF_DW = 0x18;
    public const byte BPF_IMM = 0x00;
    public const byte BPF_MEM = 0x60;

    // Operand source
    public const byte BPF_K = 0x00;
    public const byte BPF_X = 0x08;

    // ALU operations
    public const byte BPF_ADD = 0x00;
    public const byte BPF_SUB = 0x10;
    public const byte BPF_OR = 0x40;
    public const byte BPF_AND = 0x50;
    public const byte BPF_LSH = 0x60;
    public const byte BPF_RSH = 0x70;
    public const byte BPF_XOR = 0xa0;
    public const byte BPF_MOV = 0xb0;
    /// <summary>Byte swap (class ALU); with <see cref="BPF_TO_BE"/> it converts host to network order on our
    /// little-endian hosts, immediate 16, 32 or 64 = width; 16 and 32 zero the upper bits.</summary>
    public const byte BPF_END = 0xd0;
    public const byte BPF_TO_BE = 0x08;

    // Jump operations
    public const byte BPF_JA = 0x00;
    public const byte BPF_JEQ = 0x10;
    public const byte BPF_JGT = 0x20;
    public const byte BPF_JGE = 0x30;
    public const byte BPF_JSET = 0x40;
    public const byte BPF_JNE = 0x50;
    public const byte BPF_CALL = 0x80;
    public const byte BPF_EXIT = 0x90;
    public const byte BPF_JLT = 0xa0;
    public const byte BPF_JLE = 0xb0;

    /// <summary>src_reg of the first half of an ld_imm64 whose immediate is a map fd the kernel replaces by the map.</summary>
    public const byte BPF_PSEUDO_MAP_FD = 1;

    /// <summary>Helper ids (enum bpf_func_id).</summary>
    public const int BPF_FUNC_map_lookup_elem = 1;
    public const int BPF_FUNC_redirect_map = 51;
    public const int BPF_FUNC_xdp_adjust_tail = 65;
}

/// <summary>eBPF registers: R0 return value, R1-R5 arguments (clobbered by calls), R6-R9 callee-saved, R10 frame pointer.</summary>
public enum EbpfReg : byte
{
    R0, R1, R2, R3, R4, R5, R6, R7, R8, R9, R10,
}

/// <summary>One 8-byte eBPF instruction (struct bpf_insn).</summary>
public readonly record struct EbpfInstruction(byte Opcode, EbpfReg Dst, EbpfReg Src, short Offset, int Immediate)
{
    public const int Size = 8;

    /// <summary>Writes the kernel's struct bpf_insn layout (little-endian host).</summary>
    public void WriteTo(Span<byte> destination)
    {
        destination[0] = Opcode;
        destination[1] = (byte)(((byte)Src << 4) | ((byte)Dst & 0x0f));
        BinaryPrimitives.WriteInt16LittleEndian(destination[2..], Offset);
        BinaryPrimitives.WriteInt32LittleEndian(destination[4..], Immediate);
    }

    public override string ToString() => $"{Opcode:x2} dst=r{(int)Dst} src=r{(int)Src} off={Offset} imm={Immediate}";
}

/// <summary>
/// A tiny eBPF assembler: appends instructions, with forward and backward jumps to labels resolved by
/// <see cref="Build"/>. Enough for packet parsers and rewriters with stack slots; no subprograms.
/// </summary>
public sealed class EbpfAssembler
{
    private readonly List<EbpfInstruction> _code = new();
    private readonly List<int> _labels = new();
    private readonly List<(int Index, int Label)> _fixups = new();

    /// <summary>A jump target, placed later by <see cref="Mark"/>.</summary>
    public readonly record struct Label(int Id);

    public int Count => _code.Count;

    public Label NewLabel()
    {
        _labels.Add(-1);
        return new Label(_labels.Count - 1);
    }

    /// <summary>Places <paramref name="label"/> at the next instruction.</summary>
    public void Mark(Label label)
    {
        if (_labels[label.Id] >= 0)
        {
            throw new InvalidOperationException($"label {label.Id} is already placed");
        }
        _labels[label.Id] = _code.Count;
    }

    // ---- ALU
    /// <summary>dst = imm (64-bit, sign-extended).</summary>
    public void Mov64(EbpfReg dst, int imm) => Emit(Ebpf.BPF_ALU64 | Ebpf.BPF_MOV | Ebpf.BPF_K, dst, EbpfReg.R0, 0, imm);

    /// <summary>dst = src (64-bit).</summary>
    public void Mov64(EbpfReg dst, EbpfReg src) => Emit(Ebpf.BPF_ALU64 | Ebpf.BPF_MOV | Ebpf.BPF_X, dst, src, 0, 0);

    public void Add64(EbpfReg dst, int imm) => Emit(Ebpf.BPF_ALU64 | Ebpf.BPF_ADD | Ebpf.BPF_K, dst, EbpfReg.R0, 0, imm);

    public void Add64(EbpfReg dst, EbpfReg src) => Emit(Ebpf.BPF_ALU64 | Ebpf.BPF_ADD | Ebpf.BPF_X, dst, src, 0, 0);

    public void And64(EbpfReg dst, int imm) => Emit(Ebpf.BPF_ALU64 | Ebpf.BPF_AND | Ebpf.BPF_K, dst, EbpfReg.R0, 0, imm);

    public void Lsh64(EbpfReg dst, int imm) => Emit(Ebpf.BPF_ALU64 | Ebpf.BPF_LSH | Ebpf.BPF_K, dst, EbpfReg.R0, 0, imm);

    public void Sub64(EbpfReg dst, int imm) => Emit(Ebpf.BPF_ALU64 | Ebpf.BPF_SUB | Ebpf.BPF_K, dst, EbpfReg.R0, 0, imm);

    public void Sub64(EbpfReg dst, EbpfReg src) => Emit(Ebpf.BPF_ALU64 | Ebpf.BPF_SUB | Ebpf.BPF_X, dst, src, 0, 0);

    public void And64(EbpfReg dst, EbpfReg src) => Emit(Ebpf.BPF_ALU64 | Ebpf.BPF_AND | Ebpf.BPF_X, dst, src, 0, 0);

    public void Or64(EbpfReg dst, int imm) => Emit(Ebpf.BPF_ALU64 | Ebpf.BPF_OR | Ebpf.BPF_K, dst, EbpfReg.R0, 0, imm);

    public void Or64(EbpfReg dst, EbpfReg src) => Emit(Ebpf.BPF_ALU64 | Ebpf.BPF_OR | Ebpf.BPF_X, dst, src, 0, 0);

    public void Xor64(EbpfReg dst, int imm) => Emit(Ebpf.BPF_ALU64 | Ebpf.BPF_XOR | Ebpf.BPF_K, dst, EbpfReg.R0, 0, imm);

    public void Xor64(EbpfReg dst, EbpfReg src) => Emit(Ebpf.BPF_ALU64 | Ebpf.BPF_XOR | Ebpf.BPF_X, dst, src, 0, 0);

    public void Rsh64(EbpfReg dst, int imm) => Emit(Ebpf.BPF_ALU64 | Ebpf.BPF_RSH | Ebpf.BPF_K, dst, EbpfReg.R0, 0, imm);

    /// <summary>dst = bswap(dst) over the low <paramref name="bits"/> (16, 32, 64): network order to host order
    /// and back on a little-endian host. 16 and 32 clear the bits above.</summary>
    public void Swap(EbpfReg dst, int bits)
    {
        if (bits is not (16 or 32 or 64))
        {
            throw new ArgumentOutOfRangeException(nameof(bits), bits, "16, 32 or 64");
        }
        Emit(Ebpf.BPF_ALU | Ebpf.BPF_END | Ebpf.BPF_TO_BE, dst, EbpfReg.R0, 0, bits);
    }

    /// <summary>dst = imm64 (ld_imm64: two instruction slots).</summary>
    public void LoadImm64(EbpfReg dst, ulong imm)
    {
        Emit(Ebpf.BPF_LD | Ebpf.BPF_DW | Ebpf.BPF_IMM, dst, EbpfReg.R0, 0, unchecked((int)(uint)imm));
        Emit(0, EbpfReg.R0, EbpfReg.R0, 0, unchecked((int)(uint)(imm >> 32)));
    }

    // ---- memory
    /// <summary>dst = *(size *)(src + offset); size is <see cref="Ebpf.BPF_B"/>, H, W or DW. Zero-extends.</summary>
    public void Load(byte size, EbpfReg dst, EbpfReg src, short offset) =>
        Emit((byte)(Ebpf.BPF_LDX | Ebpf.BPF_MEM | size), dst, src, offset, 0);

    /// <summary>*(size *)(dst + offset) = src.</summary>
    public void Store(byte size, EbpfReg dst, short offset, EbpfReg src) =>
        Emit((byte)(Ebpf.BPF_STX | Ebpf.BPF_MEM | size), dst, src, offset, 0);

    /// <summary>*(size *)(dst + offset) = imm (sign-extended to a DW store).</summary>
    public void Store(byte size, EbpfReg dst, short offset, int imm) =>
        Emit((byte)(Ebpf.BPF_ST | Ebpf.BPF_MEM | size), dst, EbpfReg.R0, offset, imm);

    /// <summary>dst = map (ld_imm64 with BPF_PSEUDO_MAP_FD: two instruction slots).</summary>
    public void LoadMapFd(EbpfReg dst, int mapFd)
    {
        Emit(Ebpf.BPF_LD | Ebpf.BPF_DW | Ebpf.BPF_IMM, dst, (EbpfReg)Ebpf.BPF_PSEUDO_MAP_FD, 0, mapFd);
        Emit(0, EbpfReg.R0, EbpfReg.R0, 0, 0);
    }

    // ---- jumps
    /// <summary>if (dst op imm) goto target, comparing all 64 bits (imm sign-extended).</summary>
    public void Jump(byte op, EbpfReg dst, int imm, Label target) => EmitJump(Ebpf.BPF_JMP | Ebpf.BPF_K | op, dst, EbpfReg.R0, imm, target);

    /// <summary>if (dst op src) goto target (64-bit).</summary>
    public void Jump(byte op, EbpfReg dst, EbpfReg src, Label target) => EmitJump(Ebpf.BPF_JMP | Ebpf.BPF_X | op, dst, src, 0, target);

    /// <summary>if ((u32)dst op (u32)imm) goto target: exact for any 32-bit pattern, no sign extension.</summary>
    public void Jump32(byte op, EbpfReg dst, int imm, Label target) => EmitJump(Ebpf.BPF_JMP32 | Ebpf.BPF_K | op, dst, EbpfReg.R0, imm, target);

    public void Goto(Label target) => EmitJump(Ebpf.BPF_JMP | Ebpf.BPF_JA, EbpfReg.R0, EbpfReg.R0, 0, target);

    public void Call(int helper) => Emit(Ebpf.BPF_JMP | Ebpf.BPF_CALL, EbpfReg.R0, EbpfReg.R0, 0, helper);

    public void Exit() => Emit(Ebpf.BPF_JMP | Ebpf.BPF_EXIT, EbpfReg.R0, EbpfReg.R0, 0, 0);

    /// <summary>The program with every jump offset filled in (offsets count from the instruction after the jump).</summary>
    public EbpfInstruction[] Build()
    {
        EbpfInstruction[] code = _code.ToArray();
        foreach ((int index, int label) in _fixups)
        {
            int target = _labels[label];
            if (target < 0)
            {
                throw new InvalidOperationException($"label {label} is never placed");
            }
            int offset = target - (index + 1);
            if (offset is < short.MinValue or > short.MaxValue)
            {
                throw new InvalidOperationException($"jump from {index} to {target} does not fit 16 bits");
            }
            code[index] = code[index] with { Offset = (short)offset };
        }
        return code;
    }

    /// <summary>The program as the bytes bpf(BPF_PROG_LOAD) takes.</summary>
    public static byte[] ToBytes(ReadOnlySpan<EbpfInstruction> program)
    {
        var bytes = new byte[program.Length * EbpfInstruction.Size];
        for (int i = 0; i < program.Length; i++)
        {
            program[i].WriteTo(bytes.AsSpan(i * EbpfInstruction.Size));
        }
        return bytes;
    }

    private void EmitJump(int opcode, EbpfReg dst, EbpfReg src, int imm, Label target)
    {
        _fixups.Add((_code.Count, target.Id));
        Emit((byte)opcode, dst, src, 0, imm);
    }

    private void Emit(int opcode, EbpfReg dst, EbpfReg src, short offset, int imm) =>
        _code.Add(new EbpfInstruction((byte)opcode, dst, src, offset, imm));
}
