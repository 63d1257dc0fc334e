#!/usr/bin/env bash
# CookieProxy in one command (as root): install the tools, publish the binary, build the netns lab,
# start CookieProxy in front of Apache, connect with curl, flood it with SYNs, print what happened,
# and tear everything down again (also on Ctrl-C or failure).
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$CP_ROOT"
cp_require_root

LAB=(bash scripts/lab.sh)
FLOOD_SECONDS="${DEMO_FLOOD_SECONDS:-6}"

section()
{
  printf '\n\033[1m== %s\033[0m\n' "$*"
}

cleanup()
{
  local rc=$?
  [[ -n "${tail_pid:-}" ]] && kill "$tail_pid" 2>/dev/null
  section "teardown"
  "${LAB[@]}" proxy-stop || true
  "${LAB[@]}" down || true
  echo "lab removed"
  exit "$rc"
}
trap cleanup EXIT

section "dependencies"
bash scripts/install-deps.sh

section "publish: dotnet publish src/CookieProxy -c Release -r linux-x64 --self-contained -p:PublishSingleFile=true -o out/"
if [[ "${DEMO_SKIP_PUBLISH:-0}" == 1 && -x "$(cp_binary)" ]]; then
  echo "DEMO_SKIP_PUBLISH=1: using $(cp_binary)"
else
  cp_publish
fi

section "lab: cp-cli (198.18.0.2) <-veth-> cp-srv (198.18.0.1), Apache on 127.0.0.1:8080, port 80 hidden from the kernel"
"${LAB[@]}" up
"${LAB[@]}" status || true
stats="$CP_LABDIR/stats.json"
proxylog="$CP_LABDIR/proxy.log"

section "without CookieProxy: port 80 does not answer"
"${LAB[@]}" exec-cli curl -sS --connect-timeout 2 -o /dev/null http://198.18.0.1/ || true

section "start CookieProxy in cp-srv"
"${LAB[@]}" proxy-start

section "a real client: curl -v http://198.18.0.1/ from cp-cli"
# The handshake completes against a SYN cookie; the page itself arrives once the backend splice is in.
"${LAB[@]}" exec-cli curl --connect-timeout 3 --max-time 5 -v -o /dev/null http://198.18.0.1/ || true

section "SYN flood: timeout $FLOOD_SECONDS hping3 -S -p 80 --faster -c 200000 198.18.0.1 (live counters below)"
sleep 1.2 # one stats interval, so "before" includes the curl above
before="$(cat "$stats" 2>/dev/null || echo '{}')"
tail -n 0 -f "$proxylog" &
tail_pid=$!
"${LAB[@]}" exec-cli timeout "$FLOOD_SECONDS" hping3 -q -S -p 80 --faster -c 200000 198.18.0.1 \
  >"$CP_LABDIR/hping3.out" 2>&1 &
flood_pid=$!
sleep 2
echo ">> while the flood runs, a real client connects from 198.18.1.50:"
"${LAB[@]}" exec-cli curl --interface 198.18.1.50 --connect-timeout 3 --max-time 5 -sS -o /dev/null \
  -w '>> connected in %{time_connect} s, HTTP %{http_code}\n' http://198.18.0.1/ || true
wait "$flood_pid" || true
sleep 2
kill "$tail_pid" 2>/dev/null || true
tail_pid=
grep -E 'packets (transmitted|received)' "$CP_LABDIR/hping3.out" || true

section "summary"
sleep 1.2
python3 - "$stats" "$before" <<'PY'
import json, sys
try:
    after = json.load(open(sys.argv[1]))
except Exception as e:
    sys.exit("no stats file: %s" % e)
before = json.loads(sys.argv[2] or "{}")
for key in ("syn_received", "synack_sent", "cookie_valid", "cookie_invalid", "flows_created", "flows_active", "rst_sent"):
    if key in after:
        delta = after[key] - before.get(key, 0) if isinstance(after[key], (int, float)) else ""
        print("%-16s %12s   (flood: +%s)" % (key, after[key], delta))
drops = after.get("drops") or {}
nonzero = {k: v for k, v in drops.items() if v}
print("drops            %s" % (nonzero or "none"))
PY
