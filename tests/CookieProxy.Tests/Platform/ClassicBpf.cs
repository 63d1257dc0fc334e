using System.Buffers.Binary;
using CookieProxy.Platform;
using static CookieProxy.Platform.Interop.PacketSocket;
using Insn = CookieProxy.Platform.Interop.Pcap.bpf_insn;

namespace CookieProxy.Tests.Platform;

/// <summary>
/// A classic BPF interpreter for the instructions <see cref="FanoutProgram"/> emits, with the kernel's rules:
/// 32-bit unsigned A and X, forward jumps only, a load out of bounds ends the program with 0
/// (net/core/filter.c convert_bpf_ld_abs), and loads at SKF_NET_OFF + n read byte n of the network header.
/// The packet given here starts at that header. Anything else (a positive offset, i.e. relative to
/// skb->data, or an opcode the builder should not emit) throws, so the test sees it.
/// </summary>
internal static class ClassicBpf
{
    /// <summary>Checks what bpf_check_classic (net/core/filter.c) would reject, as far as our opcodes go.</summary>
    public static void Validate(ReadOnlySpan<Insn> program)
    {
        Assert.InRange(program.Length, 1, BPF_MAXINSNS);
        for (int pc = 0; pc < program.Length; pc++)
        {
            Insn i = program[pc];
            switch (i.code)
            {
                case BPF_JMP | BPF_JA:
                    Assert.True(i.k < program.Length - pc - 1, $"ja at {pc} jumps out of the program");
                    break;
                case BPF_JMP | BPF_JEQ | BPF_K:
                    Assert.True(pc + 1 + i.jt < program.Length && pc + 1 + i.jf < program.Length, $"jeq at {pc} jumps out of the program");
                    break;
                case BPF_ALU | BPF_MOD | BPF_K:
                    Assert.True(i.k != 0, $"mod #0 at {pc}");
                    break;
            }
        }
        Insn last = program[^1];
        Assert.True(last.code is (BPF_RET | BPF_K) or (BPF_RET | BPF_A), "the last instruction must be a return");
    }

    public static uint Run(ReadOnlySpan<Insn> program, ReadOnlySpan<byte> networkHeader)
    {
        uint a = 0, x = 0;
        for (int pc = 0; pc < program.Length; pc++)
        {
            Insn i = program[pc];
            switch (i.code)
            {
                case BPF_LD | BPF_B | BPF_ABS:
                    if (!TryOffset(i.k, 1, networkHeader.Length, out int b))
                    {
                        return 0;
                    }
                    a = networkHeader[b];
                    break;
                case BPF_LD | BPF_W | BPF_ABS:
                    if (!TryOffset(i.k, 4, networkHeader.Length, out int w))
                    {
                        return 0;
                    }
                    a = BinaryPrimitives.ReadUInt32BigEndian(networkHeader[w..]);
                    break;
                case BPF_LD | BPF_W | BPF_IMM:
                    a = i.k;
                    break;
                case BPF_MISC | BPF_TAX:
                    x = a;
                    break;
                case BPF_ALU | BPF_AND | BPF_K:
                    a &= i.k;
                    break;
                case BPF_ALU | BPF_XOR | BPF_K:
                    a ^= i.k;
                    break;
                case BPF_ALU | BPF_XOR | BPF_X:
                    a ^= x;
                    break;
                case BPF_ALU | BPF_MUL | BPF_K:
                    a = unchecked(a * i.k);
                    break;
                case BPF_ALU | BPF_RSH | BPF_K:
                    a >>= (int)i.k;
                    break;
                case BPF_ALU | BPF_MOD | BPF_K:
                    a %= i.k;
                    break;
                case BPF_JMP | BPF_JA:
                    pc += (int)i.k;
                    break;
                case BPF_JMP | BPF_JEQ | BPF_K:
                    pc += a == i.k ? i.jt : i.jf;
                    break;
                case BPF_RET | BPF_K:
                    return i.k;
                case BPF_RET | BPF_A:
                    return a;
                default:
                    throw new InvalidOperationException($"opcode 0x{i.code:x4} at {pc} is not one FanoutProgram should emit");
            }
        }
        throw new InvalidOperationException("ran off the end of the program");
    }

    private static bool TryOffset(uint k, int size, int length, out int offset)
    {
        int signed = unchecked((int)k);
        if (signed is >= 0 or < SKF_NET_OFF)
        {
            throw new InvalidOperationException($"load at k={signed}: only SKF_NET_OFF-relative loads work wherever skb->data points");
        }
        offset = signed - SKF_NET_OFF;
        return offset + size <= length;
    }
}
