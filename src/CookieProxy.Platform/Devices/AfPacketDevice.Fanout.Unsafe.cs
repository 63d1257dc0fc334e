using static CookieProxy.Platform.Interop.PacketSocket;
using Insn = CookieProxy.Platform.Interop.Pcap.bpf_insn;

namespace CookieProxy.Platform;

// Joining a PACKET_FANOUT group (packet(7)); kept apart from the ring and the TX path.
public sealed unsafe partial class AfPacketDevice
{
    /// <summary>
    /// Joins <paramref name="socket"/> to group <paramref name="group"/>; the socket must be bound. Without PACKET_FANOUT_FLAG_DEFRAG: with
    /// it the kernel reassembles IPv4 fragments before it picks a member (ip_check_defrag, counted in the host's
    /// IpReasmReqds), which exposes the host's reassembly queue to anyone who can send fragments to the protected
    /// port, and hands us reassembled SYNs to answer. A cookie SYN or ACK is never fragmented: each fragment
    /// reaches some member and is dropped there as DropReason.Ipv4Fragment (hostile, issue 12.5).
    /// </summary>
    /// <remarks>
    /// Source-prefix steering joins as PACKET_FANOUT_CBPF and then installs <see cref="FanoutProgram"/> with
    /// PACKET_FANOUT_DATA. The program belongs to the group, not the socket: every member installs the same
    /// one (the kernel swaps it under RCU, fanout_set_data_cbpf), so no member has to know it came first.
    /// Until the first member has installed it, fanout_demux_bpf returns member 0. Members of one group
    /// must agree on the mode: joining with another one fails with EINVAL (fanout_add).
    /// </remarks>
    internal static void JoinFanout(SafeFdHandle socket, string interfaceName, int group, FanoutSteering steering)
    {
        bool bySource = steering.Mode == FanoutMode.SourcePrefix;
        int type = bySource ? PACKET_FANOUT_CBPF : PACKET_FANOUT_HASH;
        int fanout = group | (type << 16);
        SetOption(socket, interfaceName, SOL_PACKET, PACKET_FANOUT, &fanout, sizeof(int),
            $"setsockopt(PACKET_FANOUT, {(bySource ? "PACKET_FANOUT_CBPF" : "PACKET_FANOUT_HASH")}, group {group})");
        if (!bySource)
        {
            return;
        }

        // The kernel copies the instructions (bpf_prog_create_from_user): they need not outlive the call.
        Insn[] program = FanoutProgram.Build(steering);
        fixed (Insn* instructions = program)
        {
            var fprog = new sock_fprog { len = checked((ushort)program.Length), filter = instructions };
            SetOption(socket, interfaceName, SOL_PACKET, PACKET_FANOUT_DATA, &fprog, (uint)sizeof(sock_fprog),
                $"setsockopt(PACKET_FANOUT_DATA, {program.Length}-instruction source-prefix program)");
        }
    }

    private static void SetOption(SafeFdHandle socket, string interfaceName, int level, int name, void* value, uint length, string operation)
    {
        if (setsockopt(socket, level, name, value, length) != 0)
        {
            throw Failure(interfaceName, operation, System.Runtime.InteropServices.Marshal.GetLastPInvokeError());
        }
    }
}
