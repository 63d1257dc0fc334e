#!/usr/bin/env bash
# scripts/fuzz.sh N [SEED]: the fuzz targets of the unit suite (tests/CookieProxy.Tests/Fuzz, Category=Fuzz) at
# scale N: N million mutated frames through the responder and N x 100,000 segment sequences through endpoints.
# CI runs scale 1 with the fixed seed as part of the unit suite; this script draws a fresh seed (or takes SEED) and
# prints it, so a failure can be replayed: CP_FUZZ_SEED=SEED CP_FUZZ_SCALE=N. A failing endpoint sequence is printed
# shrunk ("config N: Op(...) ..."): add that line to Fuzz/Regressions/endpoint-sequences.txt; a failing frame goes
# to Fuzz/Regressions/*.hex.
set -euo pipefail
cd "$(dirname "$0")/.."

scale="${1:-1}"
seed="${2:-$(( (RANDOM << 15) | RANDOM ))}"
if ! [[ "$scale" =~ ^[0-9]+([.][0-9]+)?$ ]]; then
  echo "usage: scripts/fuzz.sh N [SEED]  (N = millions of frames; N x 100k endpoint sequences)" >&2
  exit 2
fi

echo "fuzz: scale $scale, seed $seed (replay: CP_FUZZ_SEED=$seed CP_FUZZ_SCALE=$scale)"
dotnet build tests/CookieProxy.Tests -v q -nologo >/dev/null
start=$(date +%s)
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
set +e
CP_FUZZ_SCALE="$scale" CP_FUZZ_SEED="$seed" dotnet test tests/CookieProxy.Tests --no-build \
  --filter "Category=Fuzz|FullyQualifiedName~FuzzRegressionTests" --logger "console;verbosity=detailed" \
  --blame-hang-timeout 60m >"$log" 2>&1
rc=$?
set -e
grep -E "fuzz target|Passed!|Failed|Error Message|config [0-9]+:|Set seed" "$log" || true
echo "fuzz: scale $scale, seed $seed, $(( $(date +%s) - start )) s, exit $rc"
exit "$rc"
