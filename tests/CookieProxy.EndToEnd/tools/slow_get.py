#!/usr/bin/env python3
"""A long-lived HTTP/1.1 download for the hostile tier (HostileTests.cs).

Reads the body at --rate bytes/s until --fast-file exists, then as fast as it can, so one download stays
live across all the floods and still ends in bounded time. Writes "port N" and then "bytes N" lines to
--status-file while it runs. Prints one result line at the end:

    status=200 length=L received=R sha256=H seconds=T

and exits 0 only when the whole body (Content-Length) arrived; 1 on a reset or a short body.
"""
import argparse
import hashlib
import os
import socket
import sys
import time


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--src", required=True)
    ap.add_argument("--host", required=True)
    ap.add_argument("--port", type=int, default=80)
    ap.add_argument("--path", required=True)
    ap.add_argument("--rate", type=int, required=True, help="bytes per second until --fast-file exists")
    ap.add_argument("--fast-file", required=True)
    ap.add_argument("--status-file", required=True)
    ap.add_argument("--timeout", type=float, default=170.0, help="give up after this many seconds")
    a = ap.parse_args()

    t0 = time.monotonic()
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # A small receive buffer keeps the window moving with the reader instead of filling megabytes first.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 256 * 1024)
    s.settimeout(10)
    s.bind((a.src, 0))
    s.connect((a.host, a.port))
    port = s.getsockname()[1]

    def status(line: str) -> None:
        tmp = a.status_file + ".tmp"
        with open(tmp, "w") as f:
            f.write(line + "\n")
        os.replace(tmp, a.status_file)

    status(f"port {port}")
    s.sendall(f"GET {a.path} HTTP/1.1\r\nHost: {a.host}\r\nConnection: close\r\n\r\n".encode())

    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        if not chunk:
            print("status=eof-in-headers length=0 received=0 sha256=- seconds=%.1f" % (time.monotonic() - t0))
            return 1
        head += chunk
    header, body = head.split(b"\r\n\r\n", 1)
    lines = header.decode("latin-1").split("\r\n")
    code = lines[0].split(" ")[1] if " " in lines[0] else "?"
    length = -1
    for line in lines[1:]:
        name, _, value = line.partition(":")
        if name.strip().lower() == "content-length":
            length = int(value.strip())

    digest = hashlib.sha256(body)
    received = len(body)
    allowance = 0.0
    last = time.monotonic()
    last_status = 0.0
    fast = False
    result = "ok"
    try:
        while length < 0 or received < length:
            now = time.monotonic()
            if now - t0 > a.timeout:
                result = "timeout"
                break
            if not fast and os.path.exists(a.fast_file):
                fast = True
            want = 1 << 20
            if not fast:
                allowance = min(allowance + (now - last) * a.rate, a.rate / 4)
                last = now
                if allowance < 4096:
                    time.sleep(0.01)
                    continue
                want = int(allowance)
            chunk = s.recv(min(want, 1 << 20))
            if not chunk:
                result = "eof"
                break
            allowance -= len(chunk)
            digest.update(chunk)
            received += len(chunk)
            if now - last_status >= 0.5:
                status(f"port {port} bytes {received}")
                last_status = now
    except (ConnectionResetError, socket.timeout, OSError) as e:
        result = type(e).__name__
    finally:
        s.close()
    status(f"port {port} bytes {received} done {result}")
    print("status=%s length=%d received=%d sha256=%s seconds=%.1f end=%s"
          % (code, length, received, digest.hexdigest(), time.monotonic() - t0, result))
    return 0 if result == "ok" and code == "200" and received == length else 1


if __name__ == "__main__":
    sys.exit(main())
