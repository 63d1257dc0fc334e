#!/usr/bin/env python3
"""Packet reordering for the lab's lossy path, where the kernel has no sch_netem.

An NFQUEUE consumer speaking raw nfnetlink (no libnetfilter_queue, no third-party modules). nftables
sends packets to the queue (`queue num 7 bypass`); this program accepts every one of them, but holds
a seeded-random share back and releases each held packet only after the next K (1..--max-hold)
packets from the same netfilter hook have been accepted, or after --hold-timeout-ms, whichever
comes first. Packets from one hook are one direction of the lab flows, so a held packet is really
overtaken by its successors: netem's "reorder" without netem. It never drops a packet itself (loss
and duplication stay with nftables), and the kernel accepts packets itself when the queue is full
(NFQA_CFG_F_FAIL_OPEN) or when no program is bound (the rule's `bypass` flag).

Message formats: include/uapi/linux/netfilter/nfnetlink_queue.h, nfnetlink.h, linux/netlink.h;
the configuration sequence follows libnetfilter_queue (nfq_bind_pf, nfq_create_queue,
nfq_set_mode, nfq_set_queue_maxlen, nfq_set_queue_flags).

Usage: lab-reorder.py [--queue N] [--reorder PCT] [--seed S] [--max-hold N] [--hold-timeout-ms T]
                      [--max-held N] [--duration SEC] [--stats] [--stats-file PATH]
"""

import argparse
import errno
import json
import os
import random
import select
import signal
import socket
import struct
import sys
import time

# linux/netlink.h
NETLINK_NETFILTER = 12
NLMSG_ERROR = 2
NLMSG_DONE = 3
NLMSG_OVERRUN = 4
NLM_F_REQUEST = 0x1
NLM_F_ACK = 0x4
NLA_TYPE_MASK = 0x3FFF  # ~(NLA_F_NESTED | NLA_F_NET_BYTEORDER)
SOL_NETLINK = 270
NLMSGHDR = struct.Struct("=IHHII")  # len, type, flags, seq, pid (host byte order)
NLATTR = struct.Struct("=HH")  # nla_len, nla_type

# linux/netfilter/nfnetlink.h: message type = subsystem << 8 | message; struct nfgenmsg
NFNL_SUBSYS_QUEUE = 3
NFNETLINK_V0 = 0
NFGENMSG = struct.Struct("!BBH")  # nfgen_family, version, res_id (big-endian queue number)

# linux/netfilter/nfnetlink_queue.h
NFQNL_MSG_PACKET = 0
NFQNL_MSG_VERDICT = 1
NFQNL_MSG_CONFIG = 2
NFQA_PACKET_HDR = 1
NFQA_VERDICT_HDR = 2
NFQA_CFG_CMD = 1
NFQA_CFG_PARAMS = 2
NFQA_CFG_QUEUE_MAXLEN = 3
NFQA_CFG_MASK = 4
NFQA_CFG_FLAGS = 5
NFQNL_CFG_CMD_BIND = 1
NFQNL_CFG_CMD_UNBIND = 2
NFQNL_CFG_CMD_PF_BIND = 3
NFQNL_CFG_CMD_PF_UNBIND = 4
NFQNL_COPY_META = 1
NFQA_CFG_F_FAIL_OPEN = 1 << 0
PACKET_HDR = struct.Struct("!IHB")  # struct nfqnl_msg_packet_hdr: packet_id, hw_protocol, hook
VERDICT_HDR = struct.Struct("!II")  # struct nfqnl_msg_verdict_hdr: verdict, id
CONFIG_CMD = struct.Struct("!BxH")  # struct nfqnl_msg_config_cmd: command, _pad, pf
CONFIG_PARAMS = struct.Struct("!IB")  # struct nfqnl_msg_config_params (packed): copy_range, copy_mode

# linux/netfilter.h
NF_ACCEPT = 1
HOOK_NAMES = {0: "prerouting", 1: "input", 2: "forward", 3: "output", 4: "postrouting"}


def nla(attr_type, payload):
    """One netlink attribute, padded to NLA_ALIGNTO (4)."""
    length = NLATTR.size + len(payload)
    return NLATTR.pack(length, attr_type) + payload + b"\0" * (-length & 3)


def nfq_message(msg, flags, seq, family, queue, attrs):
    body = NFGENMSG.pack(family, NFNETLINK_V0, queue) + b"".join(attrs)
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), NFNL_SUBSYS_QUEUE << 8 | msg, flags, seq, 0) + body


def parse_attrs(data, offset, end):
    attrs = {}
    while offset + NLATTR.size <= end:
        length, attr_type = NLATTR.unpack_from(data, offset)
        if length < NLATTR.size or offset + length > end:
            break
        attrs[attr_type & NLA_TYPE_MASK] = (offset + NLATTR.size, length - NLATTR.size)
        offset += (length + 3) & ~3
    return attrs


class Reorderer:
    def __init__(self, args):
        self.args = args
        self.rng = random.Random(args.seed)
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_NETFILTER)
        # Root may exceed rmem_max: a burst of queued packets must not overflow the socket (ENOBUFS
        # loses the messages, and their packets then wait in the kernel until we unbind).
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, 33, 8 << 20)  # SO_RCVBUFFORCE
        except OSError:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
        self.sock.bind((0, 0))
        self.seq = 0
        self.buffer = bytearray(1 << 18)
        # Held packets per netfilter hook (one hook is one direction): [id, remaining, deadline, overtaken].
        self.held = {}
        self.held_count = 0
        self.stats = {
            "queue": args.queue, "reorder_pct": args.reorder, "seed": args.seed,
            "seen": 0, "accepted": 0, "held": 0, "reordered": 0, "released_by_timeout": 0,
            "max_held": 0, "enobufs": 0, "netlink_errors": 0, "running": True,
            "reordered_by_hook": {},
        }
        self.last_stats_write = 0.0

    # -- configuration (nfq_bind_pf, nfq_create_queue, nfq_set_mode, ...) -----------------------------

    def request(self, family, queue, attrs):
        self.seq += 1
        seq = self.seq
        self.sock.send(nfq_message(NFQNL_MSG_CONFIG, NLM_F_REQUEST | NLM_F_ACK, seq, family, queue, attrs))
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            if not select.select([self.sock], [], [], 0.5)[0]:
                continue
            # Packets may already arrive (rules installed before us): they are handled, not lost.
            n = self.sock.recv_into(self.buffer)
            error = self.handle_datagram(n, time.monotonic(), seq)
            if error is not None:
                if error:
                    raise OSError(-error, os.strerror(-error))
                return
        raise TimeoutError("no netlink acknowledgement")

    def bind(self):
        q = self.args.queue
        # Needed only before Linux 3.8 (PF_[UN]BIND are no-ops since); harmless, as libnetfilter_queue does.
        for command in (NFQNL_CFG_CMD_PF_UNBIND, NFQNL_CFG_CMD_PF_BIND):
            try:
                self.request(socket.AF_INET, 0, [nla(NFQA_CFG_CMD, CONFIG_CMD.pack(command, socket.AF_INET))])
            except OSError:
                pass
        self.request(socket.AF_UNSPEC, q, [nla(NFQA_CFG_CMD, CONFIG_CMD.pack(NFQNL_CFG_CMD_BIND, 0))])
        # Metadata only: the verdict needs just the packet id and the hook.
        self.request(socket.AF_UNSPEC, q, [nla(NFQA_CFG_PARAMS, CONFIG_PARAMS.pack(0, NFQNL_COPY_META))])
        self.request(socket.AF_UNSPEC, q, [nla(NFQA_CFG_QUEUE_MAXLEN, struct.pack("!I", self.args.queue_maxlen))])
        # A full queue accepts instead of dropping: loss belongs to the nftables rules alone.
        self.request(socket.AF_UNSPEC, q, [nla(NFQA_CFG_MASK, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN)),
                                           nla(NFQA_CFG_FLAGS, struct.pack("!I", NFQA_CFG_F_FAIL_OPEN))])
        # Verdict errors are counted, not fatal; the ENOBUFS report itself stays on (it is counted too).

    # -- packets -----------------------------------------------------------------------------------

    def accept(self, packet_id):
        self.sock.send(nfq_message(NFQNL_MSG_VERDICT, NLM_F_REQUEST, 0, socket.AF_UNSPEC, self.args.queue,
                                   [nla(NFQA_VERDICT_HDR, VERDICT_HDR.pack(NF_ACCEPT, packet_id))]))
        self.stats["accepted"] += 1

    def release(self, hook, entry, by_timeout):
        self.accept(entry[0])
        self.held_count -= 1
        if entry[3] > 0:
            self.stats["reordered"] += 1
            by_hook = self.stats["reordered_by_hook"]
            name = HOOK_NAMES.get(hook, str(hook))
            by_hook[name] = by_hook.get(name, 0) + 1
        if by_timeout:
            self.stats["released_by_timeout"] += 1

    def on_packet(self, packet_id, hook, now):
        self.stats["seen"] += 1
        queue = self.held.setdefault(hook, [])
        if self.held_count < self.args.max_held and self.rng.random() * 100 < self.args.reorder:
            remaining = self.rng.randint(1, self.args.max_hold)
            queue.append([packet_id, remaining, now + self.args.hold_timeout_ms / 1000, 0])
            self.held_count += 1
            self.stats["held"] += 1
            self.stats["max_held"] = max(self.stats["max_held"], self.held_count)
            return
        self.accept(packet_id)
        # This packet overtook every packet held on its hook; release those whose K is used up.
        keep = []
        for entry in queue:
            entry[1] -= 1
            entry[3] += 1
            if entry[1] <= 0:
                self.release(hook, entry, False)
            else:
                keep.append(entry)
        self.held[hook] = keep

    def release_expired(self, now, everything=False):
        for hook, queue in self.held.items():
            if not queue:
                continue
            keep = []
            for entry in queue:
                if everything or entry[2] <= now:
                    self.release(hook, entry, True)
                else:
                    keep.append(entry)
            self.held[hook] = keep

    def next_deadline(self):
        return min((e[2] for q in self.held.values() for e in q), default=None)

    def read_available(self, limit):
        """Handle up to `limit` queued messages without blocking; returns how many datagrams were read."""
        reads = 0
        while reads < limit:
            try:
                n = self.sock.recv_into(self.buffer, 0, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno == errno.ENOBUFS:
                    self.stats["enobufs"] += 1
                    continue
                raise
            reads += 1
            self.handle_datagram(n, time.monotonic(), None)
        return reads

    def handle_datagram(self, n, now, ack_seq):
        """Handles the netlink messages in self.buffer[:n]; returns the error code acknowledging ack_seq, if seen."""
        acked = None
        offset = 0
        while offset + NLMSGHDR.size <= n:
            length, msg_type, _, seq, _ = NLMSGHDR.unpack_from(self.buffer, offset)
            if length < NLMSGHDR.size or offset + length > n:
                break
            if msg_type == NFNL_SUBSYS_QUEUE << 8 | NFQNL_MSG_PACKET:
                attrs = parse_attrs(self.buffer, offset + NLMSGHDR.size + NFGENMSG.size, offset + length)
                hdr = attrs.get(NFQA_PACKET_HDR)
                if hdr is not None and hdr[1] >= PACKET_HDR.size:
                    packet_id, _, hook = PACKET_HDR.unpack_from(self.buffer, hdr[0])
                    self.on_packet(packet_id, hook, now)
            elif msg_type == NLMSG_ERROR:
                error = struct.unpack_from("=i", self.buffer, offset + NLMSGHDR.size)[0]
                if ack_seq is not None and seq == ack_seq:
                    acked = error
                elif error != 0:
                    self.stats["netlink_errors"] += 1
            offset += (length + 3) & ~3
        return acked

    def write_stats(self, final=False):
        self.stats["running"] = not final
        if self.args.stats_file:
            tmp = self.args.stats_file + ".tmp"
            with open(tmp, "w") as f:
                json.dump(self.stats, f)
                f.write("\n")
            os.replace(tmp, self.args.stats_file)
        self.last_stats_write = time.monotonic()

    def run(self, stop):
        self.bind()
        self.write_stats()
        print(f"lab-reorder: bound to queue {self.args.queue}, reorder {self.args.reorder}%, "
              f"hold 1..{self.args.max_hold} packets or {self.args.hold_timeout_ms} ms", flush=True)
        end = time.monotonic() + self.args.duration
        while not stop["now"]:
            now = time.monotonic()
            if now >= end:
                break
            timeout = min(end - now, 0.1)
            deadline = self.next_deadline()
            if deadline is not None:
                timeout = max(0.0, min(timeout, deadline - now))
            if select.select([self.sock], [], [], timeout)[0]:
                self.read_available(64)
            now = time.monotonic()
            self.release_expired(now)
            if now - self.last_stats_write >= 1:
                self.write_stats()
        # Leave nothing held, then answer whatever is still queued until the queue is quiet (the
        # caller removes the nft rules first); closing the socket unbinds the queue.
        self.release_expired(0, everything=True)
        quiet_since = time.monotonic()
        give_up = quiet_since + 1
        while time.monotonic() < give_up and time.monotonic() - quiet_since < 0.05:
            if select.select([self.sock], [], [], 0.01)[0] and self.read_available(64):
                self.release_expired(0, everything=True)
                quiet_since = time.monotonic()
        self.release_expired(0, everything=True)
        self.sock.close()
        self.write_stats(final=True)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--queue", type=int, default=7, help="NFQUEUE number (default 7)")
    p.add_argument("--reorder", type=float, default=25.0, help="percent of packets held back (default 25)")
    p.add_argument("--seed", type=int, default=1, help="RNG seed (default 1)")
    p.add_argument("--max-hold", type=int, default=3, help="a held packet is overtaken by 1..N packets (default 3)")
    p.add_argument("--hold-timeout-ms", type=float, default=5.0, help="release a held packet after T ms (default 5)")
    p.add_argument("--max-held", type=int, default=64, help="at most N packets held at once (default 64)")
    p.add_argument("--queue-maxlen", type=int, default=4096, help="kernel queue length (default 4096)")
    p.add_argument("--duration", type=float, default=600.0, help="exit after SEC seconds (default 600)")
    p.add_argument("--stats", action="store_true", help="print the counters to stdout at exit")
    p.add_argument("--stats-file", help="JSON counters, rewritten every second and at exit")
    args = p.parse_args()
    if not (0 <= args.reorder <= 100 and 0 <= args.queue <= 65535 and args.max_hold >= 1
            and args.hold_timeout_ms > 0 and args.max_held >= 1 and 0 < args.duration <= 86400):
        p.error("argument out of range")

    stop = {"now": False}

    def on_signal(signum, frame):
        stop["now"] = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    reorderer = Reorderer(args)
    try:
        reorderer.run(stop)
    except OSError as e:
        print(f"lab-reorder: {e}", file=sys.stderr)
        return 1
    if args.stats:
        s = reorderer.stats
        print(f"lab-reorder: seen={s['seen']} accepted={s['accepted']} held={s['held']} "
              f"reordered={s['reordered']} released_by_timeout={s['released_by_timeout']} "
              f"max_held={s['max_held']} enobufs={s['enobufs']} netlink_errors={s['netlink_errors']} "
              f"reordered_by_hook={json.dumps(s['reordered_by_hook'], separators=(',', ':'))}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
