using System.Buffers.Binary;
using System.Net;
using static CookieProxy.Platform.Ebpf;

namespace CookieProxy.Platform;

/// <summary>What the XDP SYN responder answers with; the same values <c>SynResponder</c> uses.</summary>
/// <param name="Endpoints">The protected endpoints (the same set the capture filter matches).</param>
/// <param name="MssV4">MSS in the SYN+ACK over IPv4 (<c>ResponderConfig.Mss</c>).</param>
/// <param name="MssV6">MSS over IPv6 (20 less: the larger header).</param>
/// <param name="WindowScale">Our shift, announced when the client sent one (RFC 7323 2.2).</param>
/// <param name="Window">The unscaled SYN+ACK window (RFC 7323 2.2: never scaled in a SYN).</param>
/// <param name="MssTable">CookieTables.Mss: the 3-bit MSS index the ISN carries.</param>
/// <param name="WindowScaleTable">CookieTables.WindowScale (index 0 = none).</param>
public sealed record XdpSynSettings(
    IReadOnlyList<IPEndPoint> Endpoints, ushort MssV4, ushort MssV6, sbyte WindowScale, ushort Window,
    ushort[] MssTable, sbyte[] WindowScaleTable)
{
    /// <summary>The settings that make the program answer exactly as <c>SynResponder</c> with
    /// <paramref name="config"/> does (its MSS, window and shift; CookieTables for the ISN bits).</summary>
    public static XdpSynSettings For(Responder.ResponderConfig config, IEnumerable<IPEndPoint> endpoints) => new(
        endpoints.ToArray(), config.Mss, config.MssV6, config.WindowScale, config.SynAckWindow,
        Cookies.CookieTables.Mss.ToArray(), Cookies.CookieTables.WindowScale.ToArray());
}

/// <summary>
/// SendClientSynAck in the kernel: an XDP program that answers a SYN to a protected endpoint with the same
/// cookie SYN+ACK, byte for byte, that <c>SynResponder</c> builds in user space (<c>SynCookieCodec</c>'s ISN
/// and TSval layout, SipHash-2-4 of the same message words, <c>TcpOptionsWriter</c>'s option order) and sends
/// it back out of the interface with XDP_TX. A SYN flood then never reaches the capture ring, the user-space
/// thread or the transmit path; cookie ACKs and flow segments still do (XDP_PASS), and the user-space
/// validator checks them with the same key.
/// </summary>
/// <remarks>
/// <para>Only the common shape is answered here; anything else is passed up (XDP_PASS) and the user-space path
/// decides, counts and answers it exactly as without this program: IPv4 options, fragments, IPv6 extension
/// headers, two VLAN tags, a SYN with payload, a bad IPv4 header or TCP checksum (also a checksum a local
/// sender left for offload), a malformed option, SACK blocks or an option kind we do not parse, a source
/// address the parser refuses. So every SYN+ACK sent from here is one user space would have sent.</para>
/// <para>The key and time slot come from an array map (<see cref="ConfigValueSize"/> bytes, filled by the
/// host): SipHash's four initial state words (key XOR the constants, precomputed) and the slot, which the host
/// rewrites when the slot turns. Counters are per CPU (<see cref="CounterSlots"/> u64s).</para>
/// <para>Stateless like the user-space responder, with one difference: a SYN on a 4-tuple that already has a
/// flow is answered with a fresh cookie instead of the flow's challenge ACK (RFC 5961 4), because the program
/// does not see the flow table. The client's ACK to it then reaches the flow, which treats it as any
/// unacceptable segment.</para>
/// </remarks>
public static class XdpSynProgram
{
    /// <summary>Config map value: v0, v1, v2, v3 (u64 each: the SipHash state after key setup), slot (u32), pad,
    /// then a u64 that is always 0 (see <see cref="ConfigZeroOffset"/>).</summary>
    public const int ConfigValueSize = 48;
    public const int ConfigSlotOffset = 32;

    /// <summary>A zero the verifier cannot see through (a map value is an unknown scalar to it). The option
    /// walk's defaults and flags are derived from it, so its slots hold unknown values on every path and the
    /// verifier's states at the loop head compare equal and are pruned; with constants there, each
    /// combination of options seen so far would be a state of its own and the walk would exceed the
    /// verifier's 1M-instruction budget.</summary>
    public const int ConfigZeroOffset = 40;

    /// <summary>Per-CPU counters: SYN+ACKs sent, SYNs to a protected endpoint left to user space, internal errors.</summary>
    public const int CounterSynAckSent = 0;
    public const int CounterSynPassed = 1;
    public const int CounterInternalError = 2;
    public const int CounterSlots = 4;

    private const int EthHeader = 14;
    private const int VlanTag = 4;
    private const int TcpHeader = 20;
    private const byte TcpFin = 0x01, TcpSyn = 0x02, TcpRst = 0x04, TcpAck = 0x10, TcpEce = 0x40, TcpCwr = 0x80;
    private const int WsNone = 0xF;   // SynCookieCodec's TsWsNone: also "no window-scale option" here

    private const short XdpMdData = 0;
    private const short XdpMdDataEnd = 4;

    // Stack slots (8 bytes each, below the frame pointer R10).
    private const short SlotKey = -8;
    private const short SlotMss = -16;
    private const short SlotWs = -24;
    private const short SlotSack = -32;
    private const short SlotTs = -40;
    private const short SlotTsVal = -48;     // the client's TSval as loaded (network order): our TSecr
    private const short SlotEcn = -56;       // 0x10 when the SYN had ECE and CWR (the TSval's E bit)
    private const short SlotSeq = -64;       // client ISN, host order
    private const short SlotSlot = -72;
    private const short SlotV0 = -80;        // ..-104: SipHash initial state
    private const short SlotWord0 = -112;    // ..-152: message words
    private const short SlotOptLen = -160;
    private const short SlotOpts = -168;     // the 7 option bits of the ISN before masking
    private const short SlotIsn = -176;
    private const short SlotOurTsVal = -184;
    private const short SlotTcpLength = -192; // our SYN+ACK's TCP header length
    private const short SlotOne = -200;      // 1, opaque to the verifier (ConfigZeroOffset)

    private const EbpfReg Ctx = EbpfReg.R9;
    private const EbpfReg L2 = EbpfReg.R8;
    private const EbpfReg Counters = EbpfReg.R7;
    private const EbpfReg L3 = EbpfReg.R6;

    /// <summary>Emits the program. The two fds are the config array map and the per-CPU counter map.</summary>
    public static EbpfInstruction[] Build(XdpSynSettings settings, int configMapFd, int counterMapFd)
    {
        ArgumentNullException.ThrowIfNull(settings);
        XdpProgram.SplitEndpoints(settings.Endpoints, out var v4, out var v6);
        if (settings.MssTable.Length != 8 || settings.WindowScaleTable.Length != 8)
        {
            throw new ArgumentException("The cookie tables have 8 entries each (3 bits).", nameof(settings));
        }

        var a = new EbpfAssembler();
        var pass = a.NewLabel();
        var vlan = a.NewLabel();
        var l3 = a.NewLabel();
        var ipv4 = a.NewLabel();
        var ipv6 = a.NewLabel();

        a.Mov64(Ctx, EbpfReg.R1);
        a.Load(BPF_W, EbpfReg.R2, Ctx, XdpMdData);
        a.Load(BPF_W, EbpfReg.R3, Ctx, XdpMdDataEnd);
        Bounds(a, EbpfReg.R2, EthHeader, pass);
        a.Load(BPF_H, EbpfReg.R5, EbpfReg.R2, 12);
        a.Mov64(L2, EthHeader);
        a.Jump32(BPF_JEQ, EbpfReg.R5, XdpProgram.NetworkOrderAsLoaded(0x8100), vlan);
        a.Jump32(BPF_JEQ, EbpfReg.R5, XdpProgram.NetworkOrderAsLoaded(0x88a8), vlan);
        a.Goto(l3);
        // One tag; a second one shows up as a VLAN EtherType below and is passed (user space walks two).
        a.Mark(vlan);
        Bounds(a, EbpfReg.R2, EthHeader + VlanTag, pass);
        a.Load(BPF_H, EbpfReg.R5, EbpfReg.R2, EthHeader + 2);
        a.Mov64(L2, EthHeader + VlanTag);

        a.Mark(l3);
        a.Mov64(L3, EbpfReg.R2);
        a.Add64(L3, L2);
        if (v4.Count > 0)
        {
            a.Jump32(BPF_JEQ, EbpfReg.R5, XdpProgram.NetworkOrderAsLoaded(0x0800), ipv4);
        }
        if (v6.Count > 0)
        {
            a.Jump32(BPF_JEQ, EbpfReg.R5, XdpProgram.NetworkOrderAsLoaded(0x86dd), ipv6);
        }
        a.Mark(pass);
        a.Mov64(EbpfReg.R0, Interop.Bpf.XDP_PASS);
        a.Exit();

        if (v4.Count > 0)
        {
            a.Mark(ipv4);
            new FamilyEmitter(a, settings, v6: false, configMapFd, counterMapFd, pass).Emit(v4.Select(e => (e.Any, new[] { e.Address }, e.Port)));
        }
        if (v6.Count > 0)
        {
            a.Mark(ipv6);
            new FamilyEmitter(a, settings, v6: true, configMapFd, counterMapFd, pass).Emit(v6);
        }
        return a.Build();
    }

    /// <summary>The config map value for a key and slot: SipHash's v0..v3 after key setup (so the program skips
    /// four XORs per SYN), then the slot.</summary>
    public static byte[] ConfigValue(ulong k0, ulong k1, uint slot)
    {
        var value = new byte[ConfigValueSize];
        (ulong v0, ulong v1, ulong v2, ulong v3) = Crypto.SipHash.InitialState(new Crypto.SipKey(k0, k1));
        BinaryPrimitives.WriteUInt64LittleEndian(value, v0);
        BinaryPrimitives.WriteUInt64LittleEndian(value.AsSpan(8), v1);
        BinaryPrimitives.WriteUInt64LittleEndian(value.AsSpan(16), v2);
        BinaryPrimitives.WriteUInt64LittleEndian(value.AsSpan(24), v3);
        BinaryPrimitives.WriteUInt32LittleEndian(value.AsSpan(ConfigSlotOffset), slot);
        return value;
    }

    /// <summary>if (ptr + bytes &gt; data_end (R3)) goto fail, through R4: the verifier's proof that ptr[0..bytes) is in the packet.</summary>
    private static void Bounds(EbpfAssembler a, EbpfReg ptr, int bytes, EbpfAssembler.Label fail)
    {
        a.Mov64(EbpfReg.R4, ptr);
        a.Add64(EbpfReg.R4, bytes);
        a.Jump(BPF_JGT, EbpfReg.R4, EbpfReg.R3, fail);
    }

    private static int AsLoaded32(uint networkOrderValue) => unchecked((int)BinaryPrimitives.ReverseEndianness(networkOrderValue));

    /// <summary>The code for one address family: parse and check, hash, rewrite, XDP_TX.</summary>
    private sealed class FamilyEmitter
    {
        private readonly EbpfAssembler _a;
        private readonly XdpSynSettings _s;
        private readonly bool _v6;
        private readonly int _configFd;
        private readonly int _counterFd;
        private readonly EbpfAssembler.Label _pass;
        private readonly EbpfAssembler.Label _passCounted;
        private readonly int _l3Length;
        private readonly int _tcp;          // TCP header offset from L3

        public FamilyEmitter(EbpfAssembler a, XdpSynSettings s, bool v6, int configFd, int counterFd, EbpfAssembler.Label pass)
        {
            _a = a;
            _s = s;
            _v6 = v6;
            _configFd = configFd;
            _counterFd = counterFd;
            _pass = pass;
            _passCounted = a.NewLabel();
            _l3Length = v6 ? 40 : 20;
            _tcp = _l3Length;
        }

        public void Emit(IEnumerable<(bool Any, uint[] Address, ushort Port)> endpoints)
        {
            EbpfAssembler a = _a;
            var protectedSyn = a.NewLabel();

            // ---- IP header, the shape we answer (RFC 791 / RFC 8200)
            Bounds(a, L3, _tcp + TcpHeader, _pass);
            a.Load(BPF_B, EbpfReg.R0, L3, 0);
            if (_v6)
            {
                a.And64(EbpfReg.R0, 0xf0);
                a.Jump32(BPF_JNE, EbpfReg.R0, 0x60, _pass);
                a.Load(BPF_B, EbpfReg.R0, L3, 6);          // next header: TCP, no extension headers
                a.Jump32(BPF_JNE, EbpfReg.R0, 6, _pass);
            }
            else
            {
                a.Jump32(BPF_JNE, EbpfReg.R0, 0x45, _pass); // version 4, IHL 5: no options
                a.Load(BPF_B, EbpfReg.R0, L3, 9);
                a.Jump32(BPF_JNE, EbpfReg.R0, 6, _pass);
                a.Load(BPF_H, EbpfReg.R0, L3, 6);          // MF or a fragment offset
                a.Jump32(BPF_JSET, EbpfReg.R0, XdpProgram.NetworkOrderAsLoaded(0x3fff), _pass);
            }

            // ---- a protected endpoint? (destination address and port, as the capture filter)
            a.Load(BPF_H, EbpfReg.R1, L3, (short)(_tcp + 2));
            foreach ((bool any, uint[] address, ushort port) in endpoints)
            {
                var next = a.NewLabel();
                a.Jump32(BPF_JNE, EbpfReg.R1, port, next);
                if (!any)
                {
                    for (int i = 0; i < address.Length; i++)
                    {
                        a.Load(BPF_W, EbpfReg.R0, L3, (short)((_v6 ? 24 : 16) + 4 * i));
                        a.Jump32(BPF_JNE, EbpfReg.R0, unchecked((int)address[i]), next);
                    }
                }
                a.Goto(protectedSyn);
                a.Mark(next);
            }
            a.Goto(_pass);

            // ---- a SYN (no ACK, RST or FIN): SynResponder's test plus PacketParser's SYN+FIN/RST refusal
            a.Mark(protectedSyn);
            a.Load(BPF_B, EbpfReg.R0, L3, (short)(_tcp + 13));
            a.And64(EbpfReg.R0, TcpFin | TcpSyn | TcpRst | TcpAck);
            a.Jump32(BPF_JNE, EbpfReg.R0, TcpSyn, _pass);

            LookupMap(_counterFd, _pass);
            a.Mov64(Counters, EbpfReg.R0);
            LookupMap(_configFd, _passCounted);
            for (int i = 0; i < 4; i++)
            {
                a.Load(BPF_DW, EbpfReg.R1, EbpfReg.R0, (short)(8 * i));
                a.Store(BPF_DW, EbpfReg.R10, (short)(SlotV0 - 8 * i), EbpfReg.R1);
            }
            a.Load(BPF_W, EbpfReg.R1, EbpfReg.R0, ConfigSlotOffset);
            a.Store(BPF_DW, EbpfReg.R10, SlotSlot, EbpfReg.R1);
            a.Load(BPF_DW, EbpfReg.R1, EbpfReg.R0, ConfigZeroOffset);
            a.Store(BPF_DW, EbpfReg.R10, SlotMss, EbpfReg.R1);
            a.Store(BPF_DW, EbpfReg.R10, SlotSack, EbpfReg.R1);
            a.Store(BPF_DW, EbpfReg.R10, SlotTs, EbpfReg.R1);
            a.Store(BPF_DW, EbpfReg.R10, SlotTsVal, EbpfReg.R1);
            a.Add64(EbpfReg.R1, 1);
            a.Store(BPF_DW, EbpfReg.R10, SlotOne, EbpfReg.R1);
            a.Add64(EbpfReg.R1, WsNone - 1);
            a.Store(BPF_DW, EbpfReg.R10, SlotWs, EbpfReg.R1);

            a.Load(BPF_W, EbpfReg.R3, Ctx, XdpMdDataEnd);
            Bounds(a, L3, _tcp + TcpHeader, _passCounted);
            CheckSource();

            // ---- TCP header: ports, data offset; no payload (RFC 9293 3.1)
            a.Load(BPF_H, EbpfReg.R0, L3, (short)_tcp);
            a.Jump(BPF_JEQ, EbpfReg.R0, 0, _passCounted);
            a.Load(BPF_B, EbpfReg.R5, L3, (short)(_tcp + 12));
            a.Rsh64(EbpfReg.R5, 4);
            a.Jump(BPF_JLT, EbpfReg.R5, 5, _passCounted);
            a.Lsh64(EbpfReg.R5, 2);                               // R5 = TCP header length, 20..60
            a.Load(BPF_H, EbpfReg.R0, L3, (short)(_v6 ? 4 : 2));  // payload length / total length
            a.Swap(EbpfReg.R0, 16);
            a.Mov64(EbpfReg.R1, EbpfReg.R5);
            if (!_v6)
            {
                a.Add64(EbpfReg.R1, 20);
            }
            a.Jump(BPF_JNE, EbpfReg.R0, EbpfReg.R1, _passCounted);
            a.Mov64(EbpfReg.R0, EbpfReg.R5);
            a.Sub64(EbpfReg.R0, TcpHeader);
            a.Store(BPF_DW, EbpfReg.R10, SlotOptLen, EbpfReg.R0);

            VerifyChecksums();
            ParseOptions();
            EncodeCookieOptions();
            HashAndCompose();
            Rewrite();

            a.Mark(_passCounted);
            Count(CounterSynPassed);
            a.Mov64(EbpfReg.R0, Interop.Bpf.XDP_PASS);
            a.Exit();
        }

        /// <summary>R0 = bpf_map_lookup_elem(map, &amp;0); null goes to <paramref name="fail"/>. Clobbers R1-R5.</summary>
        private void LookupMap(int fd, EbpfAssembler.Label fail)
        {
            EbpfAssembler a = _a;
            a.Store(BPF_W, EbpfReg.R10, SlotKey, 0);
            a.LoadMapFd(EbpfReg.R1, fd);
            a.Mov64(EbpfReg.R2, EbpfReg.R10);
            a.Add64(EbpfReg.R2, SlotKey);
            a.Call(BPF_FUNC_map_lookup_elem);
            a.Jump(BPF_JEQ, EbpfReg.R0, 0, fail);
        }

        private void Count(int counter)
        {
            EbpfAssembler a = _a;
            a.Load(BPF_DW, EbpfReg.R1, Counters, (short)(8 * counter));
            a.Add64(EbpfReg.R1, 1);
            a.Store(BPF_DW, Counters, (short)(8 * counter), EbpfReg.R1);
        }

        /// <summary>Ipv4Packet.IsBadSource / Ipv6Packet.IsBadSource: sources the parser refuses are its business.</summary>
        private void CheckSource()
        {
            EbpfAssembler a = _a;
            if (_v6)
            {
                a.Load(BPF_B, EbpfReg.R0, L3, 8);
                a.Jump32(BPF_JEQ, EbpfReg.R0, 0xff, _passCounted);            // multicast
                a.Load(BPF_DW, EbpfReg.R0, L3, 8);
                a.Load(BPF_DW, EbpfReg.R1, L3, 16);
                a.Mov64(EbpfReg.R2, EbpfReg.R0);
                a.Or64(EbpfReg.R2, EbpfReg.R1);
                a.Jump(BPF_JEQ, EbpfReg.R2, 0, _passCounted);                 // ::
                var notMapped = a.NewLabel();
                a.Jump(BPF_JNE, EbpfReg.R0, 0, notMapped);                     // ::ffff:a.b.c.d aliases IPv4
                a.Jump32(BPF_JEQ, EbpfReg.R1, AsLoaded32(0x0000ffff), _passCounted);
                a.Mark(notMapped);
            }
            else
            {
                a.Load(BPF_W, EbpfReg.R0, L3, 12);
                a.Mov64(EbpfReg.R1, EbpfReg.R0);
                a.And64(EbpfReg.R1, 0xff);                                     // first octet
                a.Jump(BPF_JEQ, EbpfReg.R1, 0, _passCounted);                  // 0/8
                a.And64(EbpfReg.R1, 0xf0);
                a.Jump(BPF_JEQ, EbpfReg.R1, 0xe0, _passCounted);               // 224/4
                a.Jump32(BPF_JEQ, EbpfReg.R0, -1, _passCounted);               // 255.255.255.255
            }
        }

        /// <summary>
        /// The IPv4 header checksum (RFC 791) and the TCP checksum over the pseudo-header and the header (RFC 9293
        /// 3.1; no payload here) must hold; a frame whose checksum a local sender left to offload fails this and
        /// goes up, where the capture's status tells the parser not to check. Words are summed as loaded
        /// (RFC 1071's byte-order independence). R5 = the TCP header length.
        /// </summary>
        private void VerifyChecksums()
        {
            EbpfAssembler a = _a;
            if (!_v6)
            {
                Ipv4HeaderSum();
                a.Jump(BPF_JNE, EbpfReg.R0, 0xffff, _passCounted);
            }
            TcpSum(maxWords: 15, _passCounted);
            a.Jump(BPF_JNE, EbpfReg.R0, 0xffff, _passCounted);
        }

        /// <summary>R0 = the folded sum of the IPv4 header's five words as loaded, its checksum field as it
        /// stands (0xffff when that is right; fill a zeroed field with the complement). Clobbers R1.</summary>
        private void Ipv4HeaderSum()
        {
            EbpfAssembler a = _a;
            a.Mov64(EbpfReg.R0, 0);
            for (int i = 0; i < 5; i++)
            {
                a.Load(BPF_W, EbpfReg.R1, L3, (short)(4 * i));
                a.Add64(EbpfReg.R0, EbpfReg.R1);
            }
            Fold(EbpfReg.R0, EbpfReg.R1);
        }

        /// <summary>R0 = the folded sum of the pseudo-header and the R5 bytes of TCP header (at most
        /// <paramref name="maxWords"/> words), checksum field as it stands; a word past the packet goes to
        /// <paramref name="fail"/>. Clobbers R1, R2, R4.</summary>
        private void TcpSum(int maxWords, EbpfAssembler.Label fail)
        {
            EbpfAssembler a = _a;
            PseudoHeaderSum(EbpfReg.R5);
            var done = a.NewLabel();
            a.Mov64(EbpfReg.R2, L3);
            a.Add64(EbpfReg.R2, _tcp);
            for (int i = 0; i < maxWords; i++)
            {
                a.Jump(BPF_JLE, EbpfReg.R5, 4 * i, done);
                Bounds(a, EbpfReg.R2, 4 * (i + 1), fail);
                a.Load(BPF_W, EbpfReg.R1, EbpfReg.R2, (short)(4 * i));
                a.Add64(EbpfReg.R0, EbpfReg.R1);
            }
            a.Mark(done);
            Fold(EbpfReg.R0, EbpfReg.R1);
        }

        /// <summary>R0 = the pseudo-header's sum as loaded: source, destination, protocol 6 and the TCP length
        /// in <paramref name="length"/> (the same two 16-bit words for IPv4 and IPv6). Clobbers R1.</summary>
        private void PseudoHeaderSum(EbpfReg length)
        {
            EbpfAssembler a = _a;
            a.Mov64(EbpfReg.R0, 0x0600);
            int words = _v6 ? 8 : 2;
            for (int i = 0; i < words; i++)
            {
                a.Load(BPF_W, EbpfReg.R1, L3, (short)((_v6 ? 8 : 12) + 4 * i));
                a.Add64(EbpfReg.R0, EbpfReg.R1);
            }
            a.Mov64(EbpfReg.R1, length);
            a.Swap(EbpfReg.R1, 16);
            a.Add64(EbpfReg.R0, EbpfReg.R1);
        }

        /// <summary>sum = ones'-complement fold of the 64-bit accumulator to 16 bits.</summary>
        private void Fold(EbpfReg sum, EbpfReg tmp)
        {
            EbpfAssembler a = _a;
            a.Mov64(tmp, sum);
            a.Rsh64(tmp, 32);
            a.Lsh64(sum, 32);                    // the low 32 bits, without a 64-bit mask constant
            a.Rsh64(sum, 32);
            a.Add64(sum, tmp);
            for (int i = 0; i < 3; i++)
            {
                a.Mov64(tmp, sum);
                a.Rsh64(tmp, 16);
                a.And64(sum, 0xffff);
                a.Add64(sum, tmp);
            }
        }

        /// <summary>
        /// The SYN's options as TcpOptionsReader reads them (later duplicates win, window scale capped at 14,
        /// EOL ends the list) into the stack slots. Only NOP, EOL, MSS, WS, SACK-permitted and timestamps are
        /// read here; another kind, or a malformed length, goes up to the full parser.
        /// <para>The walk is unrolled into one node per option offset 0..39, each jumping forward to the node
        /// after its option: every packet offset is a constant, there is no loop, and every path reaches node k
        /// having proven the packet up to k, so the verifier's states at a node compare equal and are pruned
        /// (a loop with a variable offset multiplied its states past the 1M-instruction budget).</para>
        /// </summary>
        private void ParseOptions()
        {
            EbpfAssembler a = _a;
            const int MaxOptions = 40;
            var done = a.NewLabel();
            var nodes = new EbpfAssembler.Label[MaxOptions + 1];
            for (int k = 0; k < MaxOptions; k++)
            {
                nodes[k] = a.NewLabel();
            }
            nodes[MaxOptions] = done;
            int options = _tcp + TcpHeader;

            ResetL3();
            for (int k = 0; k < MaxOptions; k++)
            {
                a.Mark(nodes[k]);
                // The slot is reloaded and masked (a no-op on 0..40) at every node: a plain fill stays linked to
                // the slot, and the compare would narrow the slot differently on every path.
                a.Load(BPF_DW, EbpfReg.R2, EbpfReg.R10, SlotOptLen);
                a.And64(EbpfReg.R2, 0x3f);
                a.Jump(BPF_JLE, EbpfReg.R2, k, done);
                Bounds(a, L3, options + k + 1, _passCounted);
                a.Load(BPF_B, EbpfReg.R0, L3, (short)(options + k));
                a.Jump(BPF_JEQ, EbpfReg.R0, 0, done);                   // EOL
                a.Jump(BPF_JEQ, EbpfReg.R0, 1, nodes[k + 1]);           // NOP
                a.Sub64(EbpfReg.R2, k);                                 // R2 = bytes left, 1..40
                Option(k, kind: 2, length: 4, () =>
                {
                    a.Load(BPF_H, EbpfReg.R2, L3, (short)(options + k + 2));
                    a.Swap(EbpfReg.R2, 16);
                    a.Store(BPF_DW, EbpfReg.R10, SlotMss, EbpfReg.R2);
                }, nodes);
                Option(k, kind: 3, length: 3, () =>
                {
                    var keep = a.NewLabel();
                    a.Load(BPF_B, EbpfReg.R2, L3, (short)(options + k + 2));
                    a.Jump(BPF_JLE, EbpfReg.R2, 14, keep);              // RFC 7323 2.3: treat more as 14
                    a.Mov64(EbpfReg.R2, 14);
                    a.Mark(keep);
                    a.Store(BPF_DW, EbpfReg.R10, SlotWs, EbpfReg.R2);
                }, nodes);
                Option(k, kind: 4, length: 2, () =>
                {
                    a.Load(BPF_DW, EbpfReg.R2, EbpfReg.R10, SlotOne);
                    a.Store(BPF_DW, EbpfReg.R10, SlotSack, EbpfReg.R2);
                }, nodes);
                Option(k, kind: 8, length: 10, () =>
                {
                    a.Load(BPF_W, EbpfReg.R2, L3, (short)(options + k + 2));
                    a.Store(BPF_DW, EbpfReg.R10, SlotTsVal, EbpfReg.R2);
                    a.Load(BPF_DW, EbpfReg.R2, EbpfReg.R10, SlotOne);
                    a.Store(BPF_DW, EbpfReg.R10, SlotTs, EbpfReg.R2);
                }, nodes);
                a.Goto(_passCounted);                                   // SACK blocks, TFO, MPTCP, MD5, ...
            }

            a.Mark(done);
            ResetL3();
            Bounds(a, L3, _tcp + TcpHeader, _passCounted);
        }

        /// <summary>One fixed-length option at option offset <paramref name="k"/>: the kind byte is in R0, the bytes
        /// left in R2. A wrong length byte or an option past the end goes up (TcpOptionMalformed there).</summary>
        private void Option(int k, int kind, int length, Action read, EbpfAssembler.Label[] nodes)
        {
            EbpfAssembler a = _a;
            var other = a.NewLabel();
            a.Jump(BPF_JNE, EbpfReg.R0, kind, other);
            if (k + length >= nodes.Length)
            {
                a.Goto(_passCounted);                                   // cannot fit in 40 bytes of options
            }
            else
            {
                int at = _tcp + TcpHeader + k;
                a.Jump(BPF_JLT, EbpfReg.R2, length, _passCounted);
                Bounds(a, L3, at + length, _passCounted);
                a.Load(BPF_B, EbpfReg.R4, L3, (short)(at + 1));
                a.Jump(BPF_JNE, EbpfReg.R4, length, _passCounted);
                read();
                a.Goto(nodes[k + length]);
            }
            a.Mark(other);
        }

        /// <summary>
        /// L3 (and R3) afresh from the context. Every bounds check widens the proven range of the packet pointer,
        /// and the verifier prunes a path only if an earlier one proved no more than it did: without this, each
        /// checksum-loop exit and each option sequence would carry its own range into the rest of the program
        /// and the exploration would multiply. A fresh pointer has proven nothing, on every path alike.
        /// </summary>
        private void ResetL3()
        {
            EbpfAssembler a = _a;
            a.Load(BPF_W, L3, Ctx, XdpMdData);
            a.Add64(L3, L2);
            a.Load(BPF_W, EbpfReg.R3, Ctx, XdpMdDataEnd);
        }

        /// <summary>result = the largest index i &gt; floor with value &gt;= table[i], else floor (the tables ascend).</summary>
        private void TableIndex(EbpfReg value, EbpfReg result, int[] table, int floor)
        {
            EbpfAssembler a = _a;
            var done = a.NewLabel();
            a.Mov64(result, floor);
            for (int i = table.Length - 1; i > floor; i--)
            {
                var lower = a.NewLabel();
                a.Jump(BPF_JLT, value, table[i], lower);
                a.Mov64(result, i);
                a.Goto(done);
                a.Mark(lower);
            }
            a.Mark(done);
        }

        /// <summary>SynCookieCodec.ComposeIsn's option bits before the MAC mask: CookieTables.EncodeWindowScale
        /// &lt;&lt; 4 | EncodeMss &lt;&lt; 1 | SACK; and the TSval's E bit; and our TCP header length.</summary>
        private void EncodeCookieOptions()
        {
            EbpfAssembler a = _a;
            // CookieTables.EncodeMss: the largest entry not above the client's MSS, else 0.
            a.Load(BPF_DW, EbpfReg.R1, EbpfReg.R10, SlotMss);
            TableIndex(EbpfReg.R1, EbpfReg.R0, _s.MssTable.Select(v => (int)v).ToArray(), floor: 0);
            a.Lsh64(EbpfReg.R0, 1);

            // CookieTables.EncodeWindowScale: 0 for none, else the largest entry not above the shift, at least 1.
            var wsDone = a.NewLabel();
            a.Load(BPF_DW, EbpfReg.R1, EbpfReg.R10, SlotWs);
            a.Mov64(EbpfReg.R2, 0);
            a.Jump(BPF_JEQ, EbpfReg.R1, WsNone, wsDone);
            TableIndex(EbpfReg.R1, EbpfReg.R2, _s.WindowScaleTable.Select(v => (int)v).ToArray(), floor: 1);
            a.Mark(wsDone);
            a.Lsh64(EbpfReg.R2, 4);
            a.Or64(EbpfReg.R0, EbpfReg.R2);
            a.Load(BPF_DW, EbpfReg.R2, EbpfReg.R10, SlotSack);
            a.Or64(EbpfReg.R0, EbpfReg.R2);
            a.Store(BPF_DW, EbpfReg.R10, SlotOpts, EbpfReg.R0);

            // RFC 3168 6.1.1: ECE and CWR both set asks for ECN.
            var noEcn = a.NewLabel();
            a.Load(BPF_B, EbpfReg.R1, L3, (short)(_tcp + 13));
            a.And64(EbpfReg.R1, TcpEce | TcpCwr);
            a.Mov64(EbpfReg.R0, 0);
            a.Jump(BPF_JNE, EbpfReg.R1, TcpEce | TcpCwr, noEcn);
            a.Mov64(EbpfReg.R0, 0x10);
            a.Mark(noEcn);
            a.Store(BPF_DW, EbpfReg.R10, SlotEcn, EbpfReg.R0);

            // TcpOptionsWriter.Length for a SYN: MSS 4, then TS 12 (SACK-permitted rides in its NOPs) or
            // SACK-permitted 4, then WS 4.
            var noTs = a.NewLabel();
            var wsLength = a.NewLabel();
            a.Mov64(EbpfReg.R0, TcpHeader + 4);
            a.Load(BPF_DW, EbpfReg.R1, EbpfReg.R10, SlotTs);
            a.Jump(BPF_JEQ, EbpfReg.R1, 0, noTs);
            a.Add64(EbpfReg.R0, 12);
            a.Goto(wsLength);
            a.Mark(noTs);
            a.Load(BPF_DW, EbpfReg.R1, EbpfReg.R10, SlotSack);
            a.Jump(BPF_JEQ, EbpfReg.R1, 0, wsLength);
            a.Add64(EbpfReg.R0, 4);
            a.Mark(wsLength);
            var noWs = a.NewLabel();
            a.Load(BPF_DW, EbpfReg.R1, EbpfReg.R10, SlotWs);
            a.Jump(BPF_JEQ, EbpfReg.R1, WsNone, noWs);
            a.Add64(EbpfReg.R0, 4);
            a.Mark(noWs);
            a.Store(BPF_DW, EbpfReg.R10, SlotTcpLength, EbpfReg.R0);

            a.Load(BPF_W, EbpfReg.R0, L3, (short)(_tcp + 4));
            a.Swap(EbpfReg.R0, 32);
            a.Store(BPF_DW, EbpfReg.R10, SlotSeq, EbpfReg.R0);
        }

        /// <summary>SynCookieCodec.WriteMessage's words, SipHash-2-4 over them (SipHash.Hash3 / Hash6), then
        /// ComposeIsn and ComposeTsVal.</summary>
        private void HashAndCompose()
        {
            EbpfAssembler a = _a;
            int words;
            if (_v6)
            {
                // IpAddr.Hi/Lo: the big-endian values of each address's two halves.
                for (int i = 0; i < 4; i++)
                {
                    a.Load(BPF_DW, EbpfReg.R0, L3, (short)(8 + 8 * i));
                    a.Swap(EbpfReg.R0, 64);
                    a.Store(BPF_DW, EbpfReg.R10, (short)(SlotWord0 - 8 * i), EbpfReg.R0);
                }
                words = 6;
            }
            else
            {
                a.Load(BPF_W, EbpfReg.R0, L3, 12);
                a.Swap(EbpfReg.R0, 32);
                a.Load(BPF_W, EbpfReg.R1, L3, 16);
                a.Swap(EbpfReg.R1, 32);
                a.Lsh64(EbpfReg.R1, 32);
                a.Or64(EbpfReg.R0, EbpfReg.R1);
                a.Store(BPF_DW, EbpfReg.R10, SlotWord0, EbpfReg.R0);
                words = 3;
            }
            // ports | slot << 32, then the client ISN
            a.Load(BPF_H, EbpfReg.R0, L3, (short)_tcp);
            a.Swap(EbpfReg.R0, 16);
            a.Load(BPF_H, EbpfReg.R1, L3, (short)(_tcp + 2));
            a.Swap(EbpfReg.R1, 16);
            a.Lsh64(EbpfReg.R1, 16);
            a.Or64(EbpfReg.R0, EbpfReg.R1);
            a.Load(BPF_DW, EbpfReg.R1, EbpfReg.R10, SlotSlot);
            a.Lsh64(EbpfReg.R1, 32);
            a.Or64(EbpfReg.R0, EbpfReg.R1);
            a.Store(BPF_DW, EbpfReg.R10, (short)(SlotWord0 - 8 * (words - 2)), EbpfReg.R0);
            a.Load(BPF_DW, EbpfReg.R0, EbpfReg.R10, SlotSeq);
            a.Store(BPF_DW, EbpfReg.R10, (short)(SlotWord0 - 8 * (words - 1)), EbpfReg.R0);

            // v0..v3 in R1..R4, the message word in R0, R5 scratch.
            for (int i = 0; i < 4; i++)
            {
                a.Load(BPF_DW, (EbpfReg)(1 + i), EbpfReg.R10, (short)(SlotV0 - 8 * i));
            }
            for (int w = 0; w < words; w++)
            {
                a.Load(BPF_DW, EbpfReg.R0, EbpfReg.R10, (short)(SlotWord0 - 8 * w));
                Compress();
            }
            a.LoadImm64(EbpfReg.R0, (ulong)(words * 8) << 56);       // the length block
            Compress();
            a.Xor64(EbpfReg.R3, 0xff);
            for (int r = 0; r < 4; r++)
            {
                SipRound();
            }
            a.Xor64(EbpfReg.R1, EbpfReg.R2);
            a.Xor64(EbpfReg.R1, EbpfReg.R3);
            a.Xor64(EbpfReg.R1, EbpfReg.R4);                          // R1 = the MAC

            // ISN = MAC[23:0] << 8 | (opts ^ MAC[30:24]) << 1 | slot parity
            a.Mov64(EbpfReg.R2, EbpfReg.R1);
            a.Rsh64(EbpfReg.R2, 24);
            a.And64(EbpfReg.R2, 0x7f);
            a.Load(BPF_DW, EbpfReg.R0, EbpfReg.R10, SlotOpts);
            a.Xor64(EbpfReg.R0, EbpfReg.R2);
            a.Lsh64(EbpfReg.R0, 1);
            a.Mov64(EbpfReg.R2, EbpfReg.R1);
            a.And64(EbpfReg.R2, 0xffffff);
            a.Lsh64(EbpfReg.R2, 8);
            a.Or64(EbpfReg.R0, EbpfReg.R2);
            a.Load(BPF_DW, EbpfReg.R2, EbpfReg.R10, SlotSlot);
            a.And64(EbpfReg.R2, 1);
            a.Or64(EbpfReg.R0, EbpfReg.R2);
            a.Store(BPF_DW, EbpfReg.R10, SlotIsn, EbpfReg.R0);

            // TSval = MAC[55:32] << 8 | E << 4 | the exact shift (15 = none)
            a.Mov64(EbpfReg.R0, EbpfReg.R1);
            a.Rsh64(EbpfReg.R0, 32);
            a.And64(EbpfReg.R0, 0xffffff);
            a.Lsh64(EbpfReg.R0, 8);
            a.Load(BPF_DW, EbpfReg.R2, EbpfReg.R10, SlotEcn);
            a.Or64(EbpfReg.R0, EbpfReg.R2);
            a.Load(BPF_DW, EbpfReg.R2, EbpfReg.R10, SlotWs);
            a.Or64(EbpfReg.R0, EbpfReg.R2);
            a.Store(BPF_DW, EbpfReg.R10, SlotOurTsVal, EbpfReg.R0);
        }

        private void Compress()
        {
            _a.Xor64(EbpfReg.R4, EbpfReg.R0);
            SipRound();
            SipRound();
            _a.Xor64(EbpfReg.R1, EbpfReg.R0);
        }

        // v0 += v1; v1 = rotl(v1,13); v1 ^= v0; v0 = rotl(v0,32); v2 += v3; v3 = rotl(v3,16); v3 ^= v2;
        // v0 += v3; v3 = rotl(v3,21); v3 ^= v0; v2 += v1; v1 = rotl(v1,17); v1 ^= v2; v2 = rotl(v2,32)
        private void SipRound()
        {
            EbpfAssembler a = _a;
            EbpfReg v0 = EbpfReg.R1, v1 = EbpfReg.R2, v2 = EbpfReg.R3, v3 = EbpfReg.R4;
            a.Add64(v0, v1); Rotl(v1, 13); a.Xor64(v1, v0); Rotl(v0, 32);
            a.Add64(v2, v3); Rotl(v3, 16); a.Xor64(v3, v2);
            a.Add64(v0, v3); Rotl(v3, 21); a.Xor64(v3, v0);
            a.Add64(v2, v1); Rotl(v1, 17); a.Xor64(v1, v2); Rotl(v2, 32);
        }

        private void Rotl(EbpfReg x, int bits)
        {
            EbpfAssembler a = _a;
            a.Mov64(EbpfReg.R5, x);
            a.Rsh64(EbpfReg.R5, 64 - bits);
            a.Lsh64(x, bits);
            a.Or64(x, EbpfReg.R5);
        }

        /// <summary>Resizes the frame to Ethernet + IP + our TCP header and writes the SYN+ACK over the SYN, as
        /// ReplyWriter does: MACs swapped, VLAN tag kept, fresh IP header (TTL 64, IPv4 id 0 + DF), ports swapped,
        /// seq = ISN, ack = SYN.seq + 1 (RFC 9293 3.5), our options, checksums. Then XDP_TX.</summary>
        private void Rewrite()
        {
            EbpfAssembler a = _a;
            var resized = a.NewLabel();
            var broken = a.NewLabel();

            // delta = (L2 + L3 + our TCP length) - the frame's current length (padding included)
            a.Load(BPF_W, EbpfReg.R2, Ctx, XdpMdData);
            a.Load(BPF_W, EbpfReg.R3, Ctx, XdpMdDataEnd);
            a.Sub64(EbpfReg.R3, EbpfReg.R2);
            a.Load(BPF_DW, EbpfReg.R2, EbpfReg.R10, SlotTcpLength);
            a.Add64(EbpfReg.R2, L2);
            a.Add64(EbpfReg.R2, _l3Length);
            a.Sub64(EbpfReg.R2, EbpfReg.R3);
            a.Jump(BPF_JEQ, EbpfReg.R2, 0, resized);
            a.Mov64(EbpfReg.R1, Ctx);
            a.Call(BPF_FUNC_xdp_adjust_tail);
            a.Jump(BPF_JNE, EbpfReg.R0, 0, _passCounted);              // no room: untouched, user space answers
            a.Mark(resized);

            // From here the frame is committed: a failed check below is a bug, dropped and counted.
            a.Load(BPF_W, EbpfReg.R2, Ctx, XdpMdData);
            a.Load(BPF_W, EbpfReg.R3, Ctx, XdpMdDataEnd);
            Bounds(a, EbpfReg.R2, EthHeader, broken);
            a.Mov64(L3, EbpfReg.R2);
            a.Add64(L3, L2);
            Bounds(a, L3, _tcp + TcpHeader + 4, broken);

            // Ethernet: swap the MACs
            a.Load(BPF_W, EbpfReg.R0, EbpfReg.R2, 0);
            a.Load(BPF_H, EbpfReg.R1, EbpfReg.R2, 4);
            a.Load(BPF_W, EbpfReg.R4, EbpfReg.R2, 6);
            a.Load(BPF_H, EbpfReg.R5, EbpfReg.R2, 10);
            a.Store(BPF_W, EbpfReg.R2, 0, EbpfReg.R4);
            a.Store(BPF_H, EbpfReg.R2, 4, EbpfReg.R5);
            a.Store(BPF_W, EbpfReg.R2, 6, EbpfReg.R0);
            a.Store(BPF_H, EbpfReg.R2, 10, EbpfReg.R1);

            // IP header (TcpFrameBuilder.WriteIpHeader), addresses swapped
            a.Load(BPF_DW, EbpfReg.R5, EbpfReg.R10, SlotTcpLength);
            if (_v6)
            {
                a.Store(BPF_W, L3, 0, AsLoaded32(0x60000000));
                a.Mov64(EbpfReg.R0, EbpfReg.R5);
                a.Swap(EbpfReg.R0, 16);
                a.Store(BPF_H, L3, 4, EbpfReg.R0);
                a.Store(BPF_B, L3, 6, 6);
                a.Store(BPF_B, L3, 7, 64);
                for (int i = 0; i < 2; i++)
                {
                    a.Load(BPF_DW, EbpfReg.R0, L3, (short)(8 + 8 * i));
                    a.Load(BPF_DW, EbpfReg.R1, L3, (short)(24 + 8 * i));
                    a.Store(BPF_DW, L3, (short)(8 + 8 * i), EbpfReg.R1);
                    a.Store(BPF_DW, L3, (short)(24 + 8 * i), EbpfReg.R0);
                }
            }
            else
            {
                a.Store(BPF_B, L3, 1, 0);
                a.Mov64(EbpfReg.R0, EbpfReg.R5);
                a.Add64(EbpfReg.R0, 20);
                a.Swap(EbpfReg.R0, 16);
                a.Store(BPF_H, L3, 2, EbpfReg.R0);
                a.Store(BPF_H, L3, 4, 0);
                a.Store(BPF_H, L3, 6, XdpProgram.NetworkOrderAsLoaded(0x4000));  // DF (RFC 6864 4.1: id 0)
                a.Store(BPF_B, L3, 8, 64);
                a.Store(BPF_B, L3, 9, 6);
                a.Store(BPF_H, L3, 10, 0);
                a.Load(BPF_W, EbpfReg.R0, L3, 12);
                a.Load(BPF_W, EbpfReg.R1, L3, 16);
                a.Store(BPF_W, L3, 12, EbpfReg.R1);
                a.Store(BPF_W, L3, 16, EbpfReg.R0);
                Ipv4HeaderSum();
                a.Xor64(EbpfReg.R0, 0xffff);
                a.Store(BPF_H, L3, 10, EbpfReg.R0);
            }

            // TCP header (TcpPacket.Emit)
            short t = (short)_tcp;
            a.Load(BPF_H, EbpfReg.R0, L3, t);
            a.Load(BPF_H, EbpfReg.R1, L3, (short)(t + 2));
            a.Store(BPF_H, L3, t, EbpfReg.R1);
            a.Store(BPF_H, L3, (short)(t + 2), EbpfReg.R0);
            a.Load(BPF_DW, EbpfReg.R0, EbpfReg.R10, SlotIsn);
            a.Swap(EbpfReg.R0, 32);
            a.Store(BPF_W, L3, (short)(t + 4), EbpfReg.R0);
            a.Load(BPF_DW, EbpfReg.R0, EbpfReg.R10, SlotSeq);
            a.Add64(EbpfReg.R0, 1);
            a.Swap(EbpfReg.R0, 32);
            a.Store(BPF_W, L3, (short)(t + 8), EbpfReg.R0);
            a.Mov64(EbpfReg.R0, EbpfReg.R5);
            a.Lsh64(EbpfReg.R0, 2);                                       // (length / 4) << 4
            a.Store(BPF_B, L3, (short)(t + 12), EbpfReg.R0);
            a.Store(BPF_B, L3, (short)(t + 13), TcpSyn | TcpAck);
            a.Store(BPF_H, L3, (short)(t + 14), XdpProgram.NetworkOrderAsLoaded(_s.Window));
            a.Store(BPF_W, L3, (short)(t + 16), 0);                      // checksum, urgent pointer
            ushort mss = _v6 ? _s.MssV6 : _s.MssV4;
            a.Store(BPF_W, L3, (short)(t + 20), AsLoaded32(0x02040000u | mss));

            // TcpOptionsWriter.Write for a SYN: [TS block | NOP NOP SACKP] [NOP WS]
            var ts = a.NewLabel();
            var ws24 = a.NewLabel();
            var ws28 = a.NewLabel();
            var ws36 = a.NewLabel();
            var options = a.NewLabel();
            a.Load(BPF_DW, EbpfReg.R1, EbpfReg.R10, SlotTs);
            a.Jump(BPF_JNE, EbpfReg.R1, 0, ts);
            a.Load(BPF_DW, EbpfReg.R1, EbpfReg.R10, SlotSack);
            a.Jump(BPF_JEQ, EbpfReg.R1, 0, ws24);
            Bounds(a, L3, t + 28, broken);
            a.Store(BPF_W, L3, (short)(t + 24), AsLoaded32(0x01010402));
            a.Goto(ws28);

            a.Mark(ts);
            Bounds(a, L3, t + 36, broken);
            var noSack = a.NewLabel();
            var tsBody = a.NewLabel();
            a.Load(BPF_DW, EbpfReg.R1, EbpfReg.R10, SlotSack);
            a.Jump(BPF_JEQ, EbpfReg.R1, 0, noSack);
            a.Store(BPF_W, L3, (short)(t + 24), AsLoaded32(0x0402080a));
            a.Goto(tsBody);
            a.Mark(noSack);
            a.Store(BPF_W, L3, (short)(t + 24), AsLoaded32(0x0101080a));
            a.Mark(tsBody);
            a.Load(BPF_DW, EbpfReg.R0, EbpfReg.R10, SlotOurTsVal);
            a.Swap(EbpfReg.R0, 32);
            a.Store(BPF_W, L3, (short)(t + 28), EbpfReg.R0);
            a.Load(BPF_DW, EbpfReg.R0, EbpfReg.R10, SlotTsVal);
            a.Store(BPF_W, L3, (short)(t + 32), EbpfReg.R0);
            a.Goto(ws36);

            foreach ((EbpfAssembler.Label label, int offset) in new[] { (ws24, 24), (ws28, 28), (ws36, 36) })
            {
                a.Mark(label);
                a.Load(BPF_DW, EbpfReg.R1, EbpfReg.R10, SlotWs);
                a.Jump(BPF_JEQ, EbpfReg.R1, WsNone, options);
                Bounds(a, L3, t + offset + 4, broken);
                a.Store(BPF_W, L3, (short)(t + offset), AsLoaded32(0x01030300u | (byte)_s.WindowScale));
                a.Goto(options);
            }

            // TCP checksum over the pseudo-header and our header (R5 bytes, at most 40: the frame ends there).
            a.Mark(options);
            TcpSum(maxWords: 10, broken);
            a.Xor64(EbpfReg.R0, 0xffff);
            a.Store(BPF_H, L3, (short)(t + 16), EbpfReg.R0);

            Count(CounterSynAckSent);
            a.Mov64(EbpfReg.R0, Interop.Bpf.XDP_TX);
            a.Exit();

            a.Mark(broken);
            Count(CounterInternalError);
            a.Mov64(EbpfReg.R0, Interop.Bpf.XDP_DROP);
            a.Exit();
        }
    }
}
