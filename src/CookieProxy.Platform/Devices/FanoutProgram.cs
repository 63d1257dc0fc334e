// The classic BPF program that steers a PACKET_FANOUT_CBPF group by source prefix (Linux 4.2+,
// packet(7) "PACKET_FANOUT_CBPF", set on the group with setsockopt(PACKET_FANOUT_DATA)). For N members,
// IPv4 prefix /p4, IPv6 prefix /p6 (word masks m0..m3) and seed S:
//
//        ldb  [net + 0]        A = version << 4 | IHL (IPv4) or version << 4 | traffic class (IPv6)
//        and  #0xf0
//        jeq  #0x40, v4
//        jeq  #0x60, v6
//        ret  #0               not IP (ARP, LLDP, ...): member 0
//   v6:  ld   [net + 8]        source address word 0 (IPv6 header offset 8, RFC 8200 3)
//        and  #m0
//        tax
//        ld   [net + 12]       word 1
//        and  #m1
//        xor  x                fold the masked 128 bits into 32; words whose mask is 0 are left out
//        ...
//        ja   mix
//   v4:  ld   [net + 12]       source address (IPv4 header offset 12, RFC 791 3.1)
//        and  #mask(p4)
//   mix: xor  #S
//        tax                   MurmurHash3's fmix32 finaliser (A. Appleby, public domain): a bijection
//        rsh  #16              in which every input bit reaches every output bit, so prefixes that
//        xor  x                differ only in a few bits (198.18.1.0/24, .2.0/24, ...) still spread
//        mul  #0x85ebca6b
//        tax
//        rsh  #13
//        xor  x
//        mul  #0xc2b2ae35
//        tax
//        rsh  #16
//        xor  x
//        mod  #N
//        ret  a
//
// "net + n" is an absolute load at SKF_NET_OFF + n: relative to skb_network_header(), not to skb->data
// (kernel/bpf/core.c bpf_internal_load_pointer_neg_helper). In packet_rcv_fanout skb->data is at the
// network header for received frames but at the MAC header for transmitted ones (dev_queue_xmit_nit),
// and with 802.1Q the tag is already stripped (skb_vlan_untag) before the taps run; the network header
// is right in every case. A load out of bounds ends the program with 0 (member 0): only garbage does that.
// Kernels before the 2025 fix "bpf: fix classic bpf reads from negative offset outside of linear skb
// portion" serve negative-offset loads only from the linear part of the skb; drivers pull the IP header
// into it, and our loads end at byte 24 of it.
//
// The kernel reduces the result itself: fanout_demux_bpf returns bpf_prog_run_clear_cb(prog, skb) % num
// and packet_rcv_fanout hands the frame to f->arr[idx], the members in join order (__fanout_link
// appends). The program's own "mod #N" keeps its result meaningful on its own (tests run it without a
// kernel) and is a no-op once all N members have joined; while fewer have, the kernel's % folds it.

using static CookieProxy.Platform.Interop.PacketSocket;
using Insn = CookieProxy.Platform.Interop.Pcap.bpf_insn;

namespace CookieProxy.Platform;

/// <summary>
/// Builds the PACKET_FANOUT_CBPF program for <see cref="FanoutMode.SourcePrefix"/>: pure, no kernel, no root.
/// Every frame whose masked source address is the same gets the same member, so per-source state that a
/// capture thread keeps (the per-source limiter) sees all of that source's traffic.
/// </summary>
internal static class FanoutProgram
{
    /// <summary>PACKET_FANOUT_MAX: the members a group holds unless told otherwise (fanout_add).</summary>
    public const int MaxMembers = 256;

    /// <summary>fmix32's multipliers.</summary>
    public const uint Mix1 = 0x85EBCA6B;
    public const uint Mix2 = 0xC2B2AE35;

    /// <summary>Source address offsets inside the IP headers.</summary>
    public const int Ipv4SourceOffset = 12;
    public const int Ipv6SourceOffset = 8;

    public static Insn[] Build(FanoutSteering steering)
    {
        ArgumentNullException.ThrowIfNull(steering);
        if (steering.Mode != FanoutMode.SourcePrefix)
        {
            throw new ArgumentException("Only source-prefix steering has a program; flow hash is PACKET_FANOUT_HASH.", nameof(steering));
        }

        var code = new List<Insn>(40)
        {
            Stmt(BPF_LD | BPF_B | BPF_ABS, Net(0)),
            Stmt(BPF_ALU | BPF_AND | BPF_K, 0xF0),
        };
        int isV4 = Emit(code, Stmt(BPF_JMP | BPF_JEQ | BPF_K, 0x40));
        int isV6 = Emit(code, Stmt(BPF_JMP | BPF_JEQ | BPF_K, 0x60));
        int notIp = Emit(code, Stmt(BPF_RET | BPF_K, 0));

        int v6 = code.Count;
        bool any = false;
        for (int word = 0; word < 4; word++)
        {
            uint mask = WordMask(steering.Ipv6PrefixLength - 32 * word);
            if (mask == 0)
            {
                // Prefix bits are leading bits: every later word is masked away too.
                break;
            }
            if (any)
            {
                code.Add(Stmt(BPF_MISC | BPF_TAX, 0));
            }
            code.Add(Stmt(BPF_LD | BPF_W | BPF_ABS, Net(Ipv6SourceOffset + 4 * word)));
            if (mask != uint.MaxValue)
            {
                code.Add(Stmt(BPF_ALU | BPF_AND | BPF_K, mask));
            }
            if (any)
            {
                code.Add(Stmt(BPF_ALU | BPF_XOR | BPF_X, 0));
            }
            any = true;
        }
        if (!any)
        {
            code.Add(Stmt(BPF_LD | BPF_W | BPF_IMM, 0)); // ::/0: one group
        }
        int toMix = Emit(code, Stmt(BPF_JMP | BPF_JA, 0));

        int v4 = code.Count;
        code.Add(Stmt(BPF_LD | BPF_W | BPF_ABS, Net(Ipv4SourceOffset)));
        uint mask4 = WordMask(steering.Ipv4PrefixLength);
        if (mask4 != uint.MaxValue)
        {
            code.Add(Stmt(BPF_ALU | BPF_AND | BPF_K, mask4));
        }

        int mix = code.Count;
        code.Add(Stmt(BPF_ALU | BPF_XOR | BPF_K, steering.Seed));
        XorShiftRight(code, 16);
        code.Add(Stmt(BPF_ALU | BPF_MUL | BPF_K, Mix1));
        XorShiftRight(code, 13);
        code.Add(Stmt(BPF_ALU | BPF_MUL | BPF_K, Mix2));
        XorShiftRight(code, 16);
        code.Add(Stmt(BPF_ALU | BPF_MOD | BPF_K, (uint)steering.Members));
        code.Add(Stmt(BPF_RET | BPF_A, 0));

        // Conditional jumps count instructions after the jump, in 8 bits; "ja" takes a 32-bit k.
        code[isV4] = Branch(code[isV4], isV4, jumpTrue: v4, jumpFalse: isV6);
        code[isV6] = Branch(code[isV6], isV6, jumpTrue: v6, jumpFalse: notIp);
        code[toMix] = Stmt(BPF_JMP | BPF_JA, (uint)(mix - toMix - 1));
        return code.ToArray();
    }

    /// <summary>Mask of the first <paramref name="bits"/> bits of a 32-bit word (clamped to 0..32).</summary>
    public static uint WordMask(int bits) => bits <= 0 ? 0 : bits >= 32 ? uint.MaxValue : uint.MaxValue << (32 - bits);

    /// <summary>A ^= A >> shift (X is scratch).</summary>
    private static void XorShiftRight(List<Insn> code, uint shift)
    {
        code.Add(Stmt(BPF_MISC | BPF_TAX, 0));
        code.Add(Stmt(BPF_ALU | BPF_RSH | BPF_K, shift));
        code.Add(Stmt(BPF_ALU | BPF_XOR | BPF_X, 0));
    }

    private static uint Net(int offset) => unchecked((uint)(SKF_NET_OFF + offset));

    private static Insn Stmt(int code, uint k) => new() { code = (ushort)code, k = k };

    private static int Emit(List<Insn> code, Insn instruction)
    {
        code.Add(instruction);
        return code.Count - 1;
    }

    private static Insn Branch(Insn jump, int at, int jumpTrue, int jumpFalse)
    {
        int jt = jumpTrue - at - 1;
        int jf = jumpFalse - at - 1;
        if (jt is < 0 or > byte.MaxValue || jf is < 0 or > byte.MaxValue)
        {
            throw new InvalidOperationException($"cBPF branch at {at} cannot reach {jumpTrue}/{jumpFalse}.");
        }
        jump.jt = (byte)jt;
        jump.jf = (byte)jf;
        return jump;
    }
}
