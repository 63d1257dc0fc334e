#!/usr/bin/env bash
# Install what the lab, the demo and the end-to-end tests need on a fresh Debian machine (as root).
# Idempotent and fast when everything is present: `dpkg -s` decides, apt-get runs only for what is
# missing. Apache is installed for its binary and modules only: the lab starts its own instance inside
# the cp-srv namespace, so the distribution's service must not hold port 80 of the root namespace.
set -euo pipefail
# shellcheck source=scripts/lib/common.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib/common.sh"

cp_require_root

packages=(
  apache2 hping3 nftables iptables curl iproute2 ethtool wrk tcpdump iputils-ping procps psmisc
  netsniff-ng haproxy python3 ca-certificates coreutils
  # The XDP programs (native/*.c) and the lab's VLAN tagger (scripts/lab-vlan-tag.bpf.c): clang for the BPF
  # target at build time, the libbpf and kernel UAPI headers, and libbpf1 (libbpf.so.1), which loads ours at run time.
  clang llvm libbpf-dev libbpf1 linux-libc-dev
  # ops e2e: tshark reads the sampled pcap, promtool (package prometheus) checks /metrics, tmux runs `top`
  tshark prometheus tmux
)

# Debian 13 renamed the runtime library (64-bit time_t transition); take whichever this release has.
pcap_runtime=libpcap0.8
if ! dpkg -s libpcap0.8 >/dev/null 2>&1 && apt-cache show libpcap0.8t64 >/dev/null 2>&1; then
  pcap_runtime=libpcap0.8t64
fi
packages+=("$pcap_runtime" libpcap0.8-dev)
# scripts/publish.sh checks the binaries with file(1); scripts/package-deb.sh builds the man page with help2man
# and the .deb with dpkg-deb; its test verifies the unit (systemd-analyze) and the capabilities (capsh, setpriv).
packages+=(file help2man dpkg-dev systemd libcap2-bin util-linux)

installed()
{
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" == "install ok installed" ]]
}

missing=()
for p in "${packages[@]}"; do
  installed "$p" || missing+=("$p")
done

if ((${#missing[@]} > 0)); then
  cp_log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Keep maintainer scripts from starting apache2/haproxy as system services (invoke-rc.d honours
  # policy-rc.d exit code 101 = "action forbidden"). Leave an existing policy file alone.
  policy=/usr/sbin/policy-rc.d
  own_policy=0
  if [[ ! -e "$policy" ]]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    own_policy=1
  fi
  restore_policy()
  {
    if ((own_policy)); then
      rm -f "$policy"
    fi
  }
  trap restore_policy EXIT
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${missing[@]}" >/dev/null
  restore_policy
  trap - EXIT
else
  cp_log "all packages present"
fi

# Make sure no distribution apache2/haproxy/prometheus service listens in the root namespace (prometheus is
# installed for promtool only).
for svc in apache2 haproxy prometheus; do
  if [[ -d /run/systemd/system ]]; then
    if systemctl is-enabled --quiet "$svc" 2>/dev/null || systemctl is-active --quiet "$svc" 2>/dev/null; then
      cp_log "stopping and disabling the $svc system service"
      systemctl disable --now "$svc" >/dev/null 2>&1 || true
    fi
  elif [[ -x "/etc/init.d/$svc" ]]; then
    # No systemd (containers): stop it only if its own pid file says it runs.
    pidfile="/var/run/$svc/$svc.pid"
    [[ "$svc" == haproxy ]] && pidfile=/var/run/haproxy.pid
    if [[ -s "$pidfile" ]] && kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      cp_log "stopping the $svc system service"
      "/etc/init.d/$svc" stop >/dev/null 2>&1 || true
    fi
  fi
done

for tool in ip nft tc ethtool apache2 curl hping3 tcpdump wrk python3 ping clang tshark promtool tmux; do
  cp_have "$tool" || cp_die "$tool still missing after install"
done
[[ -x /usr/bin/python3 ]] || cp_die "/usr/bin/python3 missing (the lab's upload CGI uses it)"
[[ -f /usr/include/bpf/bpf_helpers.h ]] || cp_die "/usr/include/bpf/bpf_helpers.h missing (libbpf-dev: the XDP programs need it)"
cp_log "dependencies ok"
