# Shared helpers for the CookieProxy scripts. Source it; it defines functions and constants only.
# shellcheck shell=bash disable=SC2034

# The repository root: scripts/lib/common.sh -> ../..
CP_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"

# Lab topology. CP_LAB_ID (letters, digits, '-') suffixes the namespace names and the run-time directory, so
# several checkouts can run their labs side by side on one machine; unset, the names are the plain ones.
CP_LAB_ID="${CP_LAB_ID:-}"
if [[ -n "$CP_LAB_ID" && ! "$CP_LAB_ID" =~ ^[A-Za-z0-9-]{1,12}$ ]]; then
  printf 'error: CP_LAB_ID must be 1-12 letters, digits or dashes\n' >&2
  exit 2
fi
CP_LAB_SUFFIX="${CP_LAB_ID:+-$CP_LAB_ID}"
CP_NS_SRV="cp-srv$CP_LAB_SUFFIX"
CP_NS_CLI="cp-cli$CP_LAB_SUFFIX"
CP_DEV_SRV=cp-s0
CP_DEV_CLI=cp-c0
CP_IP_SRV=198.18.0.1
CP_IP_CLI=198.18.0.2
CP_PREFIX_LEN=24
CP_EXTRA_NET=198.18.1 # 198.18.1.1 .. 198.18.1.254 live on cp-c0 as /32s
CP_PROTECTED_PORT=80
CP_BACKEND_PORT=8080
CP_REMOTEIP_PORT=8081
CP_NFT_TABLE=cookieproxy_lab

# IPv6 on the same veth (lab.sh up, unless --no-ipv6): documentation addresses (RFC 3849), /64 on-link, and
# 2001:db8:18:1::1 .. ::32 as /128s on cp-c0 ("fresh source" clients, routed on-link from cp-srv).
CP_IP6_SRV=2001:db8:18::1
CP_IP6_CLI=2001:db8:18::2
CP_PREFIX6_LEN=64
CP_EXTRA6_NET=2001:db8:18:1
CP_EXTRA6_COUNT=32

# An 802.1Q VLAN (lab.sh up, unless --no-vlan): cp-c0 is a trunk port for the client's VLAN 100 addresses (a tc
# BPF tagger), so cp-s0 receives tagged frames; cp-s0.100 exists too where the kernel has 802.1Q.
CP_VLAN_ID=100
CP_DEV_SRV_VLAN="$CP_DEV_SRV.$CP_VLAN_ID"
CP_IP_SRV_VLAN=198.18.2.1
CP_IP_CLI_VLAN=198.18.2.2
CP_IP6_SRV_VLAN=2001:db8:18:2::1
CP_IP6_CLI_VLAN=2001:db8:18:2::2

# The lab's server-speaks-first backend (lab.sh banner-start): a greeting on connect, then an echo.
CP_BANNER_PORT=2525

# Run-time state (removed by `lab.sh down`) and the file cache (kept: 100 MiB of random data is
# created once).
CP_LABDIR="${CP_LABDIR:-/tmp/cookieproxy-lab$CP_LAB_SUFFIX}"
CP_CACHEDIR="${CP_CACHEDIR:-/var/tmp/cookieproxy-lab-cache}"

cp_log()
{
  printf '%s\n' "[$(date +%H:%M:%S)] $*" >&2
}

cp_die()
{
  printf 'error: %s\n' "$*" >&2
  exit 1
}

cp_require_root()
{
  if [[ "$(id -u)" != 0 ]]; then
    cp_die "must run as root (network namespaces, nftables, apt-get)"
  fi
}

cp_have()
{
  command -v "$1" >/dev/null 2>&1
}

# cp_wait_until SECONDS CMD...: poll CMD every 0.1 s until it succeeds; non-zero on timeout.
cp_wait_until()
{
  local deadline=$((SECONDS + $1))
  shift
  while ! "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      return 1
    fi
    sleep 0.1
  done
}

# cp_pid_alive PID: true while PID exists and is not a zombie.
cp_pid_alive()
{
  local pid="$1"
  [[ -n "$pid" && -d "/proc/$pid" ]] || return 1
  local state
  state="$(awk '/^State:/ { print $2 }' "/proc/$pid/status" 2>/dev/null)"
  [[ -n "$state" && "$state" != Z ]]
}

cp_pid_gone()
{
  ! cp_pid_alive "$1"
}

# cp_stop_pid PID [GRACE_SECONDS]: SIGTERM, wait, then SIGKILL. Only for processes we started.
cp_stop_pid()
{
  local pid="$1" grace="${2:-5}"
  cp_pid_alive "$pid" || return 0
  kill -TERM "$pid" 2>/dev/null || true
  if ! cp_wait_until "$grace" cp_pid_gone "$pid"; then
    kill -KILL "$pid" 2>/dev/null || true
    cp_wait_until 2 cp_pid_gone "$pid" || true
  fi
}

# cp_stop_pidfile FILE [GRACE]: stop the process named by a pid file and remove the file.
cp_stop_pidfile()
{
  local file="$1" grace="${2:-5}"
  [[ -f "$file" ]] || return 0
  local pid
  pid="$(tr -dc 0-9 <"$file")"
  cp_stop_pid "$pid" "$grace"
  rm -f "$file"
}

# The published binary: $COOKIEPROXY_BIN (relative paths are from the repo root), else out/cookieproxy.
cp_binary()
{
  local bin="${COOKIEPROXY_BIN:-out/cookieproxy}"
  [[ "$bin" == /* ]] || bin="$CP_ROOT/$bin"
  printf '%s\n' "$bin"
}

# Publish the binary exactly as the preamble says (self-contained single file in out/).
cp_publish()
{
  cp_log "publishing src/CookieProxy -> out/"
  (cd "$CP_ROOT" && dotnet publish src/CookieProxy -c Release -r linux-x64 --self-contained \
    -p:PublishSingleFile=true -o out/ -nologo -v quiet)
}
