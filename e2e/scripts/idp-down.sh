#!/usr/bin/env bash
# Stops the stand-in IdP started by idp-up.sh (pid in $STATE_DIR/pids/idp.pid).
# Idempotent; keeps the log and the certificates.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
_idp_state_dir="${STATE_DIR:-}"
# shellcheck source=e2e/scripts/lib.sh
source "${SCRIPT_DIR}/lib.sh"
STATE_DIR="${_idp_state_dir:-${STATE_DIR}}"

PID_FILE="${STATE_DIR}/pids/idp.pid"

if pid_alive "${PID_FILE}" node; then
  pid="$(<"${PID_FILE}")"
  log "idp: stopping pid ${pid}"
  stop_process idp "${pid}" 5
else
  log "idp: not running"
fi
rm -f "${PID_FILE}"
