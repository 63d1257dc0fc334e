#!/usr/bin/env bash
# HARNESS SELF-CHECK ONLY, not a SYN proxy: a stand-in for the cookieproxy binary, made of the
# kernel's own TCP stack and haproxy, so the end-to-end tests can be checked before the real binary
# works:  COOKIEPROXY_BIN=tests/CookieProxy.EndToEnd/tools/standin-cookieproxy.sh dotnet test ...
# It accepts the CLI of the contract, un-hides the protected port (empties the lab's nft chain while it
# runs), lets haproxy listen on --listen and forward to --backend (send-proxy / send-proxy-v2), and
# writes a stats file from nft counters. Expected to fail only the flood test's "exactly one
# SYN+ACK" part if the kernel retransmits, and nothing else.
set -euo pipefail

usage()
{
  echo "usage: standin-cookieproxy.sh run --interface IF --listen IP:PORT --backend IP:PORT [--proxy-protocol v1|v2] [--stats-file F] [--stats-interval S]" >&2
  exit 2
}

[[ "${1:-}" == run ]] || usage
shift
iface="" listen="" backend="" pp="" stats="" interval=1
while (($#)); do
  case "$1" in
    --interface) iface="$2"; shift 2 ;;
    --listen) listen="$2"; shift 2 ;;
    --backend) backend="$2"; shift 2 ;;
    --proxy-protocol) pp="$2"; shift 2 ;;
    --stats-file) stats="$2"; shift 2 ;;
    --stats-interval) interval="$2"; shift 2 ;;
    --hide-port) shift ;;
    --key-file | --capture | --threads | --fanout) shift 2 ;;
    *) echo "unknown option $1" >&2; usage ;;
  esac
done
[[ -n "$iface" && "$listen" =~ ^[0-9.]+:[0-9]+$ && "$backend" =~ ^[0-9.]+:[0-9]+$ ]] || usage
ip link show "$iface" >/dev/null 2>&1 || { echo "$iface: No such device exists" >&2; exit 1; }
case "$pp" in
  "") send="" ;;
  v1) send="send-proxy" ;;
  v2) send="send-proxy-v2" ;;
  *) usage ;;
esac
ip="${listen%:*}" port="${listen#*:}"

dir="$(mktemp -d /tmp/cp-standin.XXXXXX)"
lab_chain=0
if nft list chain inet cookieproxy_lab prerouting >/dev/null 2>&1; then
  nft flush chain inet cookieproxy_lab prerouting
  lab_chain=1
fi
nft -f - <<NFT
table inet cookieproxy_standin {
    chain pre {
        type filter hook prerouting priority -300; policy accept;
        ip daddr $ip tcp dport $port tcp flags & (syn | ack) == syn counter
    }
    chain out {
        type filter hook output priority -300; policy accept;
        ip saddr $ip tcp sport $port tcp flags & (syn | ack) == syn | ack counter
        ip saddr $ip tcp sport $port tcp flags & rst == rst counter
    }
}
NFT

cat >"$dir/haproxy.cfg" <<CFG
global
    maxconn 4096
defaults
    mode tcp
    timeout connect 5s
    timeout client 120s
    timeout server 120s
frontend fe
    bind $listen
    default_backend be
backend be
    server s1 $backend $send
CFG
haproxy -f "$dir/haproxy.cfg" -db </dev/null >"$dir/haproxy.log" 2>&1 &
hpid=$!

counter()
{
  nft list chain inet cookieproxy_standin "$1" | awk -v n="$2" '/counter/ { i++; if (i == n) { for (k = 1; k <= NF; k++) if ($k == "packets") print $(k + 1) } }'
}

write_stats()
{
  [[ -n "$stats" ]] || return 0
  local syn synack rst
  syn="$(counter pre 1)" synack="$(counter out 1)" rst="$(counter out 2)"
  printf '{"syn_received":%d,"synack_sent":%d,"cookie_valid":%d,"cookie_invalid":0,"flows_created":%d,"flows_active":0,"rst_sent":%d,"drops":{}}\n' \
    "$syn" "$synack" "$synack" "$synack" "$rst" >"$stats.tmp"
  mv "$stats.tmp" "$stats"
  echo "standin: syn_received=$syn synack_sent=$synack rst_sent=$rst" >&2
}

finish()
{
  kill "$hpid" 2>/dev/null || true
  wait "$hpid" 2>/dev/null || true
  write_stats
  nft delete table inet cookieproxy_standin 2>/dev/null || true
  if ((lab_chain)); then
    nft add rule inet cookieproxy_lab prerouting iifname "$iface" ip daddr "$ip" tcp dport "$port" counter drop || true
  fi
  rm -rf "$dir"
  exit 0
}
trap finish TERM INT

# Ready (first stats file) only once haproxy listens: lab.sh proxy-start waits for that file.
for _ in $(seq 50); do
  ss -Hltn "sport = :$port" | grep -q . && break
  sleep 0.1
done
while kill -0 "$hpid" 2>/dev/null; do
  write_stats
  sleep "$interval" &
  wait $! || true
done
cat "$dir/haproxy.log" >&2
finish
