#!/usr/bin/env bash
# scripts/fuzz.sh N [SEED]: the fuzz targets of the unit suite (tests/CookieProxy.Tests/Fuzz, Category=Fuzz) at
# scale N: N million mutated frames through the responder, N x 100,000 segment sequences through endpoints, and
# N x 500,000 inputs each through the TCP option and PROXY header parsers.
# CI runs scale 1 with the fixed seed as part of the unit suite; this script draws a fresh seed (or takes SEED) and
# prints it, so a failure can be replayed: CP_FUZZ_SEED=SEED CP_FUZZ_SCALE=N. A failing endpoint sequence is printed
# shrunk ("config N: Op(...) ..."): add that line to Fuzz/Regressions/endpoint-sequences.txt; a failing frame goes
# to Fuzz/Regressions/*.hex.
# The tests are built in Release (the harness and the code under test optimised, as in production) and run as two
# processes side by side, one per core: the endpoint sequences in one, the frames, the parsers and the regressions
# in the other. FUZZ_JOBS=1 runs them one after the other instead.
set -euo pipefail
cd "$(dirname "$0")/.."

scale="${1:-1}"
seed="${2:-$(( (RANDOM << 15) | RANDOM ))}"
jobs="${FUZZ_JOBS:-2}"
if ! [[ "$scale" =~ ^[0-9]+([.][0-9]+)?$ && "$seed" =~ ^-?[0-9]+$ && "$jobs" =~ ^[12]$ ]]; then
  echo "usage: scripts/fuzz.sh N [SEED]  (N = millions of frames; N x 100k endpoint sequences; FUZZ_JOBS=1|2)" >&2
  exit 2
fi

echo "fuzz: scale $scale, seed $seed (replay: CP_FUZZ_SEED=$seed CP_FUZZ_SCALE=$scale)"
dotnet build tests/CookieProxy.Tests -c Release -v q -nologo >/dev/null
start=$(date +%s)
logs="$(mktemp -d)"
pids=()
cleanup()
{
  local pid
  for pid in "${pids[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  rm -rf "$logs"
}
trap cleanup EXIT

# part NAME FILTER: one dotnet test process over the targets FILTER selects; its exit code in $logs/NAME.rc.
part()
{
  local name="$1" filter="$2" rc=0
  CP_FUZZ_SCALE="$scale" CP_FUZZ_SEED="$seed" dotnet test tests/CookieProxy.Tests -c Release --no-build \
    --filter "$filter" --logger "console;verbosity=detailed" --blame-hang-timeout 90m >"$logs/$name.log" 2>&1 || rc=$?
  echo "$rc" >"$logs/$name.rc"
}

parts=(sequences frames)
filters=("FullyQualifiedName~EndpointFuzzTests"
  "FullyQualifiedName~ResponderFuzzTests|FullyQualifiedName~ParserFuzzTests|FullyQualifiedName~FuzzRegressionTests")
for i in "${!parts[@]}"; do
  if ((jobs == 2)); then
    part "${parts[i]}" "${filters[i]}" &
    pids+=($!)
  else
    part "${parts[i]}" "${filters[i]}"
  fi
done
for pid in "${pids[@]}"; do
  wait "$pid" || true
done
pids=()

rc=0
for name in "${parts[@]}"; do
  part_rc="$(cat "$logs/$name.rc" 2>/dev/null || echo 1)"
  echo "fuzz: part $name exit $part_rc"
  grep -E "fuzz target|Passed!|Failed|Error Message|config [0-9]+:|Set seed" "$logs/$name.log" || true
  ((part_rc == 0)) || rc=1
done
echo "fuzz: scale $scale, seed $seed, $(( $(date +%s) - start )) s, exit $rc"
exit "$rc"
