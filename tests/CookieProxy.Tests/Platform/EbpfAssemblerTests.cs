using System.Net;
using CookieProxy.Platform;
using static CookieProxy.Platform.Ebpf;

namespace CookieProxy.Tests.Platform;

/// <summary>
/// eBPF encoding against known bytes: every expected array below is what LLVM's BPF assembler prints for the
/// instruction in the comment (<c>llvm-mc -triple bpfel -mattr=+alu32 -show-encoding</c>, LLVM 14), which
/// is also the layout of struct bpf_insn in include/uapi/linux/bpf.h.
/// </summary>
public class EbpfAssemblerTests
{
    private static byte[] Encode(Action<EbpfAssembler> emit)
    {
        var a = new EbpfAssembler();
        emit(a);
        return EbpfAssembler.ToBytes(a.Build());
    }

    public static TheoryData<string, byte[], byte[]> Known => new()
    {
        { "r0 = 2", Encode(a => a.Mov64(EbpfReg.R0, 2)), [0xb7, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00] },
        { "exit", Encode(a => a.Exit()), [0x95, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00] },
        { "r2 = *(u32 *)(r1 + 0)", Encode(a => a.Load(BPF_W, EbpfReg.R2, EbpfReg.R1, 0)), [0x61, 0x12, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00] },
        { "r6 = *(u32 *)(r1 + 16)", Encode(a => a.Load(BPF_W, EbpfReg.R6, EbpfReg.R1, 16)), [0x61, 0x16, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00] },
        { "r8 = *(u16 *)(r2 + 16)", Encode(a => a.Load(BPF_H, EbpfReg.R8, EbpfReg.R2, 16)), [0x69, 0x28, 0x10, 0x00, 0x00, 0x00, 0x00, 0x00] },
        { "r0 = *(u8 *)(r2 + 23)", Encode(a => a.Load(BPF_B, EbpfReg.R0, EbpfReg.R2, 23)), [0x71, 0x20, 0x17, 0x00, 0x00, 0x00, 0x00, 0x00] },
        { "r4 = r2", Encode(a => a.Mov64(EbpfReg.R4, EbpfReg.R2)), [0xbf, 0x24, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00] },
        { "r4 += 14", Encode(a => a.Add64(EbpfReg.R4, 14)), [0x07, 0x04, 0x00, 0x00, 0x0e, 0x00, 0x00, 0x00] },
        { "r2 += r0", Encode(a => a.Add64(EbpfReg.R2, EbpfReg.R0)), [0x0f, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00] },
        { "r0 &= 15", Encode(a => a.And64(EbpfReg.R0, 15)), [0x57, 0x00, 0x00, 0x00, 0x0f, 0x00, 0x00, 0x00] },
        { "r0 <<= 2", Encode(a => a.Lsh64(EbpfReg.R0, 2)), [0x67, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00, 0x00] },
        { "call 51", Encode(a => a.Call(BPF_FUNC_redirect_map)), [0x85, 0x00, 0x00, 0x00, 0x33, 0x00, 0x00, 0x00] },
        {
            "r1 = map_fd(253) ll",
            Encode(a => a.LoadMapFd(EbpfReg.R1, 253)),
            // llvm-mc prints "r1 = 253 ll" with src_reg 0; the map reference sets src_reg = BPF_PSEUDO_MAP_FD (1).
            [0x18, 0x11, 0x00, 0x00, 0xfd, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00]
        },
    };

    [Theory]
    [MemberData(nameof(Known))]
    public void Instruction_encodes_as_llvm_does(string assembly, byte[] actual, byte[] expected)
    {
        Assert.True(expected.SequenceEqual(actual), $"{assembly}: {Convert.ToHexString(actual)} != {Convert.ToHexString(expected)}");
    }

    [Fact]
    public void Forward_and_backward_jumps_count_from_the_next_instruction()
    {
        var a = new EbpfAssembler();
        EbpfAssembler.Label back = a.NewLabel();
        EbpfAssembler.Label forward = a.NewLabel();
        a.Mark(back);
        a.Jump(BPF_JLT, EbpfReg.R0, 20, forward);                      // 0: if r0 < 20 goto +1
        a.Jump32(BPF_JNE, EbpfReg.R7, unchecked((int)0xc0a80102), back); // 1: if w7 != 0xc0a80102 goto -2
        a.Mark(forward);
        a.Goto(back);                                                  // 2: goto -3
        a.Jump(BPF_JGT, EbpfReg.R4, EbpfReg.R3, forward);              // 3: if r4 > r3 goto -2
        byte[] bytes = EbpfAssembler.ToBytes(a.Build());

        Assert.Equal(
            "A500010014000000" // if r0 < 20 goto +1
            + "5607FEFF0201A8C0" // llvm-mc: if w7 != -1062731518 goto -2
            + "0500FDFF00000000" // goto -3
            + "2D34FEFF00000000", // if r4 > r3 goto -2
            Convert.ToHexString(bytes));
    }

    [Fact]
    public void A_jump32_jset_uses_the_jmp32_class()
    {
        // class BPF_JMP32 (0x06) | BPF_JSET (0x40) | BPF_K: 0x46 (Documentation/bpf/standardization/instruction-set.rst).
        byte[] bytes = Encode(a =>
        {
            EbpfAssembler.Label l = a.NewLabel();
            a.Jump32(BPF_JSET, EbpfReg.R0, 0xff1f, l);
            a.Mark(l);
        });
        Assert.Equal("46000000" + "1FFF0000", Convert.ToHexString(bytes));
    }

    [Fact]
    public void An_unplaced_label_is_a_bug_reported_at_build()
    {
        var a = new EbpfAssembler();
        a.Goto(a.NewLabel());
        Assert.Throws<InvalidOperationException>(() => a.Build());
    }

    [Fact]
    public void Redirect_program_ends_in_redirect_map_and_pass_paths()
    {
        EbpfInstruction[] code = XdpProgram.Build([new IPEndPoint(IPAddress.Parse("198.18.0.1"), 80)], xskMapFd: 42);
        // The pass path: r0 = XDP_PASS; exit.
        Assert.Equal(new EbpfInstruction(0xb7, EbpfReg.R0, EbpfReg.R0, 0, 2), code[^2]);
        Assert.Equal(new EbpfInstruction(0x95, EbpfReg.R0, EbpfReg.R0, 0, 0), code[^1]);
        // The redirect path: ld_imm64 r1 = map 42; r2 = r6 (rx queue); r3 = XDP_PASS; call bpf_redirect_map; exit.
        int call = Array.FindIndex(code, i => i.Opcode == 0x85);
        Assert.Equal(BPF_FUNC_redirect_map, code[call].Immediate);
        Assert.Equal(new EbpfInstruction(0x18, EbpfReg.R1, (EbpfReg)BPF_PSEUDO_MAP_FD, 0, 42), code[call - 4]);
        Assert.Equal(new EbpfInstruction(0xbf, EbpfReg.R2, EbpfReg.R6, 0, 0), code[call - 2]);
        Assert.Equal(new EbpfInstruction(0xb7, EbpfReg.R3, EbpfReg.R0, 0, 2), code[call - 1]);
        Assert.Equal(0x95, code[call + 1].Opcode);
    }

    [Fact]
    public void Endpoint_constants_are_network_order_as_a_host_load_sees_them()
    {
        EbpfInstruction[] code = XdpProgram.Build([new IPEndPoint(IPAddress.Parse("192.168.1.2"), 80)], xskMapFd: 3);
        // 192.168.1.2 read as a little-endian u32 is 0x0201a8c0; port 80 (00 50) read as a u16 is 0x5000.
        Assert.Contains(code, i => i.Opcode == 0x56 && i.Immediate == 0x0201a8c0);
        Assert.Contains(code, i => i.Opcode == 0x56 && i.Dst == EbpfReg.R8 && i.Immediate == 0x5000);
    }

    [Fact]
    public void Constants_agree_with_what_clang_emits_for_native_xdp_redirect_c()
    {
        // clang -O2 -target bpf on native/xdp_redirect.c (198.18.0.1:80, [fd00::1]:443), llvm-objdump -d:
        //   if r3 != 20480 goto ...        dport 80
        //   if r2 == 16782022 goto ...     daddr 198.18.0.1
        //   r4 &= 65311                    fragment offset mask
        //   if r3 != 47873 goto ...        dport 443
        //   if r3 != 253 goto ...          first word of fd00::1
        EbpfInstruction[] code = XdpProgram.Build(
            [new IPEndPoint(IPAddress.Parse("198.18.0.1"), 80), new IPEndPoint(IPAddress.Parse("fd00::1"), 443)], xskMapFd: 3);
        Assert.Contains(code, i => i.Dst == EbpfReg.R8 && i.Immediate == 20480);
        Assert.Contains(code, i => i.Dst == EbpfReg.R7 && i.Immediate == 16782022);
        Assert.Contains(code, i => i.Opcode == 0x46 && i.Immediate == 65311);
        Assert.Contains(code, i => i.Dst == EbpfReg.R8 && i.Immediate == 47873);
        Assert.Contains(code, i => i.Dst == EbpfReg.R0 && i.Immediate == 253);
    }

    [Fact]
    public void Any_address_endpoints_compare_only_the_port_and_the_v6_branch_exists_only_when_needed()
    {
        EbpfInstruction[] v4Only = XdpProgram.Build([new IPEndPoint(IPAddress.Any, 443)], xskMapFd: 3);
        Assert.DoesNotContain(v4Only, i => i.Opcode == 0x56 && i.Dst == EbpfReg.R7);
        Assert.DoesNotContain(v4Only, i => i.Opcode == 0x16 && i.Immediate == 0xdd86); // no "EtherType == IPv6"

        EbpfInstruction[] both = XdpProgram.Build(
            [new IPEndPoint(IPAddress.Any, 443), new IPEndPoint(IPAddress.Parse("fd00::1"), 443)], xskMapFd: 3);
        Assert.Contains(both, i => i.Opcode == 0x16 && i.Immediate == 0xdd86);
        Assert.Contains(both, i => i.Opcode == 0x56 && i.Immediate == 0x000000fd); // fd00:0000 as a host u32
    }

    [Fact]
    public void No_endpoint_is_an_argument_error()
    {
        Assert.Throws<ArgumentException>(() => XdpProgram.Build([], xskMapFd: 3));
    }
}
