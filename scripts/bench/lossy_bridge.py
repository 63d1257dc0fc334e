#!/usr/bin/env python3
"""A lossy bridge for scripts/bench-lossy.sh: forwards Ethernet frames between two interfaces of a middle
namespace, impairing IPv4 TCP frames each way with seeded random loss, duplication and reordering.

The kernel here has no sch_netem, so this does in user space what `netem loss 3% duplicate 1% reorder 10%`
would: of the TCP frames in each direction, --loss percent are dropped, --dup percent sent twice, and
--reorder percent held back until 1..--max-hold later frames of the same direction have passed (or
--hold-ms elapsed), i.e. overtaken by them. Everything else (ARP, IPv6 ND) passes untouched, so the path
itself stays up. Both systems under test cross the same bridge with the same seed, in one run.

Usage: lossy_bridge.py --a IF --b IF [--loss PCT] [--dup PCT] [--reorder PCT] [--max-hold N]
                       [--hold-ms MS] [--seed S] [--duration SEC] [--stats-file PATH]
"""

import argparse
import json
import random
import select
import signal
import socket
import struct
import sys
import time

ETH_P_ALL = 0x0003
SOL_PACKET = 263
PACKET_IGNORE_OUTGOING = 23
PACKET_OUTGOING = 4
MAX_FRAME = 65536


class Direction:
    """One way through the bridge: its own random stream, held frames and counters."""

    def __init__(self, name, out_sock, args, seed):
        self.name = name
        self.out = out_sock
        self.rng = random.Random(seed)
        self.loss = args.loss / 100.0
        self.dup = args.dup / 100.0
        self.reorder = args.reorder / 100.0
        self.max_hold = args.max_hold
        self.hold_s = args.hold_ms / 1000.0
        self.held = []  # [frame, frames still to overtake it, release deadline]
        self.stats = {"frames": 0, "tcp": 0, "dropped": 0, "duplicated": 0, "reordered": 0, "send_errors": 0}

    def send(self, frame):
        try:
            self.out.send(frame)
        except OSError:
            self.stats["send_errors"] += 1

    def passed_one(self):
        """A frame went out: every held frame has been overtaken once more."""
        if not self.held:
            return
        still = []
        for entry in self.held:
            entry[1] -= 1
            if entry[1] <= 0:
                self.send(entry[0])
            else:
                still.append(entry)
        self.held = still

    def forward(self, frame, now):
        self.stats["frames"] += 1
        if not is_ipv4_tcp(frame):
            self.send(frame)
            return
        self.stats["tcp"] += 1
        rng = self.rng
        if rng.random() < self.loss:
            self.stats["dropped"] += 1
            return
        copies = 2 if rng.random() < self.dup else 1
        if copies == 2:
            self.stats["duplicated"] += 1
        if rng.random() < self.reorder:
            self.stats["reordered"] += 1
            for _ in range(copies):
                self.held.append([frame, rng.randint(1, self.max_hold), now + self.hold_s])
            return
        for _ in range(copies):
            self.send(frame)
            self.passed_one()

    def release_expired(self, now):
        if not self.held:
            return
        still = []
        for entry in self.held:
            if entry[2] <= now:
                self.send(entry[0])
            else:
                still.append(entry)
        self.held = still

    def next_deadline(self):
        return min(e[2] for e in self.held) if self.held else None

    def flush(self):
        for entry in self.held:
            self.send(entry[0])
        self.held = []


def is_ipv4_tcp(frame):
    if len(frame) < 34:
        return False
    ethertype = struct.unpack_from("!H", frame, 12)[0]
    offset = 14
    if ethertype == 0x8100 and len(frame) >= 38:  # one 802.1Q tag
        ethertype = struct.unpack_from("!H", frame, 16)[0]
        offset = 18
    return ethertype == 0x0800 and frame[offset + 9] == 6


def open_socket(ifname):
    s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
    try:
        s.setsockopt(SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
    except OSError:
        pass  # older kernels: outgoing frames are filtered by pkttype below
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 8 << 20)
    s.bind((ifname, 0))
    s.setblocking(False)
    return s


def main():
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--a", required=True, help="interface towards the server")
    p.add_argument("--b", required=True, help="interface towards the client")
    p.add_argument("--loss", type=float, default=0.0)
    p.add_argument("--dup", type=float, default=0.0)
    p.add_argument("--reorder", type=float, default=0.0)
    p.add_argument("--max-hold", type=int, default=3)
    p.add_argument("--hold-ms", type=float, default=5.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--duration", type=float, default=900.0, help="exit after this many seconds (bounded)")
    p.add_argument("--stats-file")
    args = p.parse_args()
    for name in ("loss", "dup", "reorder"):
        value = getattr(args, name)
        if not 0 <= value <= 100:
            p.error(f"--{name} {value}: expected a percentage in 0..100")
    if args.max_hold < 1:
        p.error("--max-hold: expected at least 1")

    sa = open_socket(args.a)
    sb = open_socket(args.b)
    a_to_b = Direction("server_to_client", sb, args, args.seed * 2 + 1)
    b_to_a = Direction("client_to_server", sa, args, args.seed * 2 + 2)
    by_fd = {sa.fileno(): (sa, a_to_b), sb.fileno(): (sb, b_to_a)}
    stop = [False]
    signal.signal(signal.SIGTERM, lambda *_: stop.__setitem__(0, True))
    signal.signal(signal.SIGINT, lambda *_: stop.__setitem__(0, True))

    def write_stats():
        if args.stats_file:
            with open(args.stats_file + ".tmp", "w") as f:
                json.dump({"server_to_client": a_to_b.stats, "client_to_server": b_to_a.stats}, f)
            import os
            os.replace(args.stats_file + ".tmp", args.stats_file)

    write_stats()  # ready marker
    poller = select.poll()
    poller.register(sa, select.POLLIN)
    poller.register(sb, select.POLLIN)
    end = time.monotonic() + args.duration
    last_stats = time.monotonic()
    while not stop[0]:
        now = time.monotonic()
        if now >= end:
            break
        deadlines = [d for d in (a_to_b.next_deadline(), b_to_a.next_deadline()) if d is not None]
        timeout_ms = 200
        if deadlines:
            timeout_ms = max(0, min(timeout_ms, (min(deadlines) - now) * 1000))
        for fd, _ in poller.poll(timeout_ms):
            sock, direction = by_fd[fd]
            for _ in range(256):
                try:
                    frame, addr = sock.recvfrom(MAX_FRAME)
                except BlockingIOError:
                    break
                if addr[2] == PACKET_OUTGOING:
                    continue
                direction.forward(frame, time.monotonic())
        now = time.monotonic()
        a_to_b.release_expired(now)
        b_to_a.release_expired(now)
        if now - last_stats >= 1.0:
            write_stats()
            last_stats = now
    a_to_b.flush()
    b_to_a.flush()
    write_stats()
    print("lossy_bridge: " + json.dumps({"server_to_client": a_to_b.stats, "client_to_server": b_to_a.stats}), file=sys.stderr)


if __name__ == "__main__":
    main()
