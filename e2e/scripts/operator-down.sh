#!/usr/bin/env bash
# Stops the operator processes operator-up.sh started (SIGTERM, then SIGKILL after 10s).
set -euo pipefail

# shellcheck source=e2e/scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

shopt -s nullglob
for pidfile in "${STATE_DIR}"/pids/controller-*.pid "${STATE_DIR}"/pids/server-*.pid; do
  name="$(basename "${pidfile}" .pid)"
  if pid_alive "${pidfile}"; then
    stop_process "${name}" "$(<"${pidfile}")" 10
    log "stopped ${name}"
  fi
  rm -f "${pidfile}"
done
