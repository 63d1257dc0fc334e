#!/usr/bin/env bash
# Lossy-path benchmark (issue 13): a 16 MiB download through CookieProxy (Apache behind it, the default
# command line) and from a plain Linux socket (Apache itself) on the same server address, over the same
# impaired bridge, in one run; N downloads each, alternating, median, and the ratio.
#
#   cp-cli                         cp-lbr (the bridge)                     cp-srv
#   cp-c0 198.18.0.2 ---- cp-bc [lossy_bridge.py: loss, dup, reorder] cp-bs ---- cp-s0 198.18.0.1
#                                                                               :80   CookieProxy -> 127.0.0.1:8080
#                                                                               :8080 Apache (the plain socket)
#
# The lab is scripts/lab.sh's (Apache, files, port 80 hidden from the kernel); this script replaces its veth
# pair by two pairs through a middle namespace whose forwarder (scripts/bench/lossy_bridge.py, seeded)
# impairs TCP frames each way: this kernel has no sch_netem. Offloads are off on every veth, so each frame
# on the bridge is one MSS segment for both systems. Everything is bounded (curl --max-time, the
# forwarder's --duration) and torn down on exit (lab.sh down, the bridge namespace).
#
# Usage: scripts/bench-lossy.sh [--runs N] [--size-mb M] [--loss PCT] [--dup PCT] [--reorder PCT]
#                               [--levels "0 impaired"] [--seed S] [--keep-lab]
#   defaults: 5 runs, 16 MiB, 3% loss, 1% duplication, 10% reordering each way; levels "0 impaired".
#   $COOKIEPROXY_BIN picks the binary (default out/cookieproxy); $CP_LAB_ID suffixes the namespaces.
# Run it under /work/coord/bin/cpu-bench (or alone on the machine) for numbers worth reporting.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

LAB="$CP_ROOT/scripts/lab.sh"
RUNS=5
SIZE_MB=16
LOSS=3
DUP=1
REORDER=10
LEVELS="0 impaired"
SEED=1
KEEP=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) RUNS="$2"; shift ;;
    --size-mb) SIZE_MB="$2"; shift ;;
    --loss) LOSS="$2"; shift ;;
    --dup) DUP="$2"; shift ;;
    --reorder) REORDER="$2"; shift ;;
    --levels) LEVELS="$2"; shift ;;
    --seed) SEED="$2"; shift ;;
    --keep-lab) KEEP=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) printf 'error: unknown argument %s\n' "$1" >&2; exit 2 ;;
  esac
  shift
done
[[ "$RUNS" =~ ^[1-9][0-9]?$ ]] || { printf 'error: --runs %s: expected 1..99\n' "$RUNS" >&2; exit 2; }
[[ "$SIZE_MB" =~ ^[1-9][0-9]{0,2}$ ]] || { printf 'error: --size-mb %s: expected 1..999\n' "$SIZE_MB" >&2; exit 2; }
cp_require_root

NS_BR="cp-lbr$CP_LAB_SUFFIX"
BR_SRV=cp-bs
BR_CLI=cp-bc
FILE="lossy-${SIZE_MB}m.bin"
BYTES=$((SIZE_MB * 1024 * 1024))
TMP="$(mktemp -d /tmp/bench-lossy.XXXXXX)"
BRIDGE_PID=""

cleanup()
{
  [[ -n "$BRIDGE_PID" ]] && cp_stop_pid "$BRIDGE_PID" 3
  if ((KEEP == 0)); then
    ip netns del "$NS_BR" 2>/dev/null || true
    "$LAB" down >/dev/null 2>&1 || true
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT

in_cli() { ip netns exec "$CP_NS_CLI" "$@"; }

# The lab's direct veth pair becomes two pairs through the bridge namespace (same names and addresses on
# the end points, so Apache's bound sockets, the hidden port and lab.sh proxy-start work as before).
insert_bridge()
{
  ip netns del "$NS_BR" 2>/dev/null || true
  ip netns add "$NS_BR"
  ip -n "$CP_NS_SRV" link del "$CP_DEV_SRV"
  ip link add "$CP_DEV_SRV" netns "$CP_NS_SRV" type veth peer name "$BR_SRV" netns "$NS_BR"
  ip link add "$CP_DEV_CLI" netns "$CP_NS_CLI" type veth peer name "$BR_CLI" netns "$NS_BR"
  ip -n "$CP_NS_SRV" addr add "$CP_IP_SRV/$CP_PREFIX_LEN" dev "$CP_DEV_SRV"
  ip -n "$CP_NS_CLI" addr add "$CP_IP_CLI/$CP_PREFIX_LEN" dev "$CP_DEV_CLI"
  local ns dev feature
  for ns_dev in "$CP_NS_SRV:$CP_DEV_SRV" "$CP_NS_CLI:$CP_DEV_CLI" "$NS_BR:$BR_SRV" "$NS_BR:$BR_CLI"; do
    ns="${ns_dev%%:*}"
    dev="${ns_dev#*:}"
    for feature in tx rx gro gso tso; do
      ip netns exec "$ns" ethtool -K "$dev" "$feature" off >/dev/null 2>&1 || true
    done
    ip -n "$ns" link set "$dev" up
  done
  ip -n "$NS_BR" link set lo up
}

start_bridge()
{
  local loss="$1" dup="$2" reorder="$3"
  [[ -n "$BRIDGE_PID" ]] && cp_stop_pid "$BRIDGE_PID" 3
  rm -f "$TMP/bridge.json"
  ip netns exec "$NS_BR" python3 "$CP_ROOT/scripts/bench/lossy_bridge.py" --a "$BR_SRV" --b "$BR_CLI" \
    --loss "$loss" --dup "$dup" --reorder "$reorder" --seed "$SEED" --duration 900 \
    --stats-file "$TMP/bridge.json" </dev/null 2>>"$TMP/bridge.log" &
  BRIDGE_PID=$!
  cp_wait_until 5 test -s "$TMP/bridge.json" || cp_die "the bridge did not start: $(cat "$TMP/bridge.log")"
  cp_wait_until 10 in_cli ping -c1 -W1 "$CP_IP_SRV" || cp_die "no path through the bridge"
}

# One download: prints seconds, or "fail".
download()
{
  local url="$1" out
  out="$(in_cli curl -s -o /dev/null --max-time 60 -w '%{http_code} %{size_download} %{time_total}' "$url" 2>/dev/null)" || true
  read -r code size secs <<<"$out"
  if [[ "$code" == 200 && "$size" == "$BYTES" ]]; then
    printf '%s\n' "$secs"
  else
    printf 'fail\n'
  fi
}

median()
{
  printf '%s\n' "$@" | grep -v fail | sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print "fail"; else if (NR % 2) print v[(NR + 1) / 2]; else printf "%.6f\n", (v[NR / 2] + v[NR / 2 + 1]) / 2 }'
}

cp_log "lab up (CP_LAB_ID=${CP_LAB_ID:-none}), bridge namespace $NS_BR"
"$LAB" up --no-ipv6 --no-vlan >/dev/null # IPv4 only: the veths are rewired through the bridge below
CACHE="$CP_CACHEDIR"
if [[ "$(stat -c %s "$CACHE/$FILE" 2>/dev/null)" != "$BYTES" ]]; then
  head -c "$BYTES" /dev/urandom >"$CACHE/$FILE.tmp.$$" && mv "$CACHE/$FILE.tmp.$$" "$CACHE/$FILE"
  chmod 644 "$CACHE/$FILE"
fi
SUM="$(sha256sum <"$CACHE/$FILE" | awk '{ print $1 }')"
insert_bridge
"$LAB" proxy-start >/dev/null
PROXY_URL="http://$CP_IP_SRV:$CP_PROTECTED_PORT/$FILE"
PLAIN_URL="http://$CP_IP_SRV:$CP_BACKEND_PORT/$FILE"
BIN="$(cp_binary)"
printf 'bench-lossy: %s MiB, %s runs each, seed %s, binary %s (%s)\n' "$SIZE_MB" "$RUNS" "$SEED" "$BIN" \
  "$(git -C "$CP_ROOT" rev-parse --short HEAD 2>/dev/null || echo '?')"
printf '%-10s %-9s %10s %10s %8s   %s\n' level system median_s MiB_per_s ratio "runs (s)"

for level in $LEVELS; do
  if [[ "$level" == 0 ]]; then
    start_bridge 0 0 0
    label="0%"
  else
    start_bridge "$LOSS" "$DUP" "$REORDER"
    label="${LOSS}/${DUP}/${REORDER}%"
  fi
  # Integrity once per level: the proxied copy is byte for byte the file.
  got="$(in_cli curl -s --max-time 60 "$PROXY_URL" | sha256sum | awk '{ print $1 }')"
  [[ "$got" == "$SUM" ]] || cp_die "level $label: proxied download differs from the file (sha256 $got)"
  proxy=() plain=()
  for ((i = 0; i < RUNS; i++)); do
    proxy+=("$(download "$PROXY_URL")")
    plain+=("$(download "$PLAIN_URL")")
  done
  mp="$(median "${proxy[@]}")"
  ml="$(median "${plain[@]}")"
  ratio="$(awk -v a="$mp" -v b="$ml" 'BEGIN { if (a == "fail" || b == "fail" || b == 0) print "n/a"; else printf "%.2f", a / b }')"
  rate() { awk -v s="$1" -v m="$SIZE_MB" 'BEGIN { if (s == "fail" || s == 0) print "n/a"; else printf "%.1f", m / s }'; }
  printf '%-10s %-9s %10s %10s %8s   %s\n' "$label" cookieproxy "$mp" "$(rate "$mp")" "$ratio" "${proxy[*]}"
  printf '%-10s %-9s %10s %10s %8s   %s\n' "$label" linux "$ml" "$(rate "$ml")" "1.00" "${plain[*]}"
  stats="$(cat "$TMP/bridge.json")"
  printf '%-10s bridge %s\n' "$label" "$stats"
done

cp_stop_pid "$BRIDGE_PID" 3
BRIDGE_PID=""
retransmits="$("$LAB" stats 2>/dev/null | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("retransmits", d.get("counters", {}).get("retransmits", "?")))' 2>/dev/null || echo '?')"
printf 'cookieproxy retransmits (all levels): %s\n' "$retransmits"
