#!/usr/bin/env bash
# Stops the operator processes operator-up.sh started (SIGTERM, then SIGKILL after 10s).
set -euo pipefail

# shellcheck source=e2e/scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

shopt -s nullglob
for pidfile in "${STATE_DIR}"/pids/controller-*.pid "${STATE_DIR}"/pids/server-*.pid; do
  name="$(basename "${pidfile}" .pid)"
  # The name check: a pid file left by a run that died may name an unrelated process by now.
  if pid_alive "${pidfile}" infra-operator; then
    stop_process "${name}" "$(<"${pidfile}")" 10
    log "stopped ${name}"
  fi
  rm -f "${pidfile}"
done
