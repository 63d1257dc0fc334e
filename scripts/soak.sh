#!/usr/bin/env bash
# scripts/soak.sh MINUTES: the soak of issue 12.6. Brings the lab up (scripts/lab.sh), runs the published default
# binary (`lab.sh proxy-start`: run --interface cp-s0 --listen 198.18.0.1:80 --backend 127.0.0.1:8080 and nothing
# else of ours), and for MINUTES drives it in cycles of SOAK_CYCLE seconds (default 60):
#   - all the time: two curl loops downloading 1k/1m/10m files from rotating client addresses (198.18.1.x), each
#     checked against SHA256SUMS; every curl must succeed;
#   - each cycle: a wrk burst (-t1 -c16, 5 s), a bounded hping3 flood (SYN flood one cycle, forged ACKs the
#     next; 20,000 packets, at most 10 s), and impairment (`lab.sh impair-on`: loss, duplicates, reordering) for
#     a quarter of the cycle.
# Every SOAK_SAMPLE seconds (default 10) it samples the proxy's RSS and fd count (/proc) and, from
# `cookieproxy stats --json`, flows_active and the ring buffers (in use, pooled, created). Warm-up is the first
# cycle (one wrk burst, one flood and one impairment window; or the first third of the run if that is shorter):
# the RSS sampled at its end is the reference. After the
# traffic stops it waits (up to 60 s) for the flows to close, then asserts:
#   RSS grew at most 10% over the warm-up value (giving memory back is fine), fds at the baseline taken before the
#   first request (+2 for a control-socket connection in flight), flows_active and ring_buffers_in_use at their
#   baseline (0), no curl failure, the proxy alive.
# Prints the sample table and "N passed, M failed" as its last line; exits non-zero on any failure. Cleans up
# (traffic, impairment, lab) on every exit. Environment: CP_LAB_ID (lab names), COOKIEPROXY_BIN (default
# out/cookieproxy), SOAK_CYCLE, SOAK_SAMPLE, SOAK_TABLE=FILE (also write the table there, as Markdown).
set -uo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$CP_ROOT" || exit 1

minutes="${1:-}"
if ! [[ "$minutes" =~ ^[0-9]+$ ]] || ((minutes < 1 || minutes > 600)); then
  echo "usage: scripts/soak.sh MINUTES  (1..600)" >&2
  exit 2
fi
cycle="${SOAK_CYCLE:-60}"
sample_every="${SOAK_SAMPLE:-10}"
for v in cycle sample_every; do
  if ! [[ "${!v}" =~ ^[0-9]+$ ]] || ((${!v} < 4)); then
    echo "error: SOAK_${v^^} must be a whole number of seconds >= 4" >&2
    exit 2
  fi
done
cp_require_root
bin="$(cp_binary)"
[[ -x "$bin" ]] || cp_die "no binary at $bin (publish it: source scripts/lib/common.sh && cp_publish)"

lab=(bash "$CP_ROOT/scripts/lab.sh")
run_s=$((minutes * 60))
warmup_s=$((cycle < run_s / 3 ? cycle : run_s / 3))
workdir="$(mktemp -d /tmp/cookieproxy-soak.XXXXXX)"
samples="$workdir/samples.tsv"
curl_log="$workdir/curl.log"
workers=()
proxy_pid=""
keep_workdir=0

# Ends the background traffic loops and forgets them.
stop_workers()
{
  local pid
  for pid in "${workers[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${workers[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
  workers=()
}

cleanup()
{
  stop_workers
  "${lab[@]}" impair-off >/dev/null 2>&1 || true
  "${lab[@]}" down >/dev/null 2>&1 || true
  if ((keep_workdir)); then
    cp_log "soak: logs kept in $workdir (curl, wrk, hping3, lab, samples)"
  else
    rm -rf "$workdir"
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

in_cli()
{
  ip netns exec "$CP_NS_CLI" "$@"
}

# One JSON document of counters from the control socket (`cookieproxy stats --json`); on this shared 2-core machine
# the client can take seconds to start, so when it fails the stats file the lab's proxy rewrites every second (the
# same document, at most a second old) stands in, and the sample is marked with a '*'.
stats_source=""
stats_json()
{
  stats_source=""
  if ip netns exec "$CP_NS_SRV" timeout 10 "$bin" stats --json --control-socket "$CP_LABDIR/control.sock" 2>/dev/null; then
    return 0
  fi
  stats_source="*"
  cat "$CP_LABDIR/stats.json" 2>/dev/null
}

# sample LABEL: appends "t label rss_kib fds flows in_use pooled created" to the samples.
sample()
{
  local label="$1" rss fds json vals
  rss="$(awk '/^VmRSS:/ { print $2 }' "/proc/$proxy_pid/status" 2>/dev/null)"
  fds="$(find "/proc/$proxy_pid/fd" -mindepth 1 -maxdepth 1 2>/dev/null | wc -l)"
  stats_json >"$workdir/sample.json"
  json="$(cat "$workdir/sample.json")"
  vals="$(python3 -c '
import json, sys
try:
    d = json.loads(sys.stdin.read())
except ValueError:
    print("? ? ? ?")
    sys.exit(0)
def find(o, k):
    if isinstance(o, dict):
        if k in o and not isinstance(o[k], (dict, list)):
            return o[k]
        for v in o.values():
            r = find(v, k)
            if r is not None:
                return r
    return None
print(" ".join(str(find(d, k)) if find(d, k) is not None else "?" for k in
    ("flows_active", "ring_buffers_in_use", "ring_buffers_pooled", "ring_buffers_created")))
' <<<"$json")"
  printf '%s\t%s\t%s\t%s\t%s\n' "$((SECONDS - t0))" "$label$stats_source" "${rss:-?}" "$fds" "${vals// /$'\t'}" >>"$samples"
}

# run_child CMD...: runs CMD in the background and waits for it, so a TERM (trap below) can stop it at once.
child=""
run_child()
{
  "$@" &
  child=$!
  wait "$child"
}

stop_child()
{
  [[ -n "$child" ]] && kill -TERM "$child" 2>/dev/null
  exit 0
}

# curl_loop ID: downloads until killed, one line per request in the curl log ("ok"/"FAIL").
curl_loop()
{
  local id="$1" n=0 names=(1m.bin 1k.bin 1m.bin 10m.bin index.html 1m.bin) out name src rc got
  out="$workdir/curl-$id.out"
  trap stop_child TERM
  while true; do
    name="${names[$(((n + id) % ${#names[@]}))]}"
    src="$CP_EXTRA_NET.$(((n * 7 + id * 101) % 200 + 1))"
    n=$((n + 1))
    rm -f "$out"
    rc=0
    run_child ip netns exec "$CP_NS_CLI" curl -fsS --max-time 120 --interface "$src" -o "$out" "http://$CP_IP_SRV:$CP_PROTECTED_PORT/$name" \
      2>>"$workdir/curl-$id.err" || rc=$?
    got="$(sha256sum "$out" 2>/dev/null | awk '{ print $1 }')"
    if ((rc == 0)) && [[ "$got" == "${sha[$name]}" ]]; then
      echo "$((SECONDS - t0)) ok $id $name $src" >>"$curl_log"
    else
      echo "$((SECONDS - t0)) FAIL $id $name $src rc=$rc sha=${got:-none} size=$(stat -c %s "$out" 2>/dev/null)" >>"$curl_log"
      mv -f "$out" "$workdir/failed-$id-$n-$name" 2>/dev/null || true
    fi
  done
}

# One cycle's extras, in the background: wrk burst, flood, impairment window.
cycle_extras()
{
  local k="$1" third=$((cycle / 4))
  trap stop_child TERM
  run_child ip netns exec "$CP_NS_CLI" timeout 15 wrk -t1 -c16 -d5s "http://$CP_IP_SRV:$CP_PROTECTED_PORT/index.html" \
    >"$workdir/wrk-$k.log" 2>&1 || echo "$((SECONDS - t0)) wrk cycle $k exit $?" >>"$workdir/events.log"
  run_child sleep "$third"
  local flood=(-S)
  ((k % 2)) && flood=(-A)
  run_child ip netns exec "$CP_NS_CLI" timeout 10 hping3 "${flood[@]}" -q -p "$CP_PROTECTED_PORT" -i u400 -c 20000 "$CP_IP_SRV" \
    >"$workdir/hping-$k.log" 2>&1 || true
  echo "$((SECONDS - t0)) flood ${flood[*]} cycle $k done" >>"$workdir/events.log"
  "${lab[@]}" impair-on >>"$workdir/events.log" 2>&1 || echo "impair-on failed" >>"$workdir/events.log"
  run_child sleep "$third"
  "${lab[@]}" impair-off >>"$workdir/events.log" 2>&1 || true
  echo "$((SECONDS - t0)) impairment cycle $k off" >>"$workdir/events.log"
}

cp_log "soak: $minutes min, cycle $cycle s, sample every $sample_every s, warm-up $warmup_s s; binary $bin"
"${lab[@]}" up >"$workdir/lab-up.log" 2>&1 || { cat "$workdir/lab-up.log" >&2; cp_die "lab.sh up failed"; }
proxy_pid="$("${lab[@]}" proxy-start 2>>"$workdir/lab-up.log" | tail -1)"
cp_pid_alive "$proxy_pid" || { cat "$workdir/lab-up.log" >&2; cp_die "the proxy did not start"; }
declare -A sha
while read -r sum name; do
  sha[$name]="$sum"
done <"$CP_CACHEDIR/SHA256SUMS"

t0=$SECONDS
printf 't_s\tphase\trss_kib\tfds\tflows_active\trings_in_use\trings_pooled\trings_created\n' >"$samples"
sleep 2
sample baseline
read -r _ _ _ base_fds base_flows base_inuse _ _ < <(tail -1 "$samples")

curl_loop 1 &
workers+=($!)
curl_loop 2 &
workers+=($!)
next_cycle=0
k=0
next_sample=$sample_every
warm_rss=""
while ((SECONDS - t0 < run_s)); do
  now=$((SECONDS - t0))
  if ((now >= next_cycle)); then
    cycle_extras "$k" &
    workers+=($!)
    k=$((k + 1))
    next_cycle=$((next_cycle + cycle))
  fi
  if ((now >= next_sample)); then
    if [[ -z "$warm_rss" ]] && ((now >= warmup_s)); then
      sample warm-up
      warm_rss="$(tail -1 "$samples" | cut -f3)"
    else
      sample load
    fi
    next_sample=$((next_sample + sample_every))
    cp_pid_alive "$proxy_pid" || break
  fi
  sleep 1
done

cp_log "soak: traffic stops; waiting for the flows to close"
# Impairment off first: a client's RST or FIN lost to it would leave its flow waiting for the idle timeout.
"${lab[@]}" impair-off >/dev/null 2>&1 || true
sleep 2
stop_workers
# A curl killed mid-transfer is not a failure of the proxy; its line is never written.
"${lab[@]}" impair-off >/dev/null 2>&1 || true    # again: a cycle's worker may have turned it on before it ended
settle_end=$((SECONDS + 60))
while ((SECONDS < settle_end)); do
  sleep 5
  sample settle
  read -r _ _ _ fds flows inuse _ _ < <(tail -1 "$samples")
  if [[ "$flows" == "$base_flows" && "$inuse" == "$base_inuse" ]] && ((fds <= base_fds + 2)); then
    break
  fi
  cp_pid_alive "$proxy_pid" || break
done
sample final

# ---------------------------------------------------------------- table and checks
read -r _ _ final_rss final_fds final_flows final_inuse final_pooled final_created < <(tail -1 "$samples")
ok_curls="$(grep -c ' ok ' "$curl_log" 2>/dev/null)" || true
failed_curls="$(grep -c ' FAIL ' "$curl_log" 2>/dev/null)" || true
wrk_reqs="$(cat "$workdir"/wrk-*.log 2>/dev/null | awk '/requests in/ { n += $1 } END { print n + 0 }')"
max_rss="$(awk -F'\t' 'NR > 1 && $3 ~ /^[0-9]+$/ && $3 > m { m = $3 } END { print m + 0 }' "$samples")"

echo
column -t -s $'\t' "$samples"
echo
if [[ -n "${SOAK_TABLE:-}" ]]; then
  {
    echo "| t (s) | phase | RSS (MiB) | fds | flows_active | rings in use | rings pooled | rings created |"
    echo "|---:|---|---:|---:|---:|---:|---:|---:|"
    awk -F'\t' 'NR > 1 { printf "| %s | %s | %s | %s | %s | %s | %s | %s |\n", $1, $2, ($3 ~ /^[0-9]+$/ ? sprintf("%.1f", $3 / 1024) : $3), $4, $5, $6, $7, $8 }' "$samples"
  } >"$SOAK_TABLE"
fi
echo "curl: $ok_curls ok, $failed_curls failed; wrk: $wrk_reqs requests in $k bursts; floods: $k (SYN and forged ACK, 20k packets each)"
grep ' FAIL ' "$curl_log" 2>/dev/null | head -5
grep -h -v '^$' "$workdir"/curl-*.err 2>/dev/null | sort | uniq -c | head -5

passed=0
failed=0
check()
{
  local what="$1"
  shift
  if "$@"; then
    echo "PASS $what"
    passed=$((passed + 1))
  else
    echo "FAIL $what"
    failed=$((failed + 1))
  fi
}
rss_ok()
{
  [[ "$warm_rss" =~ ^[0-9]+$ && "$final_rss" =~ ^[0-9]+$ ]] && ((final_rss * 100 <= warm_rss * 110))
}
rss_pct="?"
[[ "$warm_rss" =~ ^[0-9]+$ && "$final_rss" =~ ^[0-9]+$ ]] && rss_pct="$(((final_rss - warm_rss) * 100 / warm_rss))"
check "proxy alive after $minutes min" cp_pid_alive "$proxy_pid"
check "RSS ${final_rss:-?} KiB within +10% of the warm-up's ${warm_rss:-?} KiB (${rss_pct}%; peak $max_rss KiB)" rss_ok
check "fds $final_fds back at the baseline $base_fds" test "$final_fds" -le "$((base_fds + 2))"
check "flows_active $final_flows back at the baseline $base_flows" test "$final_flows" == "$base_flows"
check "ring_buffers_in_use $final_inuse back at the baseline $base_inuse (pooled $final_pooled, created $final_created)" \
  test "$final_inuse" == "$base_inuse"
check "no curl failure ($ok_curls downloads, sha256 checked)" test "${failed_curls:-0}" -eq 0 -a "${ok_curls:-0}" -gt 0
((failed == 0)) || keep_workdir=1
echo "$passed passed, $failed failed"
((failed == 0))
