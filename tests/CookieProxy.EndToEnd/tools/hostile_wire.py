#!/usr/bin/env python3
"""Raw-socket senders for the hostile tier (HostileTests.cs); run in the client namespace, as root.

Standard library only (no scapy). Every mode is bounded in count and time.

  handshake  SYN -> SYN+ACK with raw sockets; writes the ACK that would complete it (never sent) to --out,
             with the unix time of the SYN+ACK. With --control, a second handshake is completed at once and
             reset with an exact RST, to show that the crafted ACKs are valid while fresh.
  send       sends the IPv4 packet stored by `handshake` (the replay after the cookie expired).
  blind      RFC 5961 blind attacks on a live flow: learns the flow's sequence numbers from the client's own
             segments (AF_PACKET), sends in-window (not exact) RSTs, then SYNs, with its 4-tuple, and counts
             the pure ACKs (challenge ACKs) the server sends back.
  mutate     COUNT randomly mutated frames from a seed corpus (hex files, pcaps, the handshake's packets),
             with a fixed SEED, at most PPS frames per second, on DEV (AF_PACKET).
"""
import argparse
import glob
import json
import os
import random
import select
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
ETH_P_IP = 0x0800
ETH_P_IPV6 = 0x86DD
PACKET_HOST = 0
PACKET_OUTGOING = 4
FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


def csum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack("!%dH" % (len(data) // 2), data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ip4(src: str, dst: str, payload: bytes, proto: int = 6, ident: int = 0) -> bytes:
    hdr = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(payload), ident, 0x4000, 64, proto, 0,
                      socket.inet_aton(src), socket.inet_aton(dst))
    hdr = hdr[:10] + struct.pack("!H", csum(hdr)) + hdr[12:]
    return hdr + payload


def tcp4(src: str, dst: str, sport: int, dport: int, seq: int, ack: int, flags: int,
         window: int = 64240, options: bytes = b"", payload: bytes = b"") -> bytes:
    off = (20 + len(options)) // 4
    seg = struct.pack("!HHIIBBHHH", sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF, off << 4, flags, window, 0, 0)
    seg += options + payload
    pseudo = socket.inet_aton(src) + socket.inet_aton(dst) + struct.pack("!BBH", 0, 6, len(seg))
    c = csum(pseudo + seg)
    seg = seg[:16] + struct.pack("!H", c) + seg[18:]
    return ip4(src, dst, seg, ident=random.getrandbits(16))


def parse_tcp4(pkt: bytes):
    """(src, dst, sport, dport, seq, ack, flags, payload_len) of an IPv4 TCP packet, or None."""
    if len(pkt) < 40 or pkt[0] >> 4 != 4 or pkt[9] != 6:
        return None
    ihl = (pkt[0] & 0xF) * 4
    total = struct.unpack("!H", pkt[2:4])[0]
    if len(pkt) < ihl + 20:
        return None
    sport, dport, seq, ack, off, flags = struct.unpack("!HHIIBB", pkt[ihl:ihl + 14])
    plen = min(total, len(pkt)) - ihl - (off >> 4) * 4
    return socket.inet_ntoa(pkt[12:16]), socket.inet_ntoa(pkt[16:20]), sport, dport, seq, ack, flags, plen


def raw_sender() -> socket.socket:
    return socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_RAW)  # IP_HDRINCL implied


def send_ip(sock: socket.socket, pkt: bytes) -> None:
    sock.sendto(pkt, (socket.inet_ntoa(pkt[16:20]), 0))


def wait_synack(rx: socket.socket, src: str, dst: str, sport: int, dport: int, isn: int, timeout: float):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([rx], [], [], max(0.0, deadline - time.monotonic()))
        if not r:
            break
        pkt = rx.recv(65535)
        t = parse_tcp4(pkt)
        if t and t[0] == dst and t[1] == src and t[2] == dport and t[3] == sport \
                and t[6] & (SYN | ACK) == (SYN | ACK) and t[5] == (isn + 1) & 0xFFFFFFFF:
            return t, pkt
    return None, None


def one_handshake(tx, rx, src, dst, dport):
    mss = struct.pack("!BBH", 2, 4, 1460)
    for _ in range(3):
        sport = random.randint(20000, 60999)
        isn = random.getrandbits(32)
        syn = tcp4(src, dst, sport, dport, isn, 0, SYN, options=mss)
        send_ip(tx, syn)
        t, synack = wait_synack(rx, src, dst, sport, dport, isn, 3.0)
        if t:
            ack = tcp4(src, dst, sport, dport, isn + 1, t[4] + 1, ACK, window=502)
            return sport, isn, syn, synack, ack, time.time()
    return None


def cmd_handshake(a) -> int:
    tx = raw_sender()
    rx = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_TCP)
    hs = one_handshake(tx, rx, a.src, a.dst, a.dport)
    if hs is None:
        print("no SYN+ACK after 3 SYNs", file=sys.stderr)
        return 1
    sport, isn, syn, synack, ack, when = hs
    out = {"sport": sport, "unix": when, "syn": syn.hex(), "synack": synack.hex(), "ack": ack.hex()}
    if a.control:
        c = one_handshake(tx, rx, a.src, a.dst, a.dport)
        if c is None:
            print("control: no SYN+ACK", file=sys.stderr)
            return 1
        csport, cisn, _, csynack, cack, _ = c
        send_ip(tx, cack)
        time.sleep(0.5)
        # The exact RST (seq = RCV.NXT) ends the control flow (RFC 5961 3.2).
        send_ip(tx, tcp4(a.src, a.dst, csport, a.dport, cisn + 1, 0, RST, window=0))
        out["control_sport"] = csport
    with open(a.out, "w") as f:
        json.dump(out, f)
    print(json.dumps({k: v for k, v in out.items() if k in ("sport", "unix", "control_sport")}))
    return 0


def cmd_send(a) -> int:
    with open(a.file) as f:
        pkt = bytes.fromhex(json.load(f)[a.field])
    tx = raw_sender()
    for _ in range(a.count):
        send_ip(tx, pkt)
    print("sent %d" % a.count)
    return 0


def cmd_blind(a) -> int:
    sniff = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    # Room for the download's frames while we send: the challenge ACKs must not be lost in our own buffer.
    sniff.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    sniff.bind((a.dev, 0))
    tx = raw_sender()

    def frames(seconds: float):
        deadline = time.monotonic() + seconds
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return
            r, _, _ = select.select([sniff], [], [], left)
            if not r:
                return
            data, addr = sniff.recvfrom(65535)
            if len(data) < 14 or struct.unpack("!H", data[12:14])[0] != ETH_P_IP:
                continue
            t = parse_tcp4(data[14:])
            if t:
                yield addr[2], t

    # The client's own segments carry SEG.SEQ = the server's RCV.NXT.
    rcv_nxt = None
    for kind, t in frames(5.0):
        if kind == PACKET_OUTGOING and t[0] == a.src and t[1] == a.dst and t[2] == a.sport and t[3] == a.dport:
            rcv_nxt = t[4]
            break
    if rcv_nxt is None:
        print("no segment of the live flow seen in 5 s", file=sys.stderr)
        return 1

    def challenge_acks(seconds: float) -> int:
        n = 0
        for kind, t in frames(seconds):
            if kind == PACKET_HOST and t[0] == a.dst and t[1] == a.src and t[2] == a.dport and t[3] == a.sport \
                    and t[6] == ACK and t[7] == 0 and t[5] == rcv_nxt:
                n += 1
        return n

    result = {"rcv_nxt": rcv_nxt}
    # RSTs inside the window but never at RCV.NXT itself: a blind attacker guessing (RFC 5961 3).
    for i in range(a.rst):
        send_ip(tx, tcp4(a.src, a.dst, a.sport, a.dport, rcv_nxt + 1 + 13 * i, 0, RST, window=0))
    result["rst_sent"] = a.rst
    result["rst_challenge_acks"] = challenge_acks(1.2)
    # SYNs with the live 4-tuple: any SYN in a synchronized state gets a challenge ACK (RFC 5961 4.2).
    for _ in range(a.syn):
        send_ip(tx, tcp4(a.src, a.dst, a.sport, a.dport, random.getrandbits(32), 0, SYN,
                         options=struct.pack("!BBH", 2, 4, 1460)))
    result["syn_sent"] = a.syn
    result["syn_challenge_acks"] = challenge_acks(1.2)
    print(json.dumps(result))
    return 0


# ---- mutate

def read_seeds(a):
    """(ethernet frame, keep_tuple) pairs: corpus hex files, pcaps (Ethernet), handshake packets (IPv4)."""
    seeds = []
    for path in sorted(glob.glob(os.path.join(a.corpus, "*.hex"))) if a.corpus else []:
        with open(path) as f:
            text = "".join(line.strip() for line in f if not line.startswith("#"))
        seeds.append((bytes.fromhex(text), False))
    for path in a.pcap or []:
        with open(path, "rb") as f:
            data = f.read()
        if len(data) < 24:
            continue
        endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        off = 24
        while off + 16 <= len(data):
            _, _, incl, _ = struct.unpack(endian + "IIII", data[off:off + 16])
            seeds.append((data[off + 16:off + 16 + incl], True))
            off += 16 + incl
    for path in a.handshake or []:
        with open(path) as f:
            hs = json.load(f)
        for field in ("syn", "ack"):
            seeds.append((b"\0" * 12 + struct.pack("!H", ETH_P_IP) + bytes.fromhex(hs[field]), True))
    return [s for s in seeds if len(s[0]) >= 34]


def fix_checksums(fr: bytearray) -> None:
    """Recomputes the IPv4 header and TCP checksums where the (mutated) lengths still allow it."""
    et = struct.unpack("!H", fr[12:14])[0]
    if et == ETH_P_IP and len(fr) >= 34:
        ihl = (fr[14] & 0xF) * 4
        if ihl < 20 or 14 + ihl > len(fr):
            return
        fr[24:26] = b"\0\0"
        fr[24:26] = struct.pack("!H", csum(bytes(fr[14:14 + ihl])))
        total = struct.unpack("!H", fr[16:18])[0]
        end = min(14 + total, len(fr))
        seg_start = 14 + ihl
        if fr[23] == 6 and end - seg_start >= 20:
            fr[seg_start + 16:seg_start + 18] = b"\0\0"
            pseudo = bytes(fr[26:34]) + struct.pack("!BBH", 0, 6, end - seg_start)
            fr[seg_start + 16:seg_start + 18] = struct.pack("!H", csum(pseudo + bytes(fr[seg_start:end])))
    elif et == ETH_P_IPV6 and len(fr) >= 74 and fr[20] == 6:
        plen = struct.unpack("!H", fr[18:20])[0]
        end = min(54 + plen, len(fr))
        if end - 54 >= 20:
            fr[54 + 16:54 + 18] = b"\0\0"
            pseudo = bytes(fr[22:54]) + struct.pack("!IxxxB", end - 54, 6)
            fr[54 + 16:54 + 18] = struct.pack("!H", csum(pseudo + bytes(fr[54:end])))


def retarget(fr: bytearray, rng: random.Random, dst: bytes, dst6: bytes, dport: int, src_net: bytes, src6: bytes) -> None:
    """A corpus TCP frame, re-addressed to a protected endpoint from a random source (never a lab host)."""
    et = struct.unpack("!H", fr[12:14])[0]
    if et == ETH_P_IP and len(fr) >= 34 and fr[23] == 6:
        fr[26:30] = src_net + bytes([rng.randrange(0, 256), rng.randrange(1, 255)])
        fr[30:34] = dst
        l4 = 14 + (fr[14] & 0xF) * 4
    elif et == ETH_P_IPV6 and len(fr) >= 54 and fr[20] == 6 and dst6:
        fr[22:38] = src6[:8] + bytes(rng.randrange(256) for _ in range(8))
        fr[38:54] = dst6
        l4 = 54
    else:
        return
    if len(fr) >= l4 + 4:
        fr[l4:l4 + 4] = struct.pack("!HH", rng.randrange(1024, 65536), dport)
    fix_checksums(fr)


OPS = ["flip", "byte", "truncate", "extend", "flags", "iplen", "ihl", "dataoff", "options", "frag", "proto"]


def mutate(fr: bytearray, rng: random.Random, stats: dict) -> bytearray:
    for _ in range(rng.randint(1, 3)):
        op = rng.choice(OPS)
        stats[op] = stats.get(op, 0) + 1
        l3 = 14
        v4 = struct.unpack("!H", fr[12:14])[0] == ETH_P_IP
        l4 = l3 + ((fr[l3] & 0xF) * 4 if v4 else 40)
        if op == "flip":
            for _ in range(rng.randint(1, 8)):
                i = rng.randrange(l3, len(fr))
                fr[i] ^= 1 << rng.randrange(8)
        elif op == "byte":
            fr[rng.randrange(l3, len(fr))] = rng.randrange(256)
        elif op == "truncate":
            del fr[rng.randrange(l3, len(fr)):]
        elif op == "extend":
            fr += bytes(rng.randrange(256) for _ in range(rng.randint(1, 64)))
        elif op == "flags" and len(fr) > l4 + 13:
            fr[l4 + 13] = rng.randrange(256)
        elif op == "iplen" and len(fr) > l3 + 6:
            if v4:
                fr[l3 + 2:l3 + 4] = struct.pack("!H", rng.randrange(65536))
            else:
                fr[l3 + 4:l3 + 6] = struct.pack("!H", rng.randrange(65536))
        elif op == "ihl" and v4:
            fr[l3] = (fr[l3] & 0xF0) | rng.randrange(16)
        elif op == "dataoff" and len(fr) > l4 + 12:
            fr[l4 + 12] = (rng.randrange(16) << 4) | (fr[l4 + 12] & 0xF)
        elif op == "options" and len(fr) > l4 + 20:
            for i in range(l4 + 20, min(len(fr), l4 + 60)):
                if rng.random() < 0.3:
                    fr[i] = rng.randrange(256)
        elif op == "frag" and v4 and len(fr) > l3 + 8:
            fr[l3 + 6:l3 + 8] = struct.pack("!H", rng.choice([0x2000, 0x0001, 0x2010, rng.randrange(65536)]))
        elif op == "proto" and len(fr) > l3 + 10:
            if v4:
                fr[l3 + 9] = rng.choice([1, 17, 41, 58, 132, rng.randrange(256)])
            else:
                fr[l3 + 6] = rng.choice([0, 43, 44, 60, 58, 17, rng.randrange(256)])
        if len(fr) < 15:
            fr += bytes(15 - len(fr))
    return fr


def cmd_mutate(a) -> int:
    rng = random.Random(a.seed)
    dst_mac = bytes.fromhex(a.dst_mac.replace(":", ""))
    src_mac = bytes.fromhex(a.src_mac.replace(":", ""))
    dst = socket.inet_aton(a.dst)
    src_net = bytes(int(x) for x in a.src_net.split("."))
    dst6 = socket.inet_pton(socket.AF_INET6, a.dst6) if a.dst6 else b""
    src6 = socket.inet_pton(socket.AF_INET6, a.src6)
    seeds = read_seeds(a)
    if not seeds:
        print("no seed frames", file=sys.stderr)
        return 1
    sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    sock.bind((a.dev, 0))
    stats = {}
    sent = failed = checksummed = 0
    t0 = time.monotonic()
    deadline = t0 + a.max_seconds
    for n in range(a.count):
        if time.monotonic() > deadline:
            break
        frame, keep = seeds[rng.randrange(len(seeds))]
        fr = bytearray(frame)
        fr[0:6] = dst_mac
        fr[6:12] = src_mac
        if not keep:
            retarget(fr, rng, dst, dst6, a.dport, src_net, src6)
        fr = mutate(fr, rng, stats)
        if rng.random() < a.fix_checksums:
            fix_checksums(fr)
            checksummed += 1
        # Always to the server, never ARP/RARP: an ARP frame has no checksum and could poison a neighbour table.
        fr[0:6] = dst_mac
        if fr[12:14] in (b"\x08\x06", b"\x80\x35"):
            fr[12:14] = b"\x08\x00"
        try:
            sock.send(bytes(fr[:a.max_len]))
            sent += 1
        except OSError:
            failed += 1
        if (n + 1) % 250 == 0:
            ahead = (n + 1) / a.pps - (time.monotonic() - t0)
            if ahead > 0:
                time.sleep(ahead)
    print(json.dumps({"sent": sent, "send_failed": failed, "seeds": len(seeds), "checksummed": checksummed,
                      "seconds": round(time.monotonic() - t0, 2), "ops": stats}))
    return 0


def main() -> int:
    ap = argparse.ArgumentParser()
    sub = ap.add_subparsers(dest="cmd", required=True)
    h = sub.add_parser("handshake")
    h.add_argument("--src", required=True)
    h.add_argument("--dst", required=True)
    h.add_argument("--dport", type=int, default=80)
    h.add_argument("--out", required=True)
    h.add_argument("--control", action="store_true")
    s = sub.add_parser("send")
    s.add_argument("--file", required=True)
    s.add_argument("--field", default="ack")
    s.add_argument("--count", type=int, default=1)
    b = sub.add_parser("blind")
    b.add_argument("--dev", required=True)
    b.add_argument("--src", required=True)
    b.add_argument("--sport", type=int, required=True)
    b.add_argument("--dst", required=True)
    b.add_argument("--dport", type=int, default=80)
    b.add_argument("--rst", type=int, default=50)
    b.add_argument("--syn", type=int, default=50)
    m = sub.add_parser("mutate")
    m.add_argument("--dev", required=True)
    m.add_argument("--dst-mac", required=True)
    m.add_argument("--src-mac", required=True)
    m.add_argument("--dst", required=True)
    m.add_argument("--dport", type=int, default=80)
    m.add_argument("--src-net", default="198.19", help="first two octets of the random sources (inside 198.18.0.0/15)")
    m.add_argument("--dst6", help="the protected IPv6 address (IPv6 seeds are re-addressed to it)")
    m.add_argument("--src6", default="2001:db8:ff::", help="the /64 of the random IPv6 sources")
    m.add_argument("--corpus")
    m.add_argument("--pcap", action="append")
    m.add_argument("--handshake", action="append")
    m.add_argument("--count", type=int, default=100000)
    m.add_argument("--seed", type=int, default=12)
    m.add_argument("--pps", type=float, default=20000)
    m.add_argument("--max-seconds", type=float, default=30)
    m.add_argument("--max-len", type=int, default=1514)
    m.add_argument("--fix-checksums", type=float, default=0.6, help="share of frames whose checksums are recomputed")
    a = ap.parse_args()
    return {"handshake": cmd_handshake, "send": cmd_send, "blind": cmd_blind, "mutate": cmd_mutate}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
