# shellcheck shell=bash disable=SC2034  # variables are for the sourcing scripts
# Shared helpers for the e2e scripts. Source it, don't run it:
#   source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
# It sets no shell options (the caller picks `set -euo pipefail`) and only
# defines variables and functions, so any script may source it.

# Repository root, from this file's location (e2e/scripts/lib.sh), so scripts
# work from any working directory and from any clone.
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
E2E_DIR="${REPO_ROOT}/e2e"

# Run-time state (pki, etcd data, logs, pids, kubeconfigs); git-ignored.
STATE_DIR="${INFRA_STATE_DIR:-${E2E_DIR}/.state}"

# Built binaries live outside the repo so fresh clones and `git clean` reuse
# them; the versions below name the cache directory.
CACHE_DIR="${INFRA_CACHE_DIR:-${HOME}/.cache/infra}"
K8S_VERSION="v1.37.2"
ETCD_VERSION="v3.7.3"
K8S_BIN_DIR="${CACHE_DIR}/k8s-${K8S_VERSION}/bin"

# Loopback-only ports of the local control plane (override to run two).
ETCD_PORT="${ETCD_PORT:-23790}"
ETCD_PEER_PORT="${ETCD_PEER_PORT:-23800}"
APISERVER_PORT="${APISERVER_PORT:-16443}"
KCM_PORT="${KCM_PORT:-10357}"
# The Infra servers' HTTPS listeners; the first is the Kubernetes issuer the API server trusts.
ISSUER_PORTS="${ISSUER_PORTS:-18110 18111}"
ISSUER_URL="https://127.0.0.1:${ISSUER_PORTS%% *}"
# The cluster's name in Infra: the tokens' audience and the kubeconfig context infra:infra-e2e.
CLUSTER_NAME="infra-e2e"

# Admin (system:masters) kubeconfig written by controlplane-up.sh.
ADMIN_KUBECONFIG="${STATE_DIR}/kubeconfig"

# log MESSAGE... : timestamped progress line on stderr (stdout stays clean
# for data a caller may capture).
log() {
  printf '[e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2
}

# die MESSAGE... : log and exit 1.
die() {
  log "ERROR: $*"
  exit 1
}

# wait_for TIMEOUT_SECONDS DESCRIPTION COMMAND [ARGS...]
# Runs COMMAND (output discarded) every second until it succeeds; returns 1
# after TIMEOUT_SECONDS so the caller can print diagnostics before failing.
wait_for() {
  local timeout="$1" what="$2"
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if ((SECONDS >= deadline)); then
      log "timed out after ${timeout}s waiting for ${what}"
      return 1
    fi
    sleep 1
  done
}

# proc_alive PID : true if PID is a live process. A zombie counts as dead:
# in a sandbox whose PID 1 does not reap orphans, a killed daemon stays a
# zombie and `kill -0` would still succeed on it.
proc_alive() {
  local stat
  stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
  stat="${stat##*) }"
  [[ -n "${stat}" && "${stat:0:1}" != Z ]]
}

# pid_alive PIDFILE [COMMAND] : true if PIDFILE names a live process and,
# when COMMAND is given, that process runs the executable COMMAND (pids wrap
# quickly in a sandbox, so a stale pid file may name someone else's process).
pid_alive() {
  local pid
  [[ -s "$1" ]] || return 1
  pid="$(<"$1")"
  [[ "${pid}" =~ ^[0-9]+$ ]] && proc_alive "${pid}" || return 1
  # /proc/PID/comm holds the first 15 bytes of the executable's name.
  [[ -z "${2:-}" || "$(cat "/proc/${pid}/comm" 2>/dev/null)" == "${2:0:15}" ]]
}

# stop_process NAME PID GRACE_SECONDS : SIGTERM, then SIGKILL if PID still lives after the
# grace period; returns once it is gone (a zombie counts as gone).
stop_process() {
  local name="$1" pid="$2" grace="$3"
  kill -TERM "${pid}" 2>/dev/null || true
  local deadline=$((SECONDS + grace))
  while proc_alive "${pid}" && ((SECONDS < deadline)); do
    sleep 0.1
  done
  if proc_alive "${pid}"; then
    log "${name} still running after ${grace}s; sending SIGKILL"
    kill -KILL "${pid}" 2>/dev/null || true
    # Bounded: a pid that outlives SIGKILL is not ours (a kernel thread took the number).
    deadline=$((SECONDS + 10))
    while proc_alive "${pid}" && ((SECONDS < deadline)); do sleep 0.1; done
    if proc_alive "${pid}"; then
      log "${name}: pid ${pid} survives SIGKILL; not ours, left alone"
    fi
  fi
}

# port_open PORT : true if something accepts TCP connections on
# 127.0.0.1:PORT (bash /dev/tcp, so no nc/ss needed).
port_open() {
  (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null
}

# npm_ci_cached DIR LABEL : `npm ci` in DIR (progress on stderr, prefixed with
# LABEL) unless DIR/node_modules was installed from the same package-lock.json:
# node_modules/.infra-lock.sha256 records the lock file's hash. `npm ci` reuses
# ~/.npm, so a reinstall is quick and needs no network when cached.
npm_ci_cached() {
  local dir="$1" label="$2" lock_sum stamp
  command -v npm >/dev/null || die "${label}: npm not found (Node.js >= 20 needed)"
  lock_sum="$(sha256sum "${dir}/package-lock.json" | cut -d' ' -f1)"
  stamp="${dir}/node_modules/.infra-lock.sha256"
  if [[ ! -f "${stamp}" || "$(<"${stamp}")" != "${lock_sum}" ]]; then
    log "${label}: npm ci in ${dir}"
    (cd "${dir}" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error >&2)
    echo "${lock_sum}" >"${stamp}"
  fi
}

# kubectl_admin ARGS... : the cached kubectl with the admin kubeconfig.
kubectl_admin() {
  "${K8S_BIN_DIR}/kubectl" --kubeconfig "${ADMIN_KUBECONFIG}" "$@"
}

# go_build_setup WHAT: what both Go builds (control plane, helm) need before they start: the
# machine's Go on PATH (it lives in /usr/local/go/bin, which a non-login shell such as CI's may
# not have), and the same build settings:
# - CGO_ENABLED=0: static binaries, as upstream builds them; needs no C toolchain.
# - -mod=readonly: a go.sum that misses anything fails loudly instead of being rewritten silently.
# - -buildvcs=false: stamping this repo's git state into the binaries is pointless and fails in
#   a repo without commits.
# GOTOOLCHAIN is left alone: the wrapper go.mod files say go 1.26.x, which the machine's Go
# satisfies, so no toolchain is fetched.
go_build_setup() {
  if ! command -v go >/dev/null 2>&1 && [[ -x /usr/local/go/bin/go ]]; then
    PATH="/usr/local/go/bin:${PATH}"
  fi
  command -v go >/dev/null 2>&1 || die "go not found (need Go >= 1.26.0 for $1)"
  export CGO_ENABLED=0
  export GOFLAGS="-mod=readonly -buildvcs=false"
}

# build_lock DIR IS_CACHED : serializes builds into DIR (several scripts may ask at once) and
# returns 1 when, once the lock is ours, IS_CACHED says another build has filled the cache
# meanwhile. Then makes BUILD_TMP, a scratch directory in DIR removed on exit: builds go there
# and move into place at the end, so an interrupted build never leaves a binary that looks cached.
build_lock() {
  local dir="$1" is_cached="$2"
  mkdir -p "${dir}"
  exec 9>"${dir}/.build.lock"
  if ! flock -n 9; then
    log "another build into ${dir} is running; waiting for it"
    flock 9
    if ((${force:-0} == 0)) && "${is_cached}"; then
      return 1
    fi
  fi
  BUILD_TMP="$(mktemp -d "${dir}/.tmp.XXXXXX")"
  # shellcheck disable=SC2064 # expand now: the path is fixed from here on
  trap "rm -rf '${BUILD_TMP}'" EXIT
}

