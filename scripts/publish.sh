#!/usr/bin/env bash
# Build the release binaries: one self-contained single-file `cookieproxy` per runtime, in out/<rid>/, and check
# each with file(1) (ELF or Mach-O, the right CPU) plus, for macOS, that the executable carries a code signature
# (Apple silicon kills an unsigned arm64 binary; the SDK signs it ad hoc, even when built on Linux).
#
#   scripts/publish.sh                 all four: linux-x64 linux-arm64 osx-arm64 osx-x64
#   scripts/publish.sh osx-arm64 ...   only those
#
# The last line is "N passed, N failed" over the binaries built and checked. Needs the runtime packs of each
# RID from NuGet (restored on first use). No root needed.
set -uo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$CP_ROOT" || exit 1

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

all_rids=(linux-x64 linux-arm64 osx-arm64 osx-x64)
if (($# > 0)); then
  rids=("$@")
else
  rids=("${all_rids[@]}")
fi

# What `file -b` must say for each RID (a prefix of its first fields).
expected_file()
{
  case "$1" in
    linux-x64) printf 'ELF 64-bit LSB pie executable, x86-64' ;;
    linux-arm64) printf 'ELF 64-bit LSB pie executable, ARM aarch64' ;;
    osx-arm64) printf 'Mach-O 64-bit arm64 executable' ;;
    osx-x64) printf 'Mach-O 64-bit x86_64 executable' ;;
    *) return 1 ;;
  esac
}

# has_code_signature FILE: the Mach-O executable has an LC_CODE_SIGNATURE (0x1d) load command.
has_code_signature()
{
  python3 - "$1" <<'PY'
import struct, sys
with open(sys.argv[1], 'rb') as f:
    header = f.read(32)
    magic, cputype, _, _, ncmds, _, _, _ = struct.unpack('<IiiIIIII', header)
    if magic != 0xfeedfacf:
        sys.exit(2)
    for _ in range(ncmds):
        cmd, size = struct.unpack('<II', f.read(8))
        if cmd == 0x1d:
            sys.exit(0)
        f.seek(size - 8, 1)
sys.exit(1)
PY
}

if ! cp_have file; then
  cp_die "file(1) is missing: install the 'file' package (scripts/install-deps.sh does)"
fi

passed=0
failed=0
for rid in "${rids[@]}"; do
  if ! want="$(expected_file "$rid")"; then
    cp_log "$rid: not a runtime this script builds (${all_rids[*]})"
    failed=$((failed + 1))
    continue
  fi
  dir="out/$rid"
  rm -rf "$dir"
  cp_log "publishing src/CookieProxy for $rid -> $dir/"
  if ! dotnet publish src/CookieProxy -c Release -r "$rid" --self-contained \
    -p:PublishSingleFile=true -o "$dir" -nologo -v quiet; then
    cp_log "$rid: dotnet publish failed"
    failed=$((failed + 1))
    continue
  fi
  got="$(file -b "$dir/cookieproxy")"
  if [[ "$got" != "$want"* ]]; then
    cp_log "$rid: FAIL: file says '$got', expected '$want...'"
    failed=$((failed + 1))
    continue
  fi
  if [[ "$rid" == osx-* ]] && ! has_code_signature "$dir/cookieproxy"; then
    cp_log "$rid: FAIL: the Mach-O executable has no code signature (LC_CODE_SIGNATURE)"
    failed=$((failed + 1))
    continue
  fi
  size="$(du -h "$dir/cookieproxy" | cut -f1)"
  cp_log "$rid: ok: $got ($size)"
  passed=$((passed + 1))
done

echo "$passed passed, $failed failed"
((failed == 0))
