#!/usr/bin/env bash
# Run every test: unit tests (twice: normally, and the SipHash subset with hardware intrinsics off so
# the scalar path runs), publish the binary, then the netns end-to-end tests, a 3-minute soak and the Debian
# package. Needs root (lab).
# The last line is always "N passed, N failed", summed over all `dotnet test` runs.
set -uo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$CP_ROOT" || exit 1

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

results="$(mktemp -d /tmp/cookieproxy-test.XXXXXX)"
passed=0
failed=0
broken=0

cleanup()
{
  # The e2e fixture tears the lab down itself; this catches a run that was killed.
  if [[ "$(id -u)" == 0 ]]; then
    bash scripts/lab.sh down >/dev/null 2>&1 || true
  fi
}
trap cleanup EXIT

# run_tests NAME [VAR=VALUE...] -- DOTNET-TEST-ARGS...: one `dotnet test`, counted from its TRX file.
run_tests()
{
  local name="$1"
  shift
  local envs=()
  while [[ "$1" != -- ]]; do
    envs+=("$1")
    shift
  done
  shift
  cp_log "dotnet test ($name): $*"
  local rc=0
  env "${envs[@]}" dotnet test "$@" --logger "trx;LogFileName=$name.trx" --logger "console;verbosity=normal" \
    --results-directory "$results" || rc=$?
  local trx="$results/$name.trx" p=0 f=0
  if [[ -f "$trx" ]]; then
    local counters
    counters="$(grep -o '<Counters [^>]*>' "$trx" | head -1)"
    p="$(sed -n 's/.* passed="\([0-9]*\)".*/\1/p' <<<"$counters")"
    f="$(sed -n 's/.* failed="\([0-9]*\)".*/\1/p' <<<"$counters")"
    p="${p:-0}"
    f="${f:-0}"
  fi
  if ((rc != 0 && f == 0)); then
    # Build failure, crash or hang: no failing test to count, but the run failed.
    cp_log "dotnet test ($name) exited with $rc without a failed test in its results; counting 1 failure"
    f=1
  fi
  cp_log "dotnet test ($name): $p passed, $f failed"
  passed=$((passed + p))
  failed=$((failed + f))
}

if ! bash scripts/install-deps.sh; then
  cp_log "installing dependencies failed"
  broken=1
fi

run_tests unit -- tests/CookieProxy.Tests
run_tests unit-scalar DOTNET_EnableHWIntrinsic=0 -- tests/CookieProxy.Tests --no-build --filter "FullyQualifiedName~Crypto|FullyQualifiedName~SipHash"

if ! cp_publish; then
  cp_log "publishing the binary failed (the end-to-end tests will report it)"
  broken=1
fi

# The release binaries for every platform (linux-x64/arm64, osx-arm64/x64), each checked with file(1); its
# "N passed, N failed" line is added to the totals.
cp_log "scripts/publish.sh: release binaries"
publish_summary="$(bash scripts/publish.sh 2>&1 | tee /dev/stderr | tail -1)"
if [[ "$publish_summary" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
  passed=$((passed + BASH_REMATCH[1]))
  failed=$((failed + BASH_REMATCH[2]))
else
  cp_log "scripts/publish.sh ended without its summary line; counting 1 failure"
  failed=$((failed + 1))
fi

# --blame-hang-timeout turns a hung test into a failure instead of a stuck CI job.
# COOKIEPROXY_E2E_FILTER narrows the end-to-end run, e.g. "Tier!=splice" or "Tier=handshake".
e2e_args=(tests/CookieProxy.EndToEnd --blame-hang-timeout 10m)
if [[ -n "${COOKIEPROXY_E2E_FILTER:-}" ]]; then
  e2e_args+=(--filter "$COOKIEPROXY_E2E_FILTER")
fi
run_tests e2e -- "${e2e_args[@]}"

# The soak (issue 12.6): scripts/soak.sh brings up its own lab after the end-to-end tests have torn theirs down,
# runs the default binary for COOKIEPROXY_SOAK_MINUTES (default 3; 0 skips it) under mixed traffic, floods and
# impairment, and asserts RSS, fds, flows and ring buffers back at baseline. Its "N passed, N failed" line joins
# the totals.
soak_minutes="${COOKIEPROXY_SOAK_MINUTES:-3}"
if [[ "$soak_minutes" == 0 ]]; then
  cp_log "scripts/soak.sh skipped (COOKIEPROXY_SOAK_MINUTES=0)"
else
  cp_log "scripts/soak.sh $soak_minutes"
  soak_summary="$(bash scripts/soak.sh "$soak_minutes" 2>&1 | tee /dev/stderr | tail -1)"
  if [[ "$soak_summary" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
    passed=$((passed + BASH_REMATCH[1]))
    failed=$((failed + BASH_REMATCH[2]))
  else
    cp_log "scripts/soak.sh ended without its summary line; counting 1 failure"
    failed=$((failed + 1))
  fi
fi

# The Debian package: dpkg -i, systemd-analyze verify, the daemon as its user with exactly the unit's
# capabilities protecting the lab's port, dpkg --purge. Its "N passed, N failed" line joins the totals.
cp_log "scripts/package-deb.sh --test"
package_summary="$(bash scripts/package-deb.sh --test 2>&1 | tee /dev/stderr | tail -1)"
if [[ "$package_summary" =~ ^([0-9]+)\ passed,\ ([0-9]+)\ failed$ ]]; then
  passed=$((passed + BASH_REMATCH[1]))
  failed=$((failed + BASH_REMATCH[2]))
else
  cp_log "scripts/package-deb.sh --test ended without its summary line; counting 1 failure"
  failed=$((failed + 1))
fi

echo "test results (trx): $results"
echo "$passed passed, $failed failed"
if ((failed > 0 || broken)); then
  exit 1
fi
