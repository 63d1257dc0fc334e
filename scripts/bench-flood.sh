#!/usr/bin/env bash
# Benchmark of CookieProxy against the kernel alone, haproxy `mode tcp`, nft SYNPROXY and kernel syncookies,
# in two phases that each give their table in one run:
#   latency  (issue 10, no flood): new connection + GET / p50/p99, curl 1 MiB median time, wrk -t1 -c16 /
#            req/s, wrk -t1 -c4 on 1 MiB MiB/s, curl 100 MiB MiB/s; ratios against the acceptance targets.
#   flood    (issue 9): trafgen SYN floods at fixed rates (default 100 and 200 kpps) and as fast as it goes:
#            share answered, server-core µs per answered SYN, both cores' busy µs per SYN, legit p50/p99 and
#            success during each flood.
#
# Lab (its own namespaces, all addresses inside 198.18.0.0/15):
#   flood-cli  fl-c0 198.19.0.2/24 + 198.19.1.1-250/32 (legit prober sources)
#              attack sources: 198.19.0.2 (hping3, incrementing source port) and
#              random 198.19.128.0/17 (trafgen); replies to those are routed back
#              to fl-c0 and dropped there (no RSTs leave flood-cli: attackers are silent).
#   flood-srv  fl-s0 198.19.0.1/24, Apache (mpm_event) from a temp config,
#              routes 198.19.1.0/24 and 198.19.128.0/17 via 198.19.0.2.
# CP_LAB_ID suffixes both namespace names (flood-srv-ID, flood-cli-ID).
# CPU: generators, prober, curl, wrk in flood-cli run on CPU 0 (taskset -c 0); server
# processes run on CPU 1; RPS on fl-s0 steers the server's receive softirq to CPU 1
# (and RPS on fl-c0 steers the client's receive softirq to CPU 0), so the kernel systems'
# SYN work is measurable as CPU-1 softirq time.
#
# Usage: scripts/bench-flood.sh [--quick] [--phases latency,flood] [--systems a,o,n,b,c,d,e] [--hping]
#                               [--trace] [--merge] [--tag NAME] [--out-dir DIR]
#   --quick    short phases (a few minutes in all); the full run takes about 8-10 minutes.
#   --phases   which phases to run (default both); each system runs only the phases it belongs to.
#   --hping    add an hping3 --flood run (one source, port++) to the flood phase.
#   --trace    latency phase: also one tcpdump-traced prober pass per system (client veth + server loopback),
#              summarised step by step (scripts/bench/trace.py; docs/latency.md reads it).
#   --tag NAME appends -NAME to the output file names (several runs on one day).
#   --merge    keeps the other systems' results of today's raw JSON (e.g. re-run only "a").
# Systems (phases):
#   a = CookieProxy, the default command line (latency, flood):
#       run --interface fl-s0 --listen 198.19.0.1:80 --backend 127.0.0.1:8080 --hide-port --stats-file F
#       (the stats file is rewritten every second)
#       Under taskset -c 1 the process sees one CPU, so the default is one capture thread.
#   o = CookieProxy --xdp-syn off: the user-space SYN path (flood). A binary without that value (before the
#       XDP path became the default) runs without the flag, which is the same thing.
#   x = CookieProxy --xdp-syn generic (flood; not in the default set)
#   n = CookieProxy, default command line, with an XDP_PASS program on the CLIENT veth (flood): a veth's native
#       XDP_TX reaches its peer only while the peer runs native XDP, so this is the lab in which `auto` picks
#       native XDP, as it would on a NIC. Native XDP on a veth runs in the NAPI poll the sender schedules, i.e.
#       on the generator's CPU 0: compare its "both cores" figure, not the server core's. b and c run without
#       the client program (it would put the client veth's NAPI poll for their SYN+ACKs on CPU 1).
#   b = nft SYNPROXY (flood), c = kernel syncookies (flood),
#   d = haproxy 2.6 `mode tcp`, nbthread 1, same core (latency), e = the kernel alone: Apache on
#       198.19.0.1:8080 (latency).
# Environment: COOKIEPROXY_BIN (default out/cookieproxy); CP_EXTRA: extra arguments appended to every
# CookieProxy command line (A/B a flag); COOKIEPROXY_CAPTURE: passed as --capture; FLOOD_RATES: the fixed
# trafgen rates in pps (default "100000 200000"); BENCH_PCAP=FILE: capture the prober's packets on fl-c0.
# Everything is bounded (count + timeout) and cleaned up on exit.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
BENCH="$ROOT/scripts/bench"
QUICK=0
MERGE=0
HPING=0
TRACE=0
TAG=""
SYSTEMS="a,o,n,b,c,d,e"
PHASES="latency,flood"
OUT_DIR="$ROOT/docs/bench"
COOKIEPROXY_BIN="${COOKIEPROXY_BIN:-$ROOT/out/cookieproxy}"

while [[ $# -gt 0 ]]; do
    case "$1" in
        --quick) QUICK=1 ;;
        --systems) SYSTEMS="$2"; shift ;;
        --phases) PHASES="$2"; shift ;;
        --hping) HPING=1 ;;
        --trace) TRACE=1 ;;
        --merge) MERGE=1 ;;
        --tag) TAG="$2"; shift ;;
        --out-dir) OUT_DIR="$2"; shift ;;
        -h|--help) awk 'NR > 1 && /^#/ { sub(/^# ?/, ""); print; next } NR > 1 { exit }' "$0"; exit 0 ;;
        *) echo "unknown argument: $1" >&2; exit 2 ;;
    esac
    shift
done
for s in ${SYSTEMS//,/ }; do
    [[ "$s" =~ ^[aoxnbcde]$ ]] || { echo "--systems: unknown system '$s' (a, o, x, n, b, c, d, e)" >&2; exit 2; }
done
for p in ${PHASES//,/ }; do
    [[ "$p" == latency || "$p" == flood ]] || { echo "--phases: unknown phase '$p' (latency, flood)" >&2; exit 2; }
done

if [[ $QUICK -eq 1 ]]; then
    FLOOD_S=3; AFTER_S=1.5; BG_S=2; PROBE_RATE=20
    LAT_COUNT=150; LAT_RATE=50; DL_SMALL_N=7; DL_BIG_N=3; WRK_S=3
else
    FLOOD_S=8; AFTER_S=2; BG_S=3; PROBE_RATE=20
    LAT_COUNT=400; LAT_RATE=50; DL_SMALL_N=11; DL_BIG_N=3; WRK_S=8
fi
RATES="${FLOOD_RATES:-100000 200000}"

# python3 with matplotlib (pyenv's has it here; fall back to the system one)
PY=python3
if ! $PY -c 'import matplotlib' 2>/dev/null; then
    for cand in /usr/bin/python3 python3; do
        if $cand -c 'import matplotlib' 2>/dev/null; then PY=$cand; break; fi
    done
fi

SRV="flood-srv${CP_LAB_ID:+-$CP_LAB_ID}"
CLI="flood-cli${CP_LAB_ID:+-$CP_LAB_ID}"
export BENCH_SRV_NS="$SRV" BENCH_CLI_NS="$CLI"
SRV_IP=198.19.0.1
CLI_IP=198.19.0.2
STAMP="$(date -u +%Y-%m-%d)"
RUN_ID="$(date -u +%Y%m%dT%H%M%SZ)"
TMP="$(mktemp -d /tmp/flood-bench.XXXXXX)"
chmod 755 "$TMP"
RESULTS="$TMP/results.jsonl"
LATENCY="$TMP/latency.jsonl"
CPINFO="$TMP/cookieproxy.jsonl"
PIDS_FILE="$TMP/server.pids"
: > "$RESULTS"; : > "$LATENCY"; : > "$CPINFO"
declare -a OUR_PIDS=()
PORT_BASE=20000
APACHE_CONF="$TMP/apache/httpd.conf"
CP_STATS="$TMP/cookieproxy-stats.json"

log() { printf '[bench-flood %s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
in_srv() { ip netns exec "$SRV" "$@"; }
in_cli() { ip netns exec "$CLI" "$@"; }
has_sys() { [[ ",$SYSTEMS," == *",$1,"* ]]; }
has_phase() { [[ ",$PHASES," == *",$1,"* ]]; }

kill_pid() {
    local pid="$1"
    [[ -n "$pid" ]] && kill -0 "$pid" 2>/dev/null && kill "$pid" 2>/dev/null || true
}

cleanup() {
    local rc=$?
    set +e
    log "cleanup"
    # the measuring python (its generator and prober children end by their own timeouts)
    [[ -n "${RUN_PID:-}" ]] && kill_pid "$RUN_PID"
    stop_cookieproxy
    stop_haproxy
    stop_apache
    for pid in "${OUR_PIDS[@]}"; do kill_pid "$pid"; done
    # Deleting the namespaces removes veths, qdiscs, nft tables and every
    # per-netns sysctl we set (tcp_syncookies, tcp_max_syn_backlog, nf_conntrack_tcp_loose,
    # tcp_timestamps are all per network namespace); no global sysctl is changed.
    ip netns del "$SRV" 2>/dev/null
    ip netns del "$CLI" 2>/dev/null
    rm -rf "$TMP"
    exit $rc
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# ---------------------------------------------------------------- lab
setup_lab() {
    log "lab: namespaces $SRV/$CLI"
    ip netns del "$SRV" 2>/dev/null || true
    ip netns del "$CLI" 2>/dev/null || true
    ip netns add "$SRV"
    ip netns add "$CLI"
    ip link add fl-s0 netns "$SRV" type veth peer name fl-c0 netns "$CLI"
    in_srv ip link set lo up
    in_cli ip link set lo up
    in_srv ip addr add "$SRV_IP/24" dev fl-s0
    in_cli ip addr add "$CLI_IP/24" dev fl-c0
    # legit prober sources 198.19.1.1-250
    for i in $(seq 1 250); do echo "addr add 198.19.1.$i/32 dev fl-c0"; done | in_cli ip -batch -
    for ns_dev in "$SRV fl-s0" "$CLI fl-c0"; do
        set -- $ns_dev
        ip netns exec "$1" ethtool -K "$2" tx off rx off gro off gso off tso off >/dev/null 2>&1 || true
        ip netns exec "$1" ip link set "$2" up
    done
    in_srv ip route add 198.19.1.0/24 via "$CLI_IP"
    in_srv ip route add 198.19.128.0/17 via "$CLI_IP"
    # RPS: server receive processing on CPU 1, client receive processing on CPU 0
    # (BENCH_RPS=0 disables this, for experiments only: CPU accounting then breaks)
    if [[ "${BENCH_RPS:-1}" == 1 ]]; then
        in_srv sh -c 'echo 2 > /sys/class/net/fl-s0/queues/rx-0/rps_cpus'
        in_cli sh -c 'echo 1 > /sys/class/net/fl-c0/queues/rx-0/rps_cpus'
    fi
    # flood-cli: attackers never answer SYN+ACKs (no RST from the hping3 source), and
    # counters for offered/answered accounting (see scripts/bench/run_flood.py).
    in_cli nft -f - <<EOF
table inet flsilent {
    chain out {
        type filter hook output priority filter; policy accept;
        ip saddr $CLI_IP ip daddr $SRV_IP tcp dport 80 tcp flags & rst == rst drop
    }
}
table netdev flcnt {
    counter eg_all { }
    counter eg_flood_syn { }
    counter in_all { }
    counter in_flood_synack { }
    counter in_legit_synack { }
    chain eg {
        type filter hook egress device fl-c0 priority filter; policy accept;
        counter name eg_all
        ip daddr $SRV_IP tcp dport 80 tcp flags & (fin|syn|rst|ack) == syn ip saddr != 198.19.1.0/24 counter name eg_flood_syn
    }
    chain in {
        type filter hook ingress device fl-c0 priority filter; policy accept;
        counter name in_all
        ip saddr $SRV_IP tcp sport 80 tcp flags & (fin|syn|rst|ack) == syn|ack ip daddr != 198.19.1.0/24 counter name in_flood_synack
        ip saddr $SRV_IP tcp sport 80 tcp flags & (fin|syn|rst|ack) == syn|ack ip daddr 198.19.1.0/24 counter name in_legit_synack
    }
}
EOF
    # per-netns TCP settings shared by all systems
    in_srv sysctl -qw net.ipv4.tcp_syncookies=1 net.ipv4.tcp_timestamps=1 net.ipv4.tcp_max_syn_backlog=512
    in_cli sysctl -qw net.ipv4.ip_local_port_range="32768 60999"
    in_cli ping -c1 -W1 "$SRV_IP" >/dev/null
    SRV_MAC="$(in_srv cat /sys/class/net/fl-s0/address)"
    cat > "$TMP/trafgen-syn.cfg" <<EOF
/* SYN flood, random source in 198.19.128.0/17 and random source port */
{
  eth(da=$SRV_MAC),
  ipv4(sa=198.19.128.0, sa[2]=drnd(128,255), sa[3]=drnd(), da=$SRV_IP, ttl=64, id=drnd()),
  tcp(sp=drnd(1024,65535), dp=80, syn, seq=drnd(), win=64240)
}
EOF
}

# ---------------------------------------------------------------- apache
make_docroot() {
    mkdir -p "$TMP/www" "$TMP/apache"
    echo '<html><body>flood bench</body></html>' > "$TMP/www/index.html"
    head -c $((1024 * 1024)) /dev/urandom > "$TMP/www/1m.bin"
    head -c $((100 * 1024 * 1024)) /dev/zero > "$TMP/www/100m.bin"
    chmod -R a+rX "$TMP/www"
}

# start_apache LISTEN... : Apache (mpm_event) from our own config, pinned to CPU 1
start_apache() {
    local listens=""
    for l in "$@"; do listens+="Listen $l"$'\n'; done
    local mods=/usr/lib/apache2/modules
    cat > "$APACHE_CONF" <<EOF
ServerRoot "$TMP/apache"
ServerName flood-bench
LoadModule mpm_event_module $mods/mod_mpm_event.so
LoadModule authz_core_module $mods/mod_authz_core.so
LoadModule dir_module $mods/mod_dir.so
LoadModule mime_module $mods/mod_mime.so
$listens
ListenBacklog 511
User www-data
Group www-data
PidFile $TMP/apache/httpd.pid
ErrorLog $TMP/apache/error.log
LogLevel warn
Mutex file:$TMP/apache default
DefaultRuntimeDir $TMP/apache
DocumentRoot "$TMP/www"
<Directory "$TMP/www">
    Require all granted
</Directory>
DirectoryIndex index.html
TypesConfig /etc/mime.types
EnableSendfile On
KeepAlive On
MaxKeepAliveRequests 0
Timeout 30
# fixed worker pool: no process churn during measurements
StartServers 2
ServerLimit 2
ThreadsPerChild 64
MaxRequestWorkers 128
MinSpareThreads 1
MaxSpareThreads 128
EOF
    in_srv taskset -c 1 apache2 -f "$APACHE_CONF" -k start
    for _ in $(seq 1 50); do [[ -s "$TMP/apache/httpd.pid" ]] && break; sleep 0.1; done
    APACHE_PID="$(cat "$TMP/apache/httpd.pid")"
    sleep 0.5
    log "apache pid $APACHE_PID listening on $*"
}

stop_apache() {
    if [[ -n "${APACHE_PID:-}" ]]; then
        kill_pid "$APACHE_PID"
        for _ in $(seq 1 50); do kill -0 "$APACHE_PID" 2>/dev/null || break; sleep 0.1; done
        APACHE_PID=""
        rm -f "$TMP/apache/httpd.pid"
    fi
}

# ---------------------------------------------------------------- cookieproxy (a, o, x)
# The arguments system $1 adds to the default command line.
cp_system_args() {
    case "$1" in
        a) echo "" ;;
        o) if "$COOKIEPROXY_BIN" run --help 2>&1 | grep -qE -- '--xdp-syn <[^>]*\boff\b'; then echo "--xdp-syn off"; else echo ""; fi ;;
        x) echo "--xdp-syn generic" ;;
        n) echo "" ;;
    esac
}

# client_xdp on|off: an XDP_PASS program on the client veth (system n), built with the clang the build uses.
client_xdp() {
    if [[ "$1" == on ]]; then
        # no headers needed: XDP_PASS is 2 (include/uapi/linux/bpf.h, enum xdp_action)
        printf '%s\n' '__attribute__((section("xdp"), used)) int xdp_pass(void *ctx) { return 2; }' \
            'char _license[] __attribute__((section("license"), used)) = "GPL";' > "$TMP/xdp_pass.c"
        clang -O2 -target bpf -c "$TMP/xdp_pass.c" -o "$TMP/xdp_pass.o"
        in_cli ip link set dev fl-c0 xdpdrv obj "$TMP/xdp_pass.o" sec xdp
        log "client veth fl-c0: native XDP_PASS attached (system n)"
    else
        in_cli ip link set dev fl-c0 xdpdrv off 2>/dev/null || true
    fi
}

# start_cookieproxy SYSTEM: the default command line (+ the system's flag, $COOKIEPROXY_CAPTURE, $CP_EXTRA)
start_cookieproxy() {
    local sys="$1"
    CP_PID=""
    CP_STATUS=""
    CP_SHOWN=""
    if [[ ! -x "$COOKIEPROXY_BIN" ]]; then
        CP_STATUS="n/a (binary missing)"
        log "cookieproxy: $COOKIEPROXY_BIN missing -> n/a"
        cp_info "$sys" ""
        return 1
    fi
    rm -f "$CP_STATS"
    CP_ARGS="run --interface fl-s0 --listen $SRV_IP:80 --backend 127.0.0.1:8080 --hide-port --stats-file $CP_STATS"
    local extra
    extra="$(cp_system_args "$sys") ${COOKIEPROXY_CAPTURE:+--capture $COOKIEPROXY_CAPTURE} ${CP_EXTRA:-}"
    CP_ARGS="$CP_ARGS $(echo $extra)"
    CP_SHOWN="${CP_ARGS//$CP_STATS/F}"    # the report shows the command line without this run's temp path
    log "cookieproxy ($sys): $CP_SHOWN"
    # not via the in_srv function: a backgrounded function is a bash subshell, and $!
    # would be that subshell instead of the proxy (ip netns exec and taskset exec in place)
    # shellcheck disable=SC2086
    ip netns exec "$SRV" taskset -c 1 "$COOKIEPROXY_BIN" $CP_ARGS > "$TMP/cookieproxy-$sys.log" 2>&1 &
    CP_PID=$!
    OUR_PIDS+=("$CP_PID")
    local ok=0
    for _ in $(seq 1 30); do
        sleep 0.5
        kill -0 "$CP_PID" 2>/dev/null || break
        if in_cli curl -s -o /dev/null --max-time 2 "http://$SRV_IP/index.html"; then ok=1; break; fi
    done
    if [[ $ok -ne 1 ]]; then
        CP_STATUS="n/a (binary failed to start)"
        log "cookieproxy failed to start; log tail:"; tail -5 "$TMP/cookieproxy-$sys.log" >&2 || true
        stop_cookieproxy
        cp_info "$sys" ""
        return 1
    fi
    CP_STATUS="ok"
    CP_RSS_BEFORE=$(rss_kib "$CP_PID")
    log "cookieproxy pid $CP_PID up: $(grep -m1 'capturing on' "$TMP/cookieproxy-$sys.log" || true)"
}

# cp_info SYSTEM: one JSON line per CookieProxy system (command line, start-up lines, RSS, final stats)
cp_info() {
    local sys="$1"
    $PY - "$sys" "$CP_STATUS" "${CP_SHOWN:-}" "$TMP/cookieproxy-$sys.log" "${CP_RSS_BEFORE:-}" "${CP_RSS_AFTER:-}" \
        "$TMP/cookieproxy-stats-$sys.json" >> "$CPINFO" <<'EOF'
import json, os, sys
s, status, args, logf, rb, ra, stats = sys.argv[1:]
lines = []
if os.path.exists(logf):
    lines = [l.rstrip() for l in open(logf, errors="replace") if l.startswith("cookieproxy:") and "syn=" not in l][:8]
st = None
if os.path.exists(stats):
    try:
        st = json.load(open(stats))
    except ValueError:
        pass
print(json.dumps({"system": s, "status": status, "command": args, "startup": lines,
                  "rss_kib": {"before": int(rb) if rb else None, "after": int(ra) if ra else None}, "stats": st}))
EOF
}

stop_cookieproxy() {
    if [[ -n "${CP_PID:-}" ]]; then
        # SIGINT first (graceful, final stats-file write); background jobs of a
        # non-interactive shell start with SIGINT ignored, so follow with SIGTERM, then KILL.
        kill -INT "$CP_PID" 2>/dev/null || true
        for _ in $(seq 1 20); do kill -0 "$CP_PID" 2>/dev/null || break; sleep 0.1; done
        kill_pid "$CP_PID"
        # the second signal ends the drain (resets what is left); give the exit up to 12 s on a loaded machine
        for _ in $(seq 1 120); do kill -0 "$CP_PID" 2>/dev/null || break; sleep 0.1; done
        kill -0 "$CP_PID" 2>/dev/null && kill -KILL "$CP_PID" 2>/dev/null || true
        CP_PID=""
        # A proxy that died without cleaning up would leave its hide rule and spoil the next system's run.
        if in_srv nft list tables 2>/dev/null | grep -q 'inet cookieproxy_'; then
            log "cookieproxy left its nft table behind (crashed?): removing it"
            in_srv nft list tables | awk '$2 == "inet" && $3 ~ /^cookieproxy_/ {print $3}' | while read -r t; do in_srv nft delete table inet "$t"; done
        fi
        # ... and an XDP program of a crashed --xdp-syn run
        in_srv ip link set dev fl-s0 xdpgeneric off 2>/dev/null || true
        in_srv ip link set dev fl-s0 xdpdrv off 2>/dev/null || true
    fi
}

rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$1/status" 2>/dev/null || echo 0; }

# ---------------------------------------------------------------- synproxy (b)
start_synproxy() {
    # nftables wiki "Synproxy": untrack SYNs at raw priority, synproxy the
    # invalid/untracked rest, drop invalid.  mss/wscale must match the backend
    # listener (man page): mss 1460 for MTU 1500; the wscale the kernel announces is
    # clamp(ilog2(max(tcp_rmem[2], rmem_max)) - 15, 0, 14) (tcp_select_initial_window),
    # which is 10, not the wiki's example 7, with the 32 MiB tcp_rmem[2] of this kernel.
    in_srv sysctl -qw net.netfilter.nf_conntrack_tcp_loose=0 net.ipv4.tcp_syncookies=1 net.ipv4.tcp_timestamps=1
    local rmem2 rmax
    rmem2=$(in_srv sysctl -n net.ipv4.tcp_rmem | awk '{print $3}')
    rmax=$(in_srv sysctl -n net.core.rmem_max)
    SYNPROXY_WSCALE="${SYNPROXY_WSCALE:-$($PY -c "import sys; s=max(int(sys.argv[1]),int(sys.argv[2])); print(min(14,max(0,s.bit_length()-1-15)))" "$rmem2" "$rmax")}"
    log "synproxy: mss 1460 wscale $SYNPROXY_WSCALE (tcp_rmem[2]=$rmem2 rmem_max=$rmax)"
    in_srv nft -f - <<EOF
table ip flsynproxy {
    chain pre {
        type filter hook prerouting priority raw; policy accept;
        iifname "fl-s0" ip daddr $SRV_IP tcp dport 80 tcp flags & (fin|syn|rst|ack) == syn notrack
    }
    chain inp {
        type filter hook input priority filter; policy accept;
        iifname "fl-s0" ip daddr $SRV_IP tcp dport 80 ct state invalid,untracked synproxy mss 1460 wscale $SYNPROXY_WSCALE timestamp sack-perm
        iifname "fl-s0" ip daddr $SRV_IP tcp dport 80 ct state invalid drop
    }
}
EOF
}

stop_synproxy() {
    in_srv nft delete table ip flsynproxy 2>/dev/null || true
    in_srv sysctl -qw net.netfilter.nf_conntrack_tcp_loose=1 2>/dev/null || true
}

# ---------------------------------------------------------------- haproxy (d)
start_haproxy() {
    cat > "$TMP/haproxy.cfg" <<EOF
global
    nbthread 1
    maxconn 4000
defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s
listen bench
    bind $SRV_IP:80
    server apache 127.0.0.1:8080
EOF
    in_srv taskset -c 1 haproxy -f "$TMP/haproxy.cfg" -D -p "$TMP/haproxy.pid"
    for _ in $(seq 1 50); do [[ -s "$TMP/haproxy.pid" ]] && break; sleep 0.1; done
    HAPROXY_PID="$(head -1 "$TMP/haproxy.pid")"
    sleep 0.3
}

stop_haproxy() {
    if [[ -n "${HAPROXY_PID:-}" ]]; then
        kill_pid "$HAPROXY_PID"
        for _ in $(seq 1 30); do kill -0 "$HAPROXY_PID" 2>/dev/null || break; sleep 0.1; done
        HAPROXY_PID=""
    fi
}

# ---------------------------------------------------------------- flood phase
write_pids() { printf '%s\n' "$@" > "$PIDS_FILE"; }

run_one() { # run_one SYSTEM KIND RATE
    local sys="$1" kind="$2" rate="$3"
    PORT_BASE=$((PORT_BASE + 200))
    log "flood: system=$sys kind=$kind rate=${rate:-max}"
    # in the background + wait, so that INT/TERM run the cleanup trap at once
    # (bash defers traps until a foreground child exits)
    $PY "$BENCH/run_flood.py" --system "$sys" --kind "$kind" --rate "$rate" --duration "$FLOOD_S" \
        --after "$AFTER_S" --probe-rate "$PROBE_RATE" --port-base "$PORT_BASE" --pids-file "$PIDS_FILE" \
        --trafgen-cfg "$TMP/trafgen-syn.cfg" --bg "$TMP/bg-$sys.json" --out "$RESULTS" \
        $([[ "$sys" == [aox] ]] && echo "--cp-stats $CP_STATS") >&2 &
    RUN_PID=$!
    wait "$RUN_PID" || log "run failed"
    RUN_PID=""
    sleep 1   # let half-open state / conntrack settle a little between runs
}

flood_suite() { # flood_suite SYSTEM
    local sys="$1"
    $PY "$BENCH/run_flood.py" --system "$sys" --kind none --background --duration "$BG_S" \
        --pids-file "$PIDS_FILE" --out "$TMP/bg-$sys.json" >&2
    run_one "$sys" none 0
    for r in $RATES; do run_one "$sys" trafgen "$r"; done
    run_one "$sys" trafgen 0
    if [[ $HPING -eq 1 ]]; then run_one "$sys" hping 0; fi
}

# ---------------------------------------------------------------- latency phase
# median of numbers on stdin
median() { sort -g | awk '{ v[NR] = $1 } END { if (NR == 0) print 0; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

# wrk "Transfer/sec: 1.23GB" -> bytes/s
wrk_bytes() { awk '/Transfer\/sec/ { v = $2; m = 1; if (v ~ /KB$/) m = 1024; else if (v ~ /MB$/) m = 1048576; else if (v ~ /GB$/) m = 1073741824; sub(/[KMG]?B$/, "", v); printf "%.0f\n", v * m }'; }

# prober_json LABEL PORT COUNT: new connection + GET / at $LAT_RATE per second, fresh source address and port each
prober_json() {
    local label="$1" port="$2" count="$3"
    PORT_BASE=$((PORT_BASE + 200))
    in_cli taskset -c 0 $PY "$BENCH/prober.py" --port "$port" --path / --count "$count" --rate "$LAT_RATE" \
        --timeout 3 --port-base "$PORT_BASE" --max-seconds $((count / LAT_RATE + 5)) --label "$label" \
        || echo '{"attempted": 0, "ok": 0, "error": "prober failed"}'
}

latency_suite() { # latency_suite SYSTEM PORT
    local sys="$1" port="$2"
    local base="http://$SRV_IP:$port"
    log "latency: $sys via $base"
    in_cli taskset -c 0 curl -s -o /dev/null --max-time 5 "$base/" || true    # warm-up
    local probe
    probe="$(prober_json "idle" "$port" "$LAT_COUNT" | tail -1)"
    local traced='null'
    if [[ $TRACE -eq 1 ]]; then
        traced="$(trace_pass "$sys" "$port")"
    fi
    # 1 MiB: median time of DL_SMALL_N downloads
    local t1=()
    for _ in $(seq 1 "$DL_SMALL_N"); do
        t1+=("$(in_cli taskset -c 0 curl -s -o /dev/null --max-time 20 -w '%{time_total}' "$base/1m.bin" || echo 0)")
    done
    local small_s
    small_s=$(printf '%s\n' "${t1[@]}" | median)
    # wrk: small requests on 16 connections, then 1 MiB on 4
    local w16 w4
    w16=$(in_cli timeout $((WRK_S + 15)) taskset -c 0 wrk -t1 -c16 -d"${WRK_S}s" "$base/" 2>&1 || true)
    w4=$(in_cli timeout $((WRK_S + 15)) taskset -c 0 wrk -t1 -c4 -d"${WRK_S}s" "$base/1m.bin" 2>&1 || true)
    local rps16 bps4 errs
    rps16=$(awk '/Requests\/sec/ {print $2}' <<<"$w16")
    bps4=$(wrk_bytes <<<"$w4")
    errs=$(cat <<<"$w16"$'\n'"$w4" | awk '/Socket errors|Non-2xx/ {printf "%s; ", $0}')
    # 100 MiB: median of DL_BIG_N
    local b=()
    for _ in $(seq 1 "$DL_BIG_N"); do
        b+=("$(in_cli taskset -c 0 curl -s -o /dev/null --max-time 60 -w '%{speed_download}' "$base/100m.bin" || echo 0)")
    done
    local big
    big=$(printf '%s\n' "${b[@]}" | median)
    $PY - "$sys" "$probe" "${small_s:-0}" "${rps16:-0}" "${bps4:-0}" "${big:-0}" "$errs" "$traced" \
        "$(IFS=,; echo "${t1[*]}")" >> "$LATENCY" <<'EOF'
import json, sys
s, probe, small, rps, bps4, big, errs, traced, smalls = sys.argv[1:]
try:
    probe = json.loads(probe)
except ValueError:
    probe = {"error": "prober output unreadable"}
try:
    traced = json.loads(traced)
except ValueError:
    traced = None
print(json.dumps({"system": s, "connect_get": probe, "dl_1m_s": float(small),
                  "dl_1m_samples_s": [float(x) for x in smalls.split(",") if x],
                  "wrk_c16_rps": float(rps), "wrk_c4_1m_Bps": float(bps4), "dl_100m_Bps": float(big),
                  "wrk_errors": errs, "trace": traced}))
EOF
}

# trace_pass SYSTEM PORT: one more prober pass with tcpdump on the client veth and the server loopback;
# prints the step summary (JSON) of scripts/bench/trace.py
trace_pass() {
    local sys="$1" port="$2"
    local n=$((LAT_COUNT / 2))
    local cpcap="$TMP/trace-$sys-cli.pcap" lpcap="$TMP/trace-$sys-lo.pcap"
    # Not through in_cli/in_srv: a backgrounded function is a subshell, and $! would not be tcpdump's timeout.
    # On CPU 0 with the clients, so that CPU 1 has only the server's work.
    ip netns exec "$CLI" timeout 120 taskset -c 0 tcpdump -i fl-c0 -s 128 -c 100000 --time-stamp-precision=nano -w "$cpcap" \
        "tcp and net 198.19.1.0/24" >/dev/null 2>&1 &
    local p1=$!
    ip netns exec "$SRV" timeout 120 taskset -c 0 tcpdump -i lo -s 128 -c 100000 --time-stamp-precision=nano -w "$lpcap" \
        "tcp port 8080" >/dev/null 2>&1 &
    local p2=$!
    OUR_PIDS+=("$p1" "$p2")
    sleep 1
    local probe
    probe="$(prober_json "trace" "$port" "$n" | tail -1)"
    sleep 0.5
    kill -TERM "$p1" "$p2" 2>/dev/null || true   # background jobs ignore SIGINT
    wait "$p1" "$p2" 2>/dev/null || true
    $PY "$BENCH/trace.py" --client "$cpcap" --loopback "$lpcap" --server-port "$port" --backend-port 8080 \
        --system "$sys" --prober "$probe" 2>/dev/null || echo null
    if [[ -n "${BENCH_TRACE_KEEP:-}" ]]; then cp "$cpcap" "$lpcap" "$BENCH_TRACE_KEEP/" 2>/dev/null || true; fi
}

# ---------------------------------------------------------------- main
log "run $RUN_ID quick=$QUICK phases=$PHASES systems=$SYSTEMS floods=${FLOOD_S}s rates=[$RATES] python=$PY"
command -v trafgen apache2 wrk curl nft >/dev/null
has_sys d && { command -v haproxy >/dev/null || { echo "haproxy is not installed (system d)" >&2; exit 2; }; }
[[ $HPING -eq 1 ]] && { command -v hping3 >/dev/null || { echo "hping3 is not installed (--hping)" >&2; exit 2; }; }
[[ $TRACE -eq 1 ]] && { command -v tcpdump >/dev/null || { echo "tcpdump is not installed (--trace)" >&2; exit 2; }; }
make_docroot
setup_lab
if [[ -n "${BENCH_PCAP:-}" ]]; then
    # debugging aid: capture the legit prober traffic on fl-c0 (bounded by count and time)
    ip netns exec "$CLI" timeout 900 tcpdump -i fl-c0 -s 128 -c 200000 -w "$BENCH_PCAP" net 198.19.1.0/24 2>/dev/null &
    OUR_PIDS+=("$!")
fi

for sys in a o x n; do
    has_sys "$sys" || continue
    want_latency=0; want_flood=0
    [[ "$sys" == a ]] && has_phase latency && want_latency=1
    has_phase flood && want_flood=1
    [[ $want_latency -eq 0 && $want_flood -eq 0 ]] && continue
    start_apache 127.0.0.1:8080
    CP_RSS_BEFORE=""; CP_RSS_AFTER=""
    [[ "$sys" == n ]] && client_xdp on
    if start_cookieproxy "$sys"; then
        write_pids "$CP_PID" "$APACHE_PID"
        [[ $want_latency -eq 1 ]] && latency_suite "$sys" 80
        [[ $want_flood -eq 1 ]] && flood_suite "$sys"
        CP_RSS_AFTER=$(rss_kib "$CP_PID")
        stop_cookieproxy
        cp "$CP_STATS" "$TMP/cookieproxy-stats-$sys.json" 2>/dev/null || true
        cp_info "$sys"
    fi
    [[ "$sys" == n ]] && client_xdp off
    stop_apache
done

if has_phase flood && has_sys b; then
    start_apache "$SRV_IP:80"
    start_synproxy
    write_pids "$APACHE_PID"
    flood_suite b
    stop_synproxy
    stop_apache
fi

if has_phase flood && has_sys c; then
    start_apache "$SRV_IP:80"
    in_srv sysctl -qw net.ipv4.tcp_syncookies=1 net.ipv4.tcp_max_syn_backlog=512
    write_pids "$APACHE_PID"
    flood_suite c
    stop_apache
fi

if has_phase latency && { has_sys d || has_sys e; }; then
    start_apache 127.0.0.1:8080 "$SRV_IP:8080"
    if has_sys d; then
        start_haproxy
        write_pids "$HAPROXY_PID" "$APACHE_PID"
        latency_suite d 80
        stop_haproxy
    fi
    if has_sys e; then
        write_pids "$APACHE_PID"
        latency_suite e 8080
    fi
    stop_apache
fi

mkdir -p "$OUT_DIR"
SUFFIX="$STAMP"; [[ $QUICK -eq 1 ]] && SUFFIX="$STAMP-quick"; [[ -n "$TAG" ]] && SUFFIX="$SUFFIX-$TAG"
RAW="$OUT_DIR/raw-$SUFFIX.json"
$PY - "$RESULTS" "$LATENCY" "$CPINFO" "$RAW" "$RUN_ID" "$QUICK" "$SYSTEMS" "$PHASES" "$MERGE" \
    "$FLOOD_S" "$RATES" "${CP_EXTRA:-}" <<'EOF'
import json, sys, os
res, lat, cpi, raw, run_id, quick, systems, phases, merge, flood_s, rates, extra = sys.argv[1:]
rows = lambda p: [json.loads(l) for l in open(p) if l.strip()]
doc = {"format": 2, "run_id": run_id, "quick": quick == "1", "systems_run": systems, "phases_run": phases,
       "flood_seconds": float(flood_s), "fixed_rates": [int(r) for r in rates.split()], "cp_extra": extra,
       "cookieproxy": rows(cpi), "floods": rows(res), "latency": rows(lat)}
if merge == "1" and os.path.exists(raw):
    old = json.load(open(raw))
    if old.get("format") == 2:
        ran = set(systems.split(","))
        ph = set(phases.split(","))
        keep = lambda r, phase: r["system"] not in ran or phase not in ph
        doc["floods"] = [r for r in old["floods"] if keep(r, "flood")] + doc["floods"]
        doc["latency"] = [r for r in old["latency"] if keep(r, "latency")] + doc["latency"]
        doc["cookieproxy"] = [r for r in old.get("cookieproxy", []) if r["system"] not in ran] + doc["cookieproxy"]
        doc["run_id"] = f'{old.get("run_id")} + {run_id}'
json.dump(doc, open(raw, "w"), indent=1)
EOF
$PY "$BENCH/report.py" --raw "$RAW" --md "$OUT_DIR/results-$SUFFIX.md" --png "$OUT_DIR/flood-$SUFFIX.png"
log "wrote $OUT_DIR/results-$SUFFIX.md, $RAW, $OUT_DIR/flood-$SUFFIX.png"
