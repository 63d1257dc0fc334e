#!/usr/bin/env python3
"""Legitimate-client prober for the flood benchmark (runs in netns flood-cli).

Opens COUNT new TCP connections at a fixed RATE, each bound to a fresh source
address from 198.19.1.FIRST..LAST (the addresses are assigned to fl-c0 by
bench-flood.sh) and a port that is never reused within one bench run
(--port-base is advanced by the caller), sends an HTTP/1.0 GET and reads the
whole response.  Every connection has one deadline (--timeout, default 3 s)
covering connect + request + response.  Bounded in count and in time
(--max-seconds); prints one JSON object to stdout.
"""

import argparse
import asyncio
import json
import socket
import sys
import time


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--server", default="198.19.0.1")
    p.add_argument("--port", type=int, default=80)
    p.add_argument("--path", default="/index.html")
    p.add_argument("--count", type=int, default=50)
    p.add_argument("--rate", type=float, default=20.0, help="new connections per second")
    p.add_argument("--timeout", type=float, default=3.0)
    p.add_argument("--src-prefix", default="198.19.1.")
    p.add_argument("--src-first", type=int, default=1)
    p.add_argument("--src-last", type=int, default=250)
    p.add_argument("--port-base", type=int, default=20000)
    p.add_argument("--max-seconds", type=float, default=60.0)
    p.add_argument("--label", default="")
    return p.parse_args()


async def one(args, i, results):
    nsrc = args.src_last - args.src_first + 1
    src = f"{args.src_prefix}{args.src_first + (i % nsrc)}"
    # Fresh (address, port) pair per connection: port advances every time the
    # address list wraps, so no 4-tuple repeats (no TIME_WAIT collisions).
    sport = args.port_base + i // nsrc
    t0 = time.perf_counter()
    ok = False
    err = ""
    writer = None
    try:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((src, sport))
        sock.setblocking(False)

        async def transact():
            nonlocal writer
            loop = asyncio.get_running_loop()
            await loop.sock_connect(sock, (args.server, args.port))
            reader, writer = await asyncio.open_connection(sock=sock)
            writer.write(f"GET {args.path} HTTP/1.0\r\nHost: {args.server}\r\n\r\n".encode())
            await writer.drain()
            data = await reader.read()  # until EOF (HTTP/1.0, server closes)
            return data

        data = await asyncio.wait_for(transact(), timeout=args.timeout)
        ok = data.startswith(b"HTTP/1.") and b" 200 " in data[:20]
        if not ok:
            err = "bad-response"
    except asyncio.TimeoutError:
        err = "timeout"
    except OSError as e:
        err = f"oserror-{e.errno}"
    finally:
        if writer is not None:
            writer.close()
        else:
            try:
                sock.close()
            except Exception:
                pass
    results.append({"i": i, "ok": ok, "lat_ms": (time.perf_counter() - t0) * 1000.0, "err": err})


def pct(sorted_vals, q):
    if not sorted_vals:
        return None
    k = min(len(sorted_vals) - 1, max(0, int(round(q * (len(sorted_vals) - 1)))))
    return sorted_vals[k]


async def main():
    args = parse_args()
    results = []
    tasks = []
    start = time.perf_counter()
    gap = 1.0 / args.rate if args.rate > 0 else 0.0
    for i in range(args.count):
        due = start + i * gap
        now = time.perf_counter()
        if due > now:
            await asyncio.sleep(due - now)
        if time.perf_counter() - start > args.max_seconds:
            break
        tasks.append(asyncio.create_task(one(args, i, results)))
    if tasks:
        await asyncio.wait(tasks, timeout=args.timeout + 2.0)
    elapsed = time.perf_counter() - start
    n = len(tasks)
    oks = sorted(r["lat_ms"] for r in results if r["ok"])
    # Failed connections count as "latency >= timeout" for the all-attempts percentiles.
    alls = sorted([r["lat_ms"] if r["ok"] else max(r["lat_ms"], args.timeout * 1000.0) for r in results]
                  + [args.timeout * 1000.0] * (n - len(results)))
    errs = {}
    for r in results:
        if not r["ok"]:
            errs[r["err"]] = errs.get(r["err"], 0) + 1
    out = {
        "label": args.label,
        "attempted": n,
        "ok": len(oks),
        "success": (len(oks) / n) if n else None,
        "p50_ms": pct(oks, 0.50),
        "p99_ms": pct(oks, 0.99),
        "p50_all_ms": pct(alls, 0.50),
        "p99_all_ms": pct(alls, 0.99),
        "max_ms": oks[-1] if oks else None,
        "ok_over_1s": sum(1 for v in oks if v > 1000.0),
        "slowest": [{"src_index": r["i"], "lat_ms": round(r["lat_ms"], 1)}
                    for r in sorted(results, key=lambda r: -r["lat_ms"])[:3]],
        "errors": errs,
        "elapsed_s": elapsed,
    }
    json.dump(out, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    asyncio.run(main())
