#!/usr/bin/env python3
"""Turn the raw JSON of scripts/bench-flood.sh into a markdown report and a PNG plot."""

import argparse
import json
import os
import platform
import subprocess
import sys
import time

NAMES = {"a": "CookieProxy", "x": "CookieProxy --xdp-syn", "b": "nft SYNPROXY", "c": "kernel syncookies", "d": "haproxy (tcp)", "e": "direct Apache"}
MIB = 1024 * 1024


def machine():
    model = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    nproc = os.cpu_count()
    try:
        load = open("/proc/loadavg").read().split()[:3]
    except OSError:
        load = []
    return {"nproc": nproc, "cpu": model, "kernel": platform.release(), "loadavg": " ".join(load)}


def flood_label(r):
    if r["kind"] == "none":
        return "no flood"
    if r["kind"] == "hping":
        return "hping3 --flood (1 src, port++)"
    if r["rate_target"]:
        return f"trafgen {r['rate_target'] // 1000} kpps (rand src /17)"
    return "trafgen max (rand src /17)"


def f(v, fmt="{:.0f}", na="–"):
    if v is None:
        return na
    try:
        return fmt.format(v)
    except (ValueError, TypeError):
        return str(v)


def ratio(a, b, fmt="{:.2f}x"):
    if a is None or b is None or b == 0:
        return "n/a"
    return fmt.format(a / b)


def pick(floods, sys_, kind, rate=0):
    for r in floods:
        if r["system"] == sys_ and r["kind"] == kind and r["rate_target"] == rate:
            return r
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--raw", required=True)
    ap.add_argument("--md", required=True)
    ap.add_argument("--png", required=True)
    args = ap.parse_args()
    doc = json.load(open(args.raw))
    floods = doc["floods"]
    dps = {d["system"]: d for d in doc["datapath"]}
    m = machine()
    cp_status = doc.get("cookieproxy_status", "not run")
    na_a = cp_status if cp_status != "ok" else None

    L = []
    L.append(f"# Flood benchmark results — {time.strftime('%Y-%m-%d', time.gmtime())}")
    L.append("")
    L.append(f"Run `{doc['run_id']}`{' (QUICK smoke run: 3 s floods)' if doc.get('quick') else ''}, "
             f"`scripts/bench-flood.sh`. Machine: {m['nproc']} CPUs, {m['cpu']}, kernel {m['kernel']}, "
             f"load average at report time {m['loadavg']} (the host is shared with other jobs).")
    L.append("")
    L.append(f"CookieProxy: **{cp_status}**. Read the section \"Effects seen in this lab\" of "
             "`docs/bench/README.md` before comparing numbers. In short: a shared, overloaded 2-vCPU host; "
             "sequential runs; a SYNPROXY ~1.7 s stall on 1-3 % of connections; CookieProxy is a user "
             "process competing with the neighbours for CPU 1.")
    L.append("")
    L.append("## SYN floods")
    L.append("")
    L.append("| system | flood | offered SYN/s | SYN+ACK/s | answered | server CPU µs / SYN+ACK | CPU1 busy | "
             "legit during: ok / p50 / p99 ms | legit after: ok / p50 / p99 ms |")
    L.append("|---|---|---:|---:|---:|---:|---:|---|---|")
    systems = [s for s in "axbc" if any(r["system"] == s for r in floods)]
    if na_a and "a" not in systems:
        L.append(f"| {NAMES['a']} | all | {na_a} | | | | | | |")
    for s in systems:
        for r in [x for x in floods if x["system"] == s]:
            du, af = r["legit_during"], r["legit_after"]
            L.append("| {} | {} | {} | {} | {} | {} | {} | {} / {} / {} | {} / {} / {} |".format(
                NAMES[s], flood_label(r), f(r["offered_pps"]), f(r["answered_pps"]),
                f(r["answered_fraction"], "{:.1%}"), f(r["cpu_us_per_answered"], "{:.2f}"),
                f(r["server_cpu"]["utilisation_cpu1"], "{:.0%}"),
                f(du.get("success"), "{:.0%}"), f(du.get("p50_ms"), "{:.1f}"), f(du.get("p99_ms"), "{:.0f}"),
                f(af.get("success"), "{:.0%}"), f(af.get("p50_ms"), "{:.1f}"), f(af.get("p99_ms"), "{:.0f}")))
    L.append("")

    # ratios vs SYNPROXY
    L.append("## Ratios")
    L.append("")
    L.append("| comparison | flood | value |")
    L.append("|---|---|---:|")
    for kind, rate in [("trafgen", 0), ("hping", 0)]:
        a, b, c = pick(floods, "a", kind, rate), pick(floods, "b", kind, rate), pick(floods, "c", kind, rate)
        x = pick(floods, "x", kind, rate)
        lab = flood_label({"kind": kind, "rate_target": rate})

        def g(r, *path):
            if r is None:
                return None
            x = r
            for p in path:
                x = x.get(p) if isinstance(x, dict) else None
            return x

        for who, r in (("CookieProxy", a), ("CookieProxy --xdp-syn", x), ("kernel syncookies", c)):
            if who == "CookieProxy --xdp-syn" and r is None:
                continue
            na = na_a if who.startswith("CookieProxy") else None
            L.append(f"| {who} / SYNPROXY CPU per SYN+ACK | {lab} | "
                     f"{na or ratio(g(r, 'cpu_us_per_answered'), g(b, 'cpu_us_per_answered'))} |")
            L.append(f"| {who} / SYNPROXY fraction answered | {lab} | "
                     f"{na or ratio(g(r, 'answered_fraction'), g(b, 'answered_fraction'))} |")
            L.append(f"| {who} / SYNPROXY legit success (during) | {lab} | "
                     f"{na or ratio(g(r, 'legit_during', 'success'), g(b, 'legit_during', 'success'))} |")
            L.append(f"| {who} / SYNPROXY legit p50 (during) | {lab} | "
                     f"{na or ratio(g(r, 'legit_during', 'p50_ms'), g(b, 'legit_during', 'p50_ms'))} |")
            L.append(f"| {who} / SYNPROXY legit p99 (during) | {lab} | "
                     f"{na or ratio(g(r, 'legit_during', 'p99_ms'), g(b, 'legit_during', 'p99_ms'))} |")
    da, dd, de = dps.get("a"), dps.get("d"), dps.get("e")
    v = lambda d, k: d.get(k) if d else None
    L.append(f"| CookieProxy / direct, 100 MiB download | – | {na_a or ratio(v(da, 'dl_100m_Bps'), v(de, 'dl_100m_Bps'))} |")
    L.append(f"| CookieProxy / haproxy, 100 MiB download | – | {na_a or ratio(v(da, 'dl_100m_Bps'), v(dd, 'dl_100m_Bps'))} |")
    L.append(f"| CookieProxy / haproxy, wrk req/s | – | {na_a or ratio(v(da, 'wrk_rps'), v(dd, 'wrk_rps'))} |")
    L.append(f"| haproxy / direct, 100 MiB download | – | {ratio(v(dd, 'dl_100m_Bps'), v(de, 'dl_100m_Bps'))} |")
    L.append(f"| haproxy / direct, wrk req/s | – | {ratio(v(dd, 'wrk_rps'), v(de, 'wrk_rps'))} |")
    L.append("")

    L.append("## Data path (no flood)")
    L.append("")
    L.append("| system | 100 MiB download MiB/s (median of 3) | 1 MiB download MiB/s (median of 5) | wrk -t1 -c64 req/s | wrk errors |")
    L.append("|---|---:|---:|---:|---|")
    for s in "ade":
        d = dps.get(s)
        if d is None:
            if s == "a" and na_a:
                L.append(f"| {NAMES[s]} | {na_a} | | | |")
            continue
        L.append(f"| {NAMES[s]} | {f(d['dl_100m_Bps'] / MIB, '{:.0f}')} | {f(d['dl_1m_Bps'] / MIB, '{:.0f}')} | "
                 f"{f(d['wrk_rps'])} | {d.get('wrk_errors') or ''} |")
    L.append("")
    rss = doc.get("cookieproxy_rss_kib", {})
    if rss.get("before") is not None:
        L.append(f"CookieProxy RSS: {rss['before']} KiB before the floods, {rss['after']} KiB after.")
        L.append("")
    L.append("## Per-system counters over all floods of the run")
    L.append("")
    L.append("| system | legit attempts | legit ok | legit ok but > 1 s | SyncookiesSent | SyncookiesRecv | "
             "TSEcrRejected | synproxy cookie_valid / invalid | softnet drops CPU 1 |")
    L.append("|---|---:|---:|---:|---:|---:|---:|---|---:|")
    for s in systems:
        rs = [x for x in floods if x["system"] == s]
        ph = [x[k] for x in rs for k in ("legit_during", "legit_after")]
        sc = lambda k: sum(x["srv_counters"].get(k, 0) for x in rs)
        L.append(f"| {NAMES[s]} | {sum(p.get('attempted', 0) for p in ph)} | {sum(p.get('ok', 0) for p in ph)} | "
                 f"{sum(p.get('ok_over_1s', 0) for p in ph)} | {sc('TcpExtSyncookiesSent')} | "
                 f"{sc('TcpExtSyncookiesRecv')} | {sc('TcpExtTSEcrRejected')} | "
                 f"{sc('synproxy_cookie_valid')} / {sc('synproxy_cookie_invalid')} | "
                 f"{sum(x['softnet_drop_cpu1'] for x in rs)} |")
    L.append("")
    L.append("## Method")
    L.append("")
    L.append("See `docs/bench/README.md`. In short: offered = SYNs that left fl-c0 (veth tx counters, "
             "corrected with nft netdev egress counters for non-flood packets); answered = SYN+ACKs from "
             "198.19.0.1:80 to flood sources (nft netdev ingress counter on fl-c0 plus frames dropped before it); "
             "server CPU = CPU-1 busy time (user+nice+system+irq+softirq, /proc/stat; every server process is "
             "pinned there), minus the same measured on the idle lab; the same formula for all systems. Server receive processing is steered to CPU 1 by RPS on fl-s0; generators, "
             "prober, curl and wrk run on CPU 0. Legit prober: new connections at 20/s, each from a fresh "
             "198.19.1.x address and port, HTTP/1.0 GET /index.html, 3 s deadline; p50/p99 are over successful "
             "connections.")
    L.append("")
    md = "\n".join(L)
    with open(args.md, "w") as fh:
        fh.write(md)
    print(md)
    plot(floods, args.png, doc)


def plot(floods, png, doc):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.8))
    colors = {"a": "tab:green", "x": "tab:olive", "b": "tab:blue", "c": "tab:orange"}
    for s in "axbc":
        pts = sorted([r for r in floods if r["system"] == s and r["kind"] in ("none", "trafgen")],
                     key=lambda r: r["offered_pps"])
        if not pts:
            continue
        x = [r["offered_pps"] / 1000 for r in pts]
        succ = [(r["legit_during"].get("success") or 0) * 100 for r in pts]
        p99 = [r["legit_during"].get("p99_ms") for r in pts]
        ax1.plot(x, succ, "o-", color=colors[s], label=NAMES[s])
        ax2.plot([xx for xx, p in zip(x, p99) if p is not None], [p for p in p99 if p is not None], "o-",
                 color=colors[s], label=NAMES[s])
        hp = [r for r in floods if r["system"] == s and r["kind"] == "hping"]
        for r in hp:
            ax1.plot([r["offered_pps"] / 1000], [(r["legit_during"].get("success") or 0) * 100], "x",
                     color=colors[s], markersize=9)
            if r["legit_during"].get("p99_ms") is not None:
                ax2.plot([r["offered_pps"] / 1000], [r["legit_during"]["p99_ms"]], "x", color=colors[s],
                         markersize=9)
    if doc.get("cookieproxy_status") != "ok":
        ax1.text(0.02, 0.04, f"CookieProxy: {doc.get('cookieproxy_status')}", transform=ax1.transAxes,
                 fontsize=8, color="tab:green")
    ax1.set_xlabel("offered SYN flood rate (kpps)")
    ax1.set_ylabel("legit connections succeeded during flood (%)")
    ax1.set_ylim(-5, 105)
    ax1.grid(alpha=0.3)
    ax1.legend(loc="lower left" if doc.get("cookieproxy_status") == "ok" else "center left")
    ax2.set_xlabel("offered SYN flood rate (kpps)")
    ax2.set_ylabel("p99 latency of successful legit connections (ms)")
    ax2.set_yscale("log")
    ax2.grid(alpha=0.3, which="both")
    ax2.legend(loc="best")
    fig.suptitle("Legit HTTP connections under SYN flood (o = trafgen random /17 sources, x = hping3 one source)"
                 + (" — QUICK run" if doc.get("quick") else ""), fontsize=10)
    fig.tight_layout()
    fig.savefig(png, dpi=110)


if __name__ == "__main__":
    main()
