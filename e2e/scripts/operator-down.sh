#!/usr/bin/env bash
# Stops the operator processes operator-up.sh started (SIGTERM, then SIGKILL after 10s).
set -euo pipefail

# shellcheck source=e2e/scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

shopt -s nullglob
for pidfile in "${STATE_DIR}"/pids/controller-*.pid "${STATE_DIR}"/pids/server-*.pid; do
  name="$(basename "${pidfile}" .pid)"
  if pid_alive "${pidfile}"; then
    pid="$(<"${pidfile}")"
    kill -TERM "${pid}" 2>/dev/null || true
    for _ in $(seq 1 100); do
      proc_alive "${pid}" || break
      sleep 0.1
    done
    if proc_alive "${pid}"; then
      log "${name} did not stop on SIGTERM; killing"
      kill -KILL "${pid}" 2>/dev/null || true
    fi
    log "stopped ${name}"
  fi
  rm -f "${pidfile}"
done
