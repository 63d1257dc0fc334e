#!/usr/bin/env bash
# Build the Debian package: out/cookieproxy_<version>_<arch>.deb with
#   /usr/bin/cookieproxy                       the self-contained binary (scripts/publish.sh)
#   /lib/systemd/system/cookieproxy.service    packaging/cookieproxy.service
#   /etc/cookieproxy/cookieproxy.yaml          packaging/cookieproxy.yaml (a conffile)
#   /usr/share/man/man1/cookieproxy.1.gz       made from --help with help2man
#   postinst: the system user and group cookieproxy; postrm purge: removes them.
#
#   scripts/package-deb.sh [amd64|arm64]       default: this machine's architecture
#   scripts/package-deb.sh --test              build for this machine, then install it with dpkg -i, check the
#                                              unit with systemd-analyze verify, run the daemon as the cookieproxy
#                                              user with exactly the unit's capabilities (setpriv) protecting the
#                                              lab's port, and remove the package again. Needs root; ends with
#                                              "N passed, N failed".
set -uo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"
cd "$CP_ROOT" || exit 1

test_mode=0
arch="$(dpkg --print-architecture 2>/dev/null || echo amd64)"
case "${1:-}" in
  --test) test_mode=1 ;;
  amd64 | arm64) arch="$1" ;;
  "") ;;
  *) cp_die "usage: package-deb.sh [amd64|arm64] | --test" ;;
esac
case "$arch" in
  amd64) rid=linux-x64 ;;
  arm64) rid=linux-arm64 ;;
  *) cp_die "no .NET runtime for Debian architecture '$arch'" ;;
esac
host_rid=linux-x64
[[ "$(uname -m)" == aarch64 ]] && host_rid=linux-arm64

for tool in dpkg-deb help2man gzip; do
  cp_have "$tool" || cp_die "$tool is missing (scripts/install-deps.sh installs it)"
done

# The binary to package, and one this machine can run for --help/--version (the same text on every RID).
for r in "$rid" "$host_rid"; do
  if [[ ! -x "out/$r/cookieproxy" ]]; then
    bash scripts/publish.sh "$r" >&2 || cp_die "publishing $r failed"
  fi
done
runnable="out/$host_rid/cookieproxy"

# "cookieproxy 1.0.0+abc1234" -> "1.0.0+abc1234"; Debian versions allow [0-9A-Za-z.+~-].
version="$("$runnable" --version | awk '{print $2}' | tr -c '0-9A-Za-z.+~\n-' '~')"
[[ "$version" =~ ^[0-9] ]] || version="0~$version"

stage="$(mktemp -d /tmp/cookieproxy-deb.XXXXXX)"
trap 'rm -rf "$stage"' EXIT
install -D -m 0755 "out/$rid/cookieproxy" "$stage/usr/bin/cookieproxy"
install -D -m 0644 packaging/cookieproxy.service "$stage/lib/systemd/system/cookieproxy.service"
install -D -m 0640 packaging/cookieproxy.yaml "$stage/etc/cookieproxy/cookieproxy.yaml"
install -d -m 0755 "$stage/usr/share/man/man1" "$stage/usr/share/doc/cookieproxy"
help2man --no-info --no-discard-stderr --section=1 --name="user-space SYN-cookie TCP proxy" \
  --version-string="$version" "$runnable" | gzip -9n >"$stage/usr/share/man/man1/cookieproxy.1.gz" ||
  cp_die "help2man failed"
install -m 0644 LICENSE "$stage/usr/share/doc/cookieproxy/copyright"

mkdir -p "$stage/DEBIAN"
installed_kb="$(du -sk --exclude=DEBIAN "$stage" | cut -f1)"
cat >"$stage/DEBIAN/control" <<EOF
Package: cookieproxy
Version: $version
Architecture: $arch
Maintainer: CookieProxy maintainers <cookieproxy@example.invalid>
Section: net
Priority: optional
Installed-Size: $installed_kb
Depends: libpcap0.8 | libpcap0.8t64, adduser
Recommends: nftables
Description: user-space SYN-cookie TCP proxy
 Answers SYNs to the protected endpoints with SipHash cookie SYN+ACKs, validates the
 returning ACK and splices each validated connection to its backend, so a SYN flood
 never reaches the server's own half-open queue.
EOF
printf '/etc/cookieproxy/cookieproxy.yaml\n' >"$stage/DEBIAN/conffiles"
cat >"$stage/DEBIAN/postinst" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = configure ]; then
  if ! getent passwd cookieproxy >/dev/null; then
    adduser --system --group --no-create-home --home /nonexistent --quiet cookieproxy
  fi
  chgrp cookieproxy /etc/cookieproxy/cookieproxy.yaml
  if [ -d /run/systemd/system ]; then
    systemctl daemon-reload >/dev/null 2>&1 || true
  fi
fi
exit 0
EOF
cat >"$stage/DEBIAN/prerm" <<'EOF'
#!/bin/sh
set -e
if [ -d /run/systemd/system ] && [ "$1" = remove ]; then
  systemctl stop cookieproxy.service >/dev/null 2>&1 || true
fi
exit 0
EOF
cat >"$stage/DEBIAN/postrm" <<'EOF'
#!/bin/sh
set -e
if [ "$1" = purge ] && getent passwd cookieproxy >/dev/null; then
  deluser --system --quiet cookieproxy >/dev/null 2>&1 || true
fi
if [ -d /run/systemd/system ]; then
  systemctl daemon-reload >/dev/null 2>&1 || true
fi
exit 0
EOF
chmod 0755 "$stage/DEBIAN/postinst" "$stage/DEBIAN/prerm" "$stage/DEBIAN/postrm"

deb="out/cookieproxy_${version}_${arch}.deb"
dpkg-deb --root-owner-group -Zxz --build "$stage" "$deb" >/dev/null || cp_die "dpkg-deb failed"
cp_log "built $deb ($(du -h "$deb" | cut -f1))"
if ((!test_mode)); then
  exit 0
fi

# --- the package test --------------------------------------------------------------------------------------
cp_require_root
passed=0
failed=0
check()
{
  local what="$1"
  shift
  if "$@"; then
    cp_log "ok: $what"
    passed=$((passed + 1))
  else
    cp_log "FAIL: $what"
    failed=$((failed + 1))
  fi
}
if dpkg -s cookieproxy >/dev/null 2>&1; then
  cp_die "a cookieproxy package is installed already; this test would replace and then remove it"
fi
proxy_pid=""
cleanup_test()
{
  [[ -n "$proxy_pid" ]] && cp_stop_pid "$proxy_pid" 5
  bash scripts/lab.sh down >/dev/null 2>&1 || true
  dpkg --purge cookieproxy >/dev/null 2>&1 || true
  rm -rf "$stage"
}
trap cleanup_test EXIT

check "dpkg -i installs the package" dpkg -i "$deb"
check "the binary runs" bash -c '/usr/bin/cookieproxy --version | grep -q "^cookieproxy "'
check "the man page is there" test -s /usr/share/man/man1/cookieproxy.1.gz
check "the man page is made from --help (names the run command)" bash -c 'zcat /usr/share/man/man1/cookieproxy.1.gz | grep -q "run"'
check "the system user cookieproxy exists" getent passwd cookieproxy
check "the example config is a conffile, group cookieproxy" bash -c \
  '[[ "$(stat -c %G /etc/cookieproxy/cookieproxy.yaml)" == cookieproxy ]] && dpkg-query -W -f="\${Conffiles}" cookieproxy | grep -q cookieproxy.yaml'
verify_out="$(systemd-analyze verify /lib/systemd/system/cookieproxy.service 2>&1)"
check "systemd-analyze verify accepts the unit${verify_out:+ ($verify_out)}" test -z "$verify_out"

# The unit's capabilities, read from the installed unit so the test follows it.
caps="$(sed -n 's/^AmbientCapabilities=//p' /lib/systemd/system/cookieproxy.service)"
bounding="$(sed -n 's/^CapabilityBoundingSet=//p' /lib/systemd/system/cookieproxy.service)"
check "AmbientCapabilities and CapabilityBoundingSet are the same set" test "$caps" == "$bounding"
setpriv_caps="$(tr ' ' '\n' <<<"$caps" | sed 's/^CAP_//' | tr 'A-Z' 'a-z' | sed 's/^/+/' | paste -sd,)"

# The daemon as the unprivileged user with exactly those capabilities, protecting the lab's port.
bash scripts/lab.sh up --no-ipv6 --no-vlan >/dev/null || cp_die "lab.sh up failed"
log="$(mktemp /tmp/cookieproxy-deb-run.XXXXXX)"
# What RuntimeDirectory=cookieproxy gives the unit: a run directory the user owns.
run_dir="$(mktemp -d /tmp/cookieproxy-deb-rundir.XXXXXX)"
chown cookieproxy:cookieproxy "$run_dir"
ip netns exec "$CP_NS_SRV" setpriv --reuid cookieproxy --regid cookieproxy --clear-groups \
  --inh-caps="-all,$setpriv_caps" --ambient-caps="$setpriv_caps" --bounding-set="-all,$setpriv_caps" \
  /usr/bin/cookieproxy run --interface "$CP_DEV_SRV" --listen "$CP_IP_SRV:$CP_PROTECTED_PORT" \
  --backend "127.0.0.1:$CP_BACKEND_PORT" --run-dir "$run_dir" --duration 60 >"$log" 2>&1 &
proxy_pid=$!
cp_wait_until 20 grep -q "capturing on" "$log"
check "the daemon starts as cookieproxy and opens the capture" grep -q "capturing on" "$log"
status="/proc/$proxy_pid/status"
want_eff="$(python3 - "$caps" <<'PY'
import sys
bits = {"CAP_NET_ADMIN": 12, "CAP_NET_RAW": 13, "CAP_PERFMON": 38, "CAP_BPF": 39}
print("%016x" % sum(1 << bits[c] for c in sys.argv[1].split()))
PY
)"
check "it runs as the cookieproxy user" bash -c "[[ \"\$(awk '/^Uid:/ {print \$2}' $status)\" == \"\$(id -u cookieproxy)\" ]]"
check "its effective capabilities are exactly the unit's ($want_eff)" bash -c "[[ \"\$(awk '/^CapEff:/ {print \$2}' $status)\" == $want_eff ]]"
check "its bounding set is exactly the unit's" bash -c "[[ \"\$(awk '/^CapBnd:/ {print \$2}' $status)\" == $want_eff ]]"
check "a client fetches through it (the port is protected by the unprivileged daemon)" \
  bash scripts/lab.sh exec-cli curl -sf -o /dev/null --max-time 5 "http://$CP_IP_SRV:$CP_PROTECTED_PORT/"
cp_stop_pid "$proxy_pid" 15
proxy_pid=""
cat "$log" >&2
rm -rf "$log" "$run_dir"

check "dpkg --purge removes the package" dpkg --purge cookieproxy
check "and its user" bash -c '! getent passwd cookieproxy'
check "and the binary" test ! -e /usr/bin/cookieproxy

echo "$passed passed, $failed failed"
((failed == 0))
