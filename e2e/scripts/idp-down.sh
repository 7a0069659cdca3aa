#!/usr/bin/env bash
# Stops the stand-in IdP started by idp-up.sh (pid in $STATE_DIR/pids/idp.pid).
# Idempotent; keeps the log and the certificates.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
_idp_state_dir="${STATE_DIR:-}"
if [[ -f "${SCRIPT_DIR}/lib.sh" ]]; then
  # shellcheck source=e2e/scripts/lib.sh
  source "${SCRIPT_DIR}/lib.sh"
else
  REPO_ROOT="$(cd "${SCRIPT_DIR}/../.." && pwd)"
  STATE_DIR="${REPO_ROOT}/e2e/.state"
  log() { printf '[e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
  pid_alive() {
    local pid
    [[ -s "$1" ]] || return 1
    pid="$(<"$1")"
    [[ "${pid}" =~ ^[0-9]+$ ]] && kill -0 "${pid}" 2>/dev/null
  }
fi
STATE_DIR="${_idp_state_dir:-${STATE_DIR}}"

PID_FILE="${STATE_DIR}/pids/idp.pid"

# running: exists and is not a zombie waiting to be reaped by its (init) parent
running() {
  local st
  st="$(ps -o stat= -p "$1" 2>/dev/null)" || return 1
  [[ -n "${st}" && "${st}" != Z* ]]
}

if pid_alive "${PID_FILE}"; then
  pid="$(<"${PID_FILE}")"
  log "idp: stopping pid ${pid}"
  kill -TERM "${pid}" 2>/dev/null || true
  for _ in $(seq 50); do
    running "${pid}" || break
    sleep 0.1
  done
  if running "${pid}"; then
    log "idp: pid ${pid} still running after 5s, sending SIGKILL"
    kill -KILL "${pid}" 2>/dev/null || true
  fi
else
  log "idp: not running"
fi
rm -f "${PID_FILE}"
