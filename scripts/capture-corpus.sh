#!/usr/bin/env bash
# scripts/capture-corpus.sh [DIR]: refreshes the fuzz seed corpus with frames of real traffic (issue 12.1).
# Brings up the lab (scripts/lab.sh up --no-vlan; CP_LAB_ID names it), starts the published binary with its defaults
# and two listeners (198.18.0.1:80 and [2001:db8:18::1]:80, both to Apache on 127.0.0.1:8080), and
# captures on the client's veth (tcpdump -w, full frames, a packet cap per file) while real tools talk to the
# protected port 198.18.0.1:80:
#   curl.pcap    curl GETs (IPv4 and IPv6) and a small upload, through the proxy to Apache
#   wrk.pcap     a one-second wrk burst (-t1 -c2), keep-alive requests
#   hping3.pcap  hping3 probes: SYN, SYN with payload, timestamps, ECN bits, fragments, ACK, FIN, RST, Xmas
# Both directions are in the files (the proxy's cookie SYN+ACKs, data and FINs too). The fuzzer
# (tests/CookieProxy.Tests/Fuzz/FrameFuzzer.cs) reads every DIR/*.pcap as seeds and moves the lab's server
# address onto its protected endpoint. DIR defaults to tests/CookieProxy.Tests/Fuzz/Corpus. Cleans up on exit.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$CP_ROOT"
cp_require_root
out="${1:-tests/CookieProxy.Tests/Fuzz/Corpus}"
mkdir -p "$out"
lab=(bash scripts/lab.sh)
tmp="$(mktemp -d /tmp/cookieproxy-corpus.XXXXXX)"
dump_pid=""

cleanup()
{
  [[ -n "$dump_pid" ]] && cp_stop_pid "$dump_pid" 2
  "${lab[@]}" down >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

in_cli()
{
  ip netns exec "$CP_NS_CLI" "$@"
}

# capture NAME MAX_PACKETS CMD...: CMD runs while tcpdump writes at most MAX_PACKETS frames to DIR/NAME.pcap.
capture()
{
  local name="$1" max="$2"
  shift 2
  rm -f "$tmp/tcpdump.err"
  ip netns exec "$CP_NS_CLI" tcpdump -i "$CP_DEV_CLI" -s 2048 -c "$max" -U -w "$tmp/$name.pcap" "tcp port $CP_PROTECTED_PORT or (ip[6:2] & 0x3fff != 0)" \
    2>"$tmp/tcpdump.err" &
  dump_pid=$!
  cp_wait_until 10 grep -q listening "$tmp/tcpdump.err" || cp_die "tcpdump did not start: $(cat "$tmp/tcpdump.err")"
  "$@" || cp_log "warning: $name: '$*' exited $?"
  sleep 1
  cp_stop_pid "$dump_pid" 3
  dump_pid=""
  mv "$tmp/$name.pcap" "$out/$name.pcap"
  cp_log "$out/$name.pcap: $(stat -c %s "$out/$name.pcap") bytes"
}

curl_traffic()
{
  local url="http://$CP_IP_SRV:$CP_PROTECTED_PORT"
  in_cli curl -fsS --max-time 10 -o /dev/null "$url/index.html"
  in_cli curl -fsS --max-time 10 -o /dev/null --interface "$CP_EXTRA_NET.7" "$url/1k.bin"
  in_cli curl -fsS --max-time 10 -o /dev/null -g "http://[$CP_IP6_SRV]:$CP_PROTECTED_PORT/index.html"
  in_cli curl -fsS --max-time 10 -o /dev/null --data-binary "@$CP_CACHEDIR/1k.bin" "$url/cgi-bin/upload"
}

wrk_traffic()
{
  in_cli timeout 10 wrk -t1 -c2 -d1s "http://$CP_IP_SRV:$CP_PROTECTED_PORT/index.html" >/dev/null
}

hping_traffic()
{
  local probe
  while read -r probe; do
    # shellcheck disable=SC2086 # a probe is a list of hping3 options
    in_cli timeout 5 hping3 -q -c 2 -i u20000 -p "$CP_PROTECTED_PORT" $probe "$CP_IP_SRV" >/dev/null 2>&1 || true
  done <<'EOF'
-S
-S -d 40
-S --tcp-timestamp
-S -X -Y
-S -f -d 64
-S -w 0 -M 4294967295
-A
-A -d 20
-F -A
-R
-F -S -R -P -A -U
EOF
}

cp_log "capture-corpus: lab up (CP_LAB_ID=${CP_LAB_ID:-none}), default binary $(cp_binary)"
"${lab[@]}" up --no-vlan >"$tmp/lab.log" 2>&1 || { cat "$tmp/lab.log" >&2; cp_die "lab.sh up failed"; }
"${lab[@]}" proxy-start --listen "$CP_IP_SRV:$CP_PROTECTED_PORT" --backend "127.0.0.1:$CP_BACKEND_PORT" \
  --listen "[$CP_IP6_SRV]:$CP_PROTECTED_PORT" --backend "127.0.0.1:$CP_BACKEND_PORT" >>"$tmp/lab.log" 2>&1 || { cat "$tmp/lab.log" >&2; cp_die "proxy-start failed"; }
capture curl 120 curl_traffic
capture wrk 100 wrk_traffic
capture hping3 80 hping_traffic
