#!/usr/bin/env bash
# Stops the control plane started by controlplane-up.sh: SIGTERM to each pid
# in e2e/.state/pids/, SIGKILL to what is still alive after a grace period.
# Logs are kept. With --purge the etcd data, pki and kubeconfigs are removed
# too, so the next start is a brand-new cluster.
#
# Usage: e2e/scripts/controlplane-down.sh [--purge]
# Env: CONTROLPLANE_STOP_GRACE (seconds before SIGKILL, default 10).
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

purge=0
case "${1:-}" in
  "") ;;
  --purge) purge=1 ;;
  *) die "usage: $0 [--purge]" ;;
esac

PID_DIR="${STATE_DIR}/pids"
GRACE="${CONTROLPLANE_STOP_GRACE:-10}"

# Clients first, etcd last, so the apiserver can shut down cleanly against
# a live etcd.
ORDER=(kube-controller-manager kube-apiserver etcd)

# Other pid files (e.g. from other people's scripts) are left alone: only
# the components this control plane owns are stopped here.
stop() {
  local name="$1" pidfile="${PID_DIR}/$1.pid" pid
  [[ -f "${pidfile}" ]] || return 0
  pid="$(<"${pidfile}")"
  if ! pid_alive "${pidfile}"; then
    rm -f "${pidfile}"
    return 0
  fi
  # Guard against a recycled pid: only signal the process we started.
  if ! pid_alive "${pidfile}" "${name}"; then
    log "pid ${pid} in ${pidfile} is not ${name} any more; not signalling it"
    rm -f "${pidfile}"
    return 0
  fi
  log "stopping ${name} (pid ${pid})"
  stop_process "${name}" "${pid}" "${GRACE}"
  rm -f "${pidfile}"
}

for c in "${ORDER[@]}"; do
  stop "${c}"
done

if ((purge)); then
  log "purging etcd data, pki and kubeconfigs in ${STATE_DIR}"
  rm -rf "${STATE_DIR}/etcd" "${STATE_DIR}/pki" \
    "${ADMIN_KUBECONFIG}" "${STATE_DIR}/kube-controller-manager.kubeconfig"
fi
log "control plane stopped (logs kept in ${STATE_DIR}/logs)"
