#!/usr/bin/env python3
"""Step-by-step timing of short requests from two tcpdump captures (called by scripts/bench-flood.sh --trace).

--client   capture on the client's veth (fl-c0, in flood-cli): every packet of the prober's connections,
           both directions, as the client sees them leave and arrive.
--loopback capture on the server's loopback (in flood-srv), port 8080: the proxy's connections to Apache
           (absent for the kernel alone).

Each client connection (SYN from 198.19.1.x) is paired with the first backend connection whose SYN follows
the client's SYN within 1 s (the prober opens one connection every 20 ms, each done in a few ms, so the
pairing is unambiguous). All timestamps come from one kernel clock. Steps (ms):

  syn_synack        client SYN out -> SYN+ACK in              the server's SYN handling (ring hand-over, cookie, TX)
  synack_ack        SYN+ACK in -> client ACK out              client
  ack_request       client ACK out -> request out             client
  ack_backend_syn   client ACK out -> backend SYN on lo       proxy: ACK hand-over, cookie check, flow, connect start
  backend_connect   backend SYN -> backend ACK on lo          loopback handshake (kernel)
  request_forward   max(backend ACK, request out) -> request on lo   proxy: connected/request -> forwarded
  backend_response  request on lo -> first response byte on lo      Apache
  response_forward  response on lo -> response in at client   proxy: backend readable -> frame to the client
  request_response  request out -> first response byte in    the server as a whole (every system)
  syn_response      client SYN out -> first response byte in  what the client waits for
  response_fin      last response byte in -> server FIN in
  total             client SYN out -> last packet of the connection
Prints one JSON object: {"system", "connections", "paired", "steps": {name: {"n", "p50", "p90", "mean"}}}.
"""

import argparse
import json
import re
import subprocess
import sys

LINE = re.compile(r"^(\d+\.\d+) IP6? (\S+)\.(\d+) > (\S+)\.(\d+): Flags \[([^\]]*)\].*?length (\d+)")


def packets(pcap):
    if not pcap:
        return []
    try:
        out = subprocess.run(["tcpdump", "-r", pcap, "-tt", "-nn", "--time-stamp-precision=nano"],
                             capture_output=True, text=True, timeout=120).stdout
    except (OSError, subprocess.TimeoutExpired):
        return []
    res = []
    for line in out.splitlines():
        m = LINE.match(line)
        if m:
            t, sa, sp, da, dp, flags, length = m.groups()
            res.append((float(t), sa, int(sp), da, int(dp), flags, int(length)))
    return res


def connections(pkts, server_port):
    """Group by the connection's client end; returns dict key -> list of (t, from_client, flags, length)."""
    conns = {}
    for t, sa, sp, da, dp, flags, length in pkts:
        if dp == server_port:
            key, from_client = (sa, sp), True
        elif sp == server_port:
            key, from_client = (da, dp), False
        else:
            continue
        conns.setdefault(key, []).append((t, from_client, flags, length))
    return conns


def milestones(pl):
    """First/last times of the handshake, request, response and FIN events of one connection."""
    m = {}
    for t, fc, flags, length in pl:
        if fc and flags == "S" and "syn" not in m:
            m["syn"] = t
        elif not fc and flags == "S." and "synack" not in m:
            m["synack"] = t
        elif fc and "synack" in m and "." in flags and length == 0 and "S" not in flags and "ack" not in m:
            m["ack"] = t
        if fc and length > 0 and "request" not in m:
            m["request"] = t
        if not fc and length > 0:
            m.setdefault("response", t)
            m["response_last"] = t
        if not fc and "F" in flags and "server_fin" not in m:
            m["server_fin"] = t
        m["last"] = t
    return m


def stats(values):
    v = sorted(values)
    if not v:
        return None
    pick = lambda q: v[min(len(v) - 1, max(0, int(round(q * (len(v) - 1)))))]
    return {"n": len(v), "p50": round(pick(0.5), 4), "p90": round(pick(0.9), 4), "mean": round(sum(v) / len(v), 4)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--client", required=True)
    ap.add_argument("--loopback", default="")
    ap.add_argument("--server-port", type=int, default=80)
    ap.add_argument("--backend-port", type=int, default=8080)
    ap.add_argument("--system", default="")
    ap.add_argument("--prober", default="", help="the traced prober pass's JSON (kept in the output)")
    args = ap.parse_args()

    client = [milestones(p) for p in connections(packets(args.client), args.server_port).values()]
    client = sorted((c for c in client if "syn" in c), key=lambda c: c["syn"])
    backend = [milestones(p) for p in connections(packets(args.loopback), args.backend_port).values()]
    backend = sorted((b for b in backend if "syn" in b), key=lambda b: b["syn"])

    steps = {k: [] for k in ("syn_synack", "synack_ack", "ack_request", "ack_backend_syn", "backend_connect",
                             "request_forward", "backend_response", "response_forward", "request_response",
                             "syn_response", "response_fin", "total")}

    def add(name, a, b):
        if a is not None and b is not None:
            steps[name].append((b - a) * 1000.0)

    used = set()
    paired = 0
    bi = 0
    for c in client:
        g = c.get
        add("syn_synack", g("syn"), g("synack"))
        add("synack_ack", g("synack"), g("ack"))
        add("ack_request", g("ack"), g("request"))
        add("request_response", g("request"), g("response"))
        add("syn_response", g("syn"), g("response"))
        add("response_fin", g("response_last"), g("server_fin"))
        add("total", g("syn"), g("last"))
        # the first unused backend connection that starts after this client's SYN, within 1 s
        b = None
        while bi < len(backend) and backend[bi]["syn"] < c["syn"]:
            bi += 1
        for j in range(bi, len(backend)):
            if j in used:
                continue
            if backend[j]["syn"] - c["syn"] > 1.0:
                break
            b = backend[j]
            used.add(j)
            break
        if b is None:
            continue
        paired += 1
        add("ack_backend_syn", g("ack"), b.get("syn"))
        add("backend_connect", b.get("syn"), b.get("ack"))
        if b.get("ack") is not None and g("request") is not None:
            add("request_forward", max(b["ack"], g("request")), b.get("request"))
        add("backend_response", b.get("request"), b.get("response"))
        add("response_forward", b.get("response"), g("response"))

    try:
        prober = json.loads(args.prober) if args.prober else None
    except ValueError:
        prober = None
    out = {"system": args.system, "connections": len(client), "paired": paired,
           "steps": {k: stats(v) for k, v in steps.items() if v}, "prober": prober}
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
