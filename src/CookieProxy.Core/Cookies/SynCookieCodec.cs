using System.Runtime.CompilerServices;
using CookieProxy.Crypto;
using CookieProxy.Diagnostics;
using CookieProxy.Wire;

namespace CookieProxy.Cookies;

/// <summary>What the client asked for in its SYN and the cookie carries to the ACK.</summary>
public struct SynOptions
{
    /// <summary>The client's MSS (0 = option absent).</summary>
    public ushort Mss;
    /// <summary>The client's window-scale shift; -1 = option absent.</summary>
    public sbyte WindowScale;
    public bool SackPermitted;
    /// <summary>The client sent a timestamps option (then the SYN+ACK TSval carries more, see <see cref="SynCookieCodec"/>).</summary>
    public bool Timestamps;
    /// <summary>The SYN had ECE and CWR (RFC 3168 6.1.1). Recorded only: CookieProxy does not negotiate ECN.</summary>
    public bool EcnRequested;

    public static SynOptions FromSyn(in TcpRepr syn) => new()
    {
        Mss = syn.Options.Mss,
        WindowScale = syn.Options.WindowScale,
        SackPermitted = syn.Options.SackPermitted,
        Timestamps = syn.Options.HasTimestamp,
        EcnRequested = (syn.Flags & (TcpFlags.Ece | TcpFlags.Cwr)) == (TcpFlags.Ece | TcpFlags.Cwr),
    };
}

/// <summary>The connection parameters recovered from a valid cookie ACK.</summary>
public struct CookieDecoded
{
    /// <summary>Largest segment the client accepts (table value, rounded down from what it sent).</summary>
    public ushort Mss;
    /// <summary>The client's window-scale shift; -1 when it sent none.</summary>
    public sbyte WindowScale;
    public bool SackPermitted;
    /// <summary>Timestamps were negotiated: the ACK carries a TS option whose TSecr passed the second MAC.</summary>
    public bool Timestamps;
    public bool EcnRequested;
    /// <summary>Client ISN (IRS) = SEG.SEQ - 1 of the ACK.</summary>
    public uint ClientIsn;
    /// <summary>Our ISN (ISS) = the cookie = SEG.ACK - 1.</summary>
    public uint LocalIsn;
    /// <summary>Our SYN+ACK TSval (echoed back as TSecr); 0 without timestamps.</summary>
    public uint LocalTsVal;
}

/// <summary>
/// Stateless SYN cookies: a keyed SipHash-2-4 MAC of the 4-tuple, a time slot and the client ISN,
/// plus the client's options, packed into our ISN (and, when the client offered timestamps, our TSval).
///
/// <para>ISN layout (32 bits, big end left):</para>
/// <code>
///  31                                   8 7       5 4       2   1   0
/// +--------------------------------------+---------+---------+---+---+
/// |          MAC = H[23:0]               |   WSI   |   MSI   | S | P |
/// +--------------------------------------+---------+---------+---+---+
///   H   = SipHash-2-4(key, saddr, daddr, sport, dport, slot, client ISN)   (64 bits)
///   WSI = window-scale index into CookieTables.WindowScale (0 = none)      \
///   MSI = MSS index into CookieTables.Mss                                    } XORed with H[30:24]
///   S   = SACK permitted                                                    /  so they are not in clear
///   P   = parity of the time slot, in clear: the validator needs it to pick the slot before it can compute H
/// </code>
/// <para>Why this shape: FreeBSD's syncache cookie (24-bit MAC, 3-bit wscale, 3-bit MSS, SACK, odd/even bit)
/// keeps wscale and SACK when the client sends no timestamps; Linux's cookie (and so netfilter SYNPROXY)
/// drops them in that case. We keep them, and use SipHash like both.</para>
///
/// <para>TSval layout, only when the client's SYN carried timestamps (RFC 7323):</para>
/// <code>
///  31                                   8 7     5   4   3           0
/// +--------------------------------------+-------+---+---------------+
/// |          MAC2 = H[55:32]             | 0 0 0 | E |   WS exact    |
/// +--------------------------------------+-------+---+---------------+
///   WS exact = the client's shift 0..14 (15 = none), so timestamps clients lose no precision;
///   E = ECN requested. MAC2 adds 24 more MAC bits (48 in all) that a forger must also hit.
/// </code>
/// Our TSval clock for the connection then continues from this value (see TcpHandshake.LocalTsInitial),
/// so it needs no relation to wall time; PAWS on the client only needs it to increase afterwards.
///
/// <para>Time: slot = floor(unix seconds / SlotSeconds). A cookie is accepted in its own slot and the next
/// one, so it lives between SlotSeconds and 2 × SlotSeconds (default 32 s: 32–64 s; Linux ≈ 60–120 s,
/// FreeBSD 15–30 s). Several instances sharing a key file (and NTP time) validate each other's cookies.</para>
/// <para>Key rotation: a codec may hold the previous key as well. New cookies always use the current key; an ACK
/// whose cookie fails under the current key is tried under the previous one, so the cookies handed out just
/// before a rotation still complete their handshakes (Linux keeps one syncookie secret for the boot; FreeBSD's
/// syncache rotates between two secrets the same way).</para>
/// </summary>
public sealed class SynCookieCodec
{
    public const int MinSlotSeconds = 30;
    public const int MaxSlotSeconds = 60;
    public const int DefaultSlotSeconds = 32;

    /// <summary>SipHash message words for an IPv4 cookie (24 bytes) and an IPv6 one (48 bytes).</summary>
    public const int WordsV4 = 3;
    public const int WordsV6 = 6;

    // The layout in the diagrams above. Public so that the XDP responder gets it from here, not from a copy.

    /// <summary>MAC bits in the ISN (and in the TSval).</summary>
    public const int MacBits = 24;
    private const uint MacMask = (1u << MacBits) - 1;

    /// <summary>Bit positions of WSI, MSI and S in the ISN (ComposeIsn).</summary>
    public const int OptionShiftWsi = 5;
    public const int OptionShiftMsi = 2;
    public const int OptionShiftSack = 1;
    private const uint ParityBit = 1;
    private const int TsWsMask = 0xF;

    /// <summary>The TSval's "WS exact" when the client sent no window scale, and its ECN bit.</summary>
    public const int TsWsNone = 0xF;
    public const uint TsEcnBit = 0x10;
    private const uint TsReservedMask = 0xE0;

    private readonly SipKey _key;
    private readonly SipKey _previousKey;
    private readonly bool _hasPreviousKey;

    /// <param name="key">The key new cookies are made with.</param>
    /// <param name="slotSeconds">The time slot (a cookie lives one to two slots).</param>
    /// <param name="previousKey">After a key rotation, the key before <paramref name="key"/>: cookies made under it
    /// still validate (for their lifetime; new ones are never made with it).</param>
    public SynCookieCodec(SipKey key, int slotSeconds = DefaultSlotSeconds, SipKey? previousKey = null)
    {
        if (slotSeconds < MinSlotSeconds || slotSeconds > MaxSlotSeconds)
        {
            throw new ArgumentOutOfRangeException(nameof(slotSeconds), slotSeconds,
                $"The cookie slot must be {MinSlotSeconds}..{MaxSlotSeconds} s so a cookie lives between 30 s and 2 min.");
        }
        _key = key;
        SlotSeconds = slotSeconds;
        if (previousKey is SipKey previous && previous != key)
        {
            _previousKey = previous;
            _hasPreviousKey = true;
        }
    }

    public int SlotSeconds { get; }

    public ref readonly SipKey Key => ref _key;

    /// <summary>The key before the last rotation, if cookies made under it still validate.</summary>
    public SipKey? PreviousKey => _hasPreviousKey ? _previousKey : null;

    public uint SlotAt(long unixMs) => (uint)(unixMs / 1000 / SlotSeconds);

    /// <summary>Writes the SipHash message for (tuple, slot, client ISN) as little-endian words into
    /// <paramref name="words"/> at stride <paramref name="stride"/> (structure-of-arrays for the SIMD batch:
    /// word w of this message goes to words[w * stride]). Returns the word count (3 for IPv4, 6 for IPv6).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static int WriteMessage(in FlowKey tuple, uint slot, uint clientIsn, Span<ulong> words, int stride)
    {
        ulong portsAndSlot = tuple.SrcPort | ((ulong)tuple.DstPort << 16) | ((ulong)slot << 32);
        if (tuple.IsV4)
        {
            words[0] = tuple.SrcAddr.V4 | ((ulong)tuple.DstAddr.V4 << 32);
            words[stride] = portsAndSlot;
            words[2 * stride] = clientIsn;
            return WordsV4;
        }
        words[0] = tuple.SrcAddr.Hi;
        words[stride] = tuple.SrcAddr.Lo;
        words[2 * stride] = tuple.DstAddr.Hi;
        words[3 * stride] = tuple.DstAddr.Lo;
        words[4 * stride] = portsAndSlot;
        words[5 * stride] = clientIsn;
        return WordsV6;
    }

    /// <summary>The MAC for one tuple (scalar path: the ACK check and the reference for the batch path).</summary>
    public ulong Mac(in FlowKey tuple, uint slot, uint clientIsn) => Mac(_key, tuple, slot, clientIsn);

    private static ulong Mac(in SipKey key, in FlowKey tuple, uint slot, uint clientIsn)
    {
        // The same message layout as the batch path: WriteMessage is its one definition.
        Span<ulong> w = stackalloc ulong[WordsV6];
        return WriteMessage(tuple, slot, clientIsn, w, stride: 1) == WordsV4
            ? SipHash.Hash3(key, w[0], w[1], w[2])
            : SipHash.Hash6(key, w[0], w[1], w[2], w[3], w[4], w[5]);
    }

    /// <summary>Packs the ISN cookie from a MAC computed for <paramref name="slot"/> (SendClientSynAck).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint ComposeIsn(ulong mac, uint slot, in SynOptions options)
    {
        uint opts = ((uint)CookieTables.EncodeWindowScale(options.WindowScale) << (OptionShiftWsi - 1))
                  | ((uint)CookieTables.EncodeMss(options.Mss) << (OptionShiftMsi - 1))
                  | (options.SackPermitted ? 1u << (OptionShiftSack - 1) : 0u);
        opts ^= (uint)(mac >> MacBits) & 0x7F;
        return ((uint)mac & MacMask) << 8 | opts << 1 | (slot & ParityBit);
    }

    /// <summary>The SYN+ACK TSval when the client offered timestamps.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static uint ComposeTsVal(ulong mac, in SynOptions options)
    {
        uint ws = options.WindowScale < 0 ? TsWsNone : (uint)Math.Min((int)options.WindowScale, 14);
        return ((uint)(mac >> 32) & MacMask) << 8 | (options.EcnRequested ? TsEcnBit : 0) | ws;
    }

    /// <summary>Scalar convenience: the cookie ISN (and TSval) for one SYN.</summary>
    public uint Encode(in FlowKey tuple, uint clientIsn, in SynOptions options, long unixMs, out uint tsVal)
    {
        uint slot = SlotAt(unixMs);
        ulong mac = Mac(tuple, slot, clientIsn);
        tsVal = options.Timestamps ? ComposeTsVal(mac, options) : 0;
        return ComposeIsn(mac, slot, options);
    }

    /// <summary>
    /// RecvClientAck: checks a returning ACK against the cookie. Returns <see cref="DropReason.None"/> when
    /// valid; otherwise why not (CookieAckWithRstOrSyn, CookieNoAck, CookieInvalid, CookieExpired).
    /// </summary>
    public DropReason Validate(in FlowKey tuple, in TcpRepr ack, long unixMs, out CookieDecoded decoded)
    {
        decoded = default;
        // Linux syncookies.c rejects RST ("!th->ack || th->rst"); gVisor #6076 accepted RST+ACK. A SYN here is
        // a new handshake, never a cookie ACK.
        if ((ack.Flags & (TcpFlags.Rst | TcpFlags.Syn)) != 0)
        {
            return DropReason.CookieAckWithRstOrSyn;
        }
        if ((ack.Flags & TcpFlags.Ack) == 0)
        {
            return DropReason.CookieNoAck;
        }

        uint isn = ack.Ack.Value - 1;
        uint clientIsn = ack.Seq.Value - 1;
        uint nowSlot = SlotAt(unixMs);
        // P picks the slot: ours now, or the previous one (a cookie lives one to two slots).
        uint slot = (isn & ParityBit) == (nowSlot & ParityBit) ? nowSlot : nowSlot - 1;
        ulong mac = Mac(_key, tuple, slot, clientIsn);
        if ((isn >> 8) != ((uint)mac & MacMask))
        {
            // After a key rotation: a cookie made under the previous key is as good for its lifetime. Only on the
            // failure path of the current key, so a forged ACK costs one MAC more while a previous key is kept.
            ulong previous = _hasPreviousKey ? Mac(_previousKey, tuple, slot, clientIsn) : 0;
            if (!_hasPreviousKey || (isn >> 8) != ((uint)previous & MacMask))
            {
                // Tell "too old" from "forged" for the counters: one more MAC, only on the failure path.
                ulong older = Mac(_key, tuple, slot - 2, clientIsn);
                return (isn >> 8) == ((uint)older & MacMask) ? DropReason.CookieExpired : DropReason.CookieInvalid;
            }
            mac = previous;
        }

        uint opts = ((isn >> 1) & 0x7F) ^ ((uint)(mac >> MacBits) & 0x7F);
        int wsi = (int)(opts >> (OptionShiftWsi - 1)) & 0x7;
        int msi = (int)(opts >> (OptionShiftMsi - 1)) & 0x7;
        decoded.Mss = CookieTables.Mss[msi];
        decoded.WindowScale = CookieTables.WindowScale[wsi];
        decoded.SackPermitted = (opts & (1u << (OptionShiftSack - 1))) != 0;
        decoded.ClientIsn = clientIsn;
        decoded.LocalIsn = isn;

        // RFC 7323 3.2: the client sends timestamps on the ACK only if both SYNs carried them, i.e. only if it
        // offered them in its SYN, which is exactly when our TSval is a second MAC. Check it.
        if (ack.Options.HasTimestamp)
        {
            uint tsEcr = ack.Options.TsEcr;
            if ((tsEcr >> 8) != ((uint)(mac >> 32) & MacMask) || (tsEcr & TsReservedMask) != 0)
            {
                return DropReason.CookieInvalid;
            }
            uint ws = tsEcr & TsWsMask;
            decoded.WindowScale = ws == TsWsNone ? (sbyte)-1 : (sbyte)ws;
            decoded.EcnRequested = (tsEcr & TsEcnBit) != 0;
            decoded.Timestamps = true;
            decoded.LocalTsVal = tsEcr;
        }
        return DropReason.None;
    }
}
