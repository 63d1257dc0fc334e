#!/usr/bin/env python3
"""One measured flood run of the flood benchmark (called by scripts/bench-flood.sh).

Runs in the root namespace and reaches into the lab with `ip netns exec`.
Sequence: snapshot -> start the bounded flood generator in flood-cli (CPU 0) ->
after a short ramp start the legitimate prober ("during") -> wait for the
generator to exit -> snapshot -> prober again right after the flood ("after").
Appends one JSON object per run to --out.

Counting (documented in docs/bench/README.md):
  offered  = d(tx_packets + tx_dropped of fl-c0) - d(egress_all) + d(egress_flood_syn)
             trafgen bypasses the qdisc layer (PACKET_QDISC_BYPASS), so its frames
             are only visible in the veth tx counters; everything that went through
             the stack (hping3 raw socket, prober, curl, ARP) is seen by the nft
             netdev egress hook, which also tells which of those were flood SYNs.
  answered = d(rx_packets + rx_dropped of fl-c0) - d(ingress_all) + d(ingress_flood_synack)
             the netdev ingress hook on fl-c0 counts SYN+ACKs from 198.19.0.1:80 to
             non-prober addresses; frames the client CPU dropped before that hook
             (rx_dropped) were, by construction of the lab, flood SYN+ACKs.
  server CPU = d(user + nice + system + irq + softirq jiffies of CPU 1, /proc/stat)
             minus the same measured on the idle lab (background rate x time). Every server
             process is pinned to CPU 1 and RPS steers the server's receive softirq there, so
             CPU 1's busy time is the server's cost, each tick counted once. (Adding the server
             processes' utime+stime to CPU-1 softirq, as this script did before, counts twice the
             softirq that runs in a process's context: with tick accounting and no
             CONFIG_IRQ_TIME_ACCOUNTING, kernel/sched/cputime.c account_system_index_time() adds
             that tick to the task's stime AND to cpustat[SOFTIRQ]. It is kept in the raw JSON as
             "legacy_net_us" for comparison.)
"""

import argparse
import json
import os
import subprocess
import sys
import time

HZ = os.sysconf("SC_CLK_TCK")
HERE = os.path.dirname(os.path.abspath(__file__))
# bench-flood.sh exports the namespace names (suffixed with CP_LAB_ID when set)
SRV = os.environ.get("BENCH_SRV_NS", "flood-srv")
CLI = os.environ.get("BENCH_CLI_NS", "flood-cli")


def sh(cmd, check=False):
    r = subprocess.run(cmd, shell=True, capture_output=True, text=True)
    if check and r.returncode != 0:
        raise RuntimeError(f"{cmd}: {r.stderr}")
    return r.stdout


def cpu_line(cpu):
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith(f"cpu{cpu} "):
                v = [int(x) for x in line.split()[1:]]
                names = ["user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal"]
                return dict(zip(names, v))
    return {}


def descendants(pid):
    out = [pid]
    try:
        for tid in os.listdir(f"/proc/{pid}/task"):
            try:
                with open(f"/proc/{pid}/task/{tid}/children") as f:
                    for c in f.read().split():
                        out.extend(descendants(int(c)))
            except OSError:
                pass
    except OSError:
        pass
    return out


def proc_ticks(pids_file):
    """utime+stime (+cutime+cstime of the root pids) of all server processes."""
    total = 0
    names = []
    if not pids_file or not os.path.exists(pids_file):
        return 0, names
    with open(pids_file) as f:
        roots = [int(x) for x in f.read().split() if x.strip().isdigit()]
    seen = set()
    for root in roots:
        for pid in descendants(root):
            if pid in seen:
                continue
            seen.add(pid)
            try:
                with open(f"/proc/{pid}/stat") as f:
                    s = f.read()
            except OSError:
                continue
            rest = s[s.rindex(")") + 2:].split()
            # fields 14..17 (1-based) = utime stime cutime cstime; rest starts at field 3
            ut, st, cut, cst = (int(rest[i]) for i in (11, 12, 13, 14))
            total += ut + st + (cut + cst if pid == root else 0)
            names.append(s[s.index("(") + 1:s.rindex(")")])
    return total, names


def link_stats(ns, dev):
    j = json.loads(sh(f"ip -n {ns} -s -j link show {dev}") or "[{}]")
    st = j[0].get("stats64", {})
    rx, tx = st.get("rx", {}), st.get("tx", {})
    return {"rx_packets": rx.get("packets", 0), "rx_dropped": rx.get("dropped", 0),
            "tx_packets": tx.get("packets", 0), "tx_dropped": tx.get("dropped", 0)}


def nft_counters():
    out = {}
    txt = sh(f"ip netns exec {CLI} nft -j list counters table netdev flcnt")
    try:
        j = json.loads(txt)
    except ValueError:
        return out
    for item in j.get("nftables", []):
        c = item.get("counter")
        if c:
            out[c["name"]] = c["packets"]
    return out


def softnet_drops(cpu):
    with open("/proc/net/softnet_stat") as f:
        lines = f.read().split("\n")
    try:
        return int(lines[cpu].split()[1], 16)
    except (IndexError, ValueError):
        return 0


def srv_kernel_counters():
    out = {}
    txt = sh(f"ip netns exec {SRV} nstat -az TcpExtSyncookiesSent TcpExtSyncookiesRecv "
             f"TcpExtSyncookiesFailed TcpExtListenOverflows TcpExtListenDrops TcpExtTCPReqQFullDoCookies "
             f"TcpExtTSEcrRejected TcpExtPAWSEstab")
    for line in txt.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[0].startswith("TcpExt"):
            out[parts[0]] = int(parts[1])
    txt = sh(f"ip netns exec {SRV} cat /proc/net/stat/synproxy")
    rows = [l.split() for l in txt.splitlines() if l.strip()]
    if len(rows) > 1:
        hdr = rows[0]
        for row in rows[1:]:
            for k, v in zip(hdr, row):
                if k != "entries":
                    out["synproxy_" + k] = out.get("synproxy_" + k, 0) + int(v, 16)
    return out


def snapshot(pids_file):
    t = time.monotonic()
    ticks, names = proc_ticks(pids_file)
    return {"t": t, "cpu1": cpu_line(1), "cpu0": cpu_line(0), "proc_ticks": ticks, "procs": sorted(set(names)),
            "cli": link_stats(CLI, "fl-c0"), "nft": nft_counters(), "softnet_drop_cpu1": softnet_drops(1),
            "srv": srv_kernel_counters()}


def read_cp_stats(path):
    if not path:
        return None
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def cp_delta(a, b):
    if not a or not b:
        return None
    out = {k: b[k] - a.get(k, 0) for k in b if isinstance(b[k], (int, float)) and k != "flows_active"}
    out["flows_active_end"] = b.get("flows_active")
    da, db = a.get("drops") or {}, b.get("drops") or {}
    out["drops"] = {k: db[k] - da.get(k, 0) for k in db if db[k] - da.get(k, 0)}
    return out


def d(a, b, *path):
    x, y = a, b
    for p in path:
        x, y = x.get(p, 0), y.get(p, 0)
    return y - x


def busy_ticks(s0, s1, cpu="cpu1"):
    """A CPU's non-idle jiffies between two snapshots (steal and iowait excluded)."""
    return sum(d(s0, s1, cpu, k) for k in ("user", "nice", "system", "irq", "softirq"))


def run_prober(args, phase, count, seconds, port_base):
    cmd = ["ip", "netns", "exec", CLI, "taskset", "-c", "0", sys.executable, os.path.join(HERE, "prober.py"),
           "--count", str(count), "--rate", str(args.probe_rate), "--timeout", "3",
           "--port-base", str(port_base), "--max-seconds", str(seconds + 1), "--label", phase]
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)


def collect(p):
    out, _ = p.communicate(timeout=120)
    try:
        return json.loads(out.strip().splitlines()[-1])
    except (ValueError, IndexError):
        return {"attempted": 0, "ok": 0, "success": None, "error": "prober produced no output"}


def generator_cmd(args):
    dur = args.duration
    if args.kind == "hping":
        # fixed source 198.19.0.2, source port incrementing from 1024 (hping3 default
        # behaviour without -k); never --rand-source.
        cnt = int(args.max_pps * dur)
        return (f"ip netns exec {CLI} timeout -s INT {dur} taskset -c 0 "
                f"hping3 -q -S -p 80 -a 198.19.0.2 -s 1024 -w 64240 --flood -c {cnt} 198.19.0.1")
    if args.kind == "trafgen":
        # count bound = 2x the nominal packets: trafgen's pacing catches up after the
        # generator was descheduled, so with exactly rate*dur it would end early.
        cnt = int((args.rate * 2 if args.rate else args.max_pps) * dur)
        # "max" also goes through the rate-paced send path with an unreachable rate:
        # trafgen's TX-ring burst mode aborts with "Flushing TX_RING failed: EAGAIN"
        # as soon as the RPS backlog of the server CPU pushes back.
        rate = f"-b {args.rate if args.rate else int(args.max_pps)}pps"
        return (f"ip netns exec {CLI} timeout -s INT {dur} taskset -c 0 "
                f"trafgen -o fl-c0 -i {args.trafgen_cfg} -P 1 -Q --no-sock-mem -C -n {cnt} {rate}")
    return f"sleep {dur}"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--system", required=True)
    ap.add_argument("--kind", choices=["none", "hping", "trafgen"], required=True)
    ap.add_argument("--rate", type=int, default=0, help="pps, 0 = as fast as possible")
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--after", type=float, default=3.0)
    ap.add_argument("--probe-rate", type=float, default=20.0)
    ap.add_argument("--port-base", type=int, default=20000)
    ap.add_argument("--pids-file", default="")
    ap.add_argument("--trafgen-cfg", default="")
    ap.add_argument("--max-pps", type=float, default=3_000_000)
    ap.add_argument("--bg", default="", help="JSON file with background rates (from --kind none --background)")
    ap.add_argument("--background", action="store_true", help="idle measurement: write per-second rates")
    ap.add_argument("--label", default="")
    ap.add_argument("--cp-stats", default="", help="CookieProxy --stats-file (rewritten every second)")
    ap.add_argument("--out", required=True)
    args = ap.parse_args()

    if args.background:
        s0 = snapshot(args.pids_file)
        time.sleep(args.duration)
        s1 = snapshot(args.pids_file)
        dt = s1["t"] - s0["t"]
        bg = {"busy_ticks_per_s": busy_ticks(s0, s1) / dt,
              "cpu0_busy_ticks_per_s": busy_ticks(s0, s1, "cpu0") / dt,
              "softirq_irq_ticks_per_s": (d(s0, s1, "cpu1", "softirq") + d(s0, s1, "cpu1", "irq")) / dt,
              "proc_ticks_per_s": d(s0, s1, "proc_ticks") / dt,
              "system_ticks_per_s": d(s0, s1, "cpu1", "system") / dt,
              "user_ticks_per_s": d(s0, s1, "cpu1", "user") / dt,
              "seconds": dt}
        with open(args.out, "w") as f:
            json.dump(bg, f)
        print(json.dumps(bg))
        return

    bg = {}
    if args.bg and os.path.exists(args.bg):
        with open(args.bg) as f:
            bg = json.load(f)

    ramp = min(1.0, args.duration / 4)
    during_s = max(0.5, args.duration - ramp - 0.5)
    during_n = max(1, int(during_s * args.probe_rate))
    after_n = max(1, int(args.after * args.probe_rate))

    cp0 = read_cp_stats(args.cp_stats)
    s0 = snapshot(args.pids_file)
    gen = subprocess.Popen(generator_cmd(args), shell=True, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           text=True)
    time.sleep(ramp)
    p_during = run_prober(args, "during", during_n, during_s, args.port_base)
    try:
        gen_out, _ = gen.communicate(timeout=args.duration + 15)
    except subprocess.TimeoutExpired:
        gen.kill()  # only our own generator process (by handle)
        gen_out, _ = gen.communicate()
    s1 = snapshot(args.pids_file)
    p_after = run_prober(args, "after", after_n, args.after, args.port_base + 100)
    during = collect(p_during)
    after = collect(p_after)
    # CookieProxy's stats file is rewritten once a second; the "after" prober ran for
    # >= 1.5 s since the generator stopped, so this read includes the whole flood
    # (plus the after-phase's few legit SYNs).
    cp1 = read_cp_stats(args.cp_stats)

    dt = s1["t"] - s0["t"]
    n = s0["nft"], s1["nft"]
    c0, c1 = s0["cli"], s1["cli"]
    offered = ((c1["tx_packets"] + c1["tx_dropped"]) - (c0["tx_packets"] + c0["tx_dropped"])
               - (n[1].get("eg_all", 0) - n[0].get("eg_all", 0))
               + (n[1].get("eg_flood_syn", 0) - n[0].get("eg_flood_syn", 0)))
    answered = ((c1["rx_packets"] + c1["rx_dropped"]) - (c0["rx_packets"] + c0["rx_dropped"])
                - (n[1].get("in_all", 0) - n[0].get("in_all", 0))
                + (n[1].get("in_flood_synack", 0) - n[0].get("in_flood_synack", 0)))
    if args.kind == "none":
        offered, answered = 0, 0
    si = d(s0, s1, "cpu1", "softirq") + d(s0, s1, "cpu1", "irq")
    pt = d(s0, s1, "proc_ticks")
    busy = busy_ticks(s0, s1)
    bg_ticks = bg.get("busy_ticks_per_s", 0) * dt
    net_ticks = max(0.0, busy - bg_ticks)
    cpu_us = net_ticks * 1e6 / HZ
    # Both cores (the generator's CPU 0 too): native XDP on a veth runs on the sender's CPU, so the
    # server-core figure alone would flatter it. Same background correction per core.
    busy0 = busy_ticks(s0, s1, "cpu0")
    bg0_ticks = bg.get("cpu0_busy_ticks_per_s", 0) * dt
    both_us = max(0.0, busy + busy0 - bg_ticks - bg0_ticks) * 1e6 / HZ
    legacy_bg = (bg.get("softirq_irq_ticks_per_s", 0) + bg.get("proc_ticks_per_s", 0)) * dt
    legacy_us = max(0.0, si + pt - legacy_bg) * 1e6 / HZ
    srv_delta = {k: s1["srv"].get(k, 0) - s0["srv"].get(k, 0) for k in s1["srv"]}
    res = {
        "system": args.system, "kind": args.kind, "rate_target": args.rate, "label": args.label,
        "duration_s": dt, "offered": offered, "offered_pps": offered / dt if dt else 0,
        "answered": answered, "answered_pps": answered / dt if dt else 0,
        "answered_fraction": (answered / offered) if offered else None,
        "legit_synack": n[1].get("in_legit_synack", 0) - n[0].get("in_legit_synack", 0),
        "server_cpu": {
            "busy_ticks": busy, "softirq_irq_ticks": si, "proc_ticks": pt, "bg_ticks": bg_ticks, "net_us": cpu_us,
            "legacy_net_us": legacy_us,
            "cpu1_system_ticks": d(s0, s1, "cpu1", "system"), "cpu1_user_ticks": d(s0, s1, "cpu1", "user"),
            "cpu1_idle_ticks": d(s0, s1, "cpu1", "idle"), "cpu0_softirq_ticks": d(s0, s1, "cpu0", "softirq"),
            "cpu0_idle_ticks": d(s0, s1, "cpu0", "idle"), "cpu1_steal_ticks": d(s0, s1, "cpu1", "steal"),
            "cpu0_busy_ticks": busy0, "cpu0_bg_ticks": bg0_ticks, "both_net_us": both_us,
            "loadavg_end": open("/proc/loadavg").read().split()[0],
            "utilisation_cpu1": net_ticks / HZ / dt if dt else None,
            "procs": s1["procs"]},
        "cpu_us_per_answered": (cpu_us / answered) if answered > 0 else None,
        "both_cpu_us_per_answered": (both_us / answered) if answered > 0 else None,
        # the generator is one process on one loaded core: say when it fell short of the asked rate
        "generator_reached": (offered / (args.duration * args.rate)) if args.rate else None,
        "legacy_cpu_us_per_answered": (legacy_us / answered) if answered > 0 else None,
        "softnet_drop_cpu1": s1["softnet_drop_cpu1"] - s0["softnet_drop_cpu1"],
        "cli_link_delta": {k: c1[k] - c0[k] for k in c1},
        "nft_delta": {k: n[1].get(k, 0) - n[0].get(k, 0) for k in n[1]},
        "srv_counters": srv_delta,
        "generator_output": (gen_out or "")[-600:],
        "cookieproxy_delta": cp_delta(cp0, cp1),
        "legit_during": during, "legit_after": after,
    }
    with open(args.out, "a") as f:
        f.write(json.dumps(res) + "\n")
    print(json.dumps({k: res[k] for k in ("system", "kind", "rate_target", "offered_pps", "answered_pps",
                                          "answered_fraction", "cpu_us_per_answered")}
                     | {"during": {k: during.get(k) for k in ("success", "p50_ms", "p99_ms")},
                        "after": {k: after.get(k) for k in ("success", "p50_ms", "p99_ms")}}))


if __name__ == "__main__":
    main()
