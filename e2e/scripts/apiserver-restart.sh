#!/usr/bin/env bash
# Stops the local kube-apiserver, keeps it down for SECONDS, and starts it again with the very
# same command line: an API-server outage for the end-to-end test that the operator answers it as
# an outage and recovers on its own. Usage: apiserver-restart.sh SECONDS
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=e2e/scripts/lib.sh
source "${SCRIPT_DIR}/lib.sh"

down_for="${1:?usage: apiserver-restart.sh SECONDS}"
pidfile="${STATE_DIR}/pids/kube-apiserver.pid"
logf="${STATE_DIR}/logs/kube-apiserver.log"
pid="$(cat "${pidfile}" 2>/dev/null)" || die "no ${pidfile}: is the control plane running (e2e/up)?"
proc_alive "${pid}" || die "kube-apiserver (pid ${pid}) is not running"
# The command line of the running process, argument by argument.
mapfile -d '' -t cmd <"/proc/${pid}/cmdline"
((${#cmd[@]} > 0)) || die "could not read the command line of pid ${pid}"

log "stopping kube-apiserver (pid ${pid}) for ${down_for}s"
stop_process kube-apiserver "${pid}" 10
sleep "${down_for}"
log "starting kube-apiserver again"
setsid "${cmd[@]}" </dev/null >>"${logf}" 2>&1 &
echo "$!" >"${pidfile}"
wait_for 120 "kube-apiserver /readyz" kubectl_admin get --raw /readyz
log "kube-apiserver is back"
