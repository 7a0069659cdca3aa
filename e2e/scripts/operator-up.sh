#!/usr/bin/env bash
# Runs the operator as local processes against the local control plane: two controller replicas
# (leader-elected) and two server replicas, each role as its own ServiceAccount. Replica 0 of each
# role authenticates as that role's ServiceAccount of config/rbac (infra-controller,
# infra-server), replica 1 as the role's ServiceAccount the Helm chart creates (e2e-infra-controller,
# e2e-infra-server), so all four Roles are proven sufficient on every run; none is ever
# cluster-admin.
#
# Expects the control plane and the stand-in IdP to be up and the binaries built.
# Env: INFRA_PROFILE (debug; release for benchmarks), INFRA_NAMESPACE (infra-system), SERVER_PORTS ("18080 18082"),
# SERVER_METRICS_PORTS ("18084 18085"), CONTROLLER_PORTS ("18081 18083"), BROKER_PORTS ("18086 18087").
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=e2e/scripts/lib.sh
source "${SCRIPT_DIR}/lib.sh"

NS="${INFRA_NAMESPACE:-infra-system}"
read -r -a SERVER_PORTS <<<"${SERVER_PORTS:-18080 18082}"
read -r -a SERVER_METRICS_PORTS <<<"${SERVER_METRICS_PORTS:-18084 18085}"
read -r -a CONTROLLER_PORTS <<<"${CONTROLLER_PORTS:-18081 18083}"
# The controllers' login brokers, where the servers redeem login codes (any replica, leader or not).
read -r -a BROKER_PORTS <<<"${BROKER_PORTS:-18086 18087}"
BROKER_URLS="$(printf 'http://127.0.0.1:%s,' "${BROKER_PORTS[@]}")"
BROKER_URLS="${BROKER_URLS%,}"
read -r -a TLS_PORTS <<<"${ISSUER_PORTS}"
BIN="${CARGO_TARGET_DIR:-${REPO_ROOT}/target}/${INFRA_PROFILE:-debug}/infra-operator"
# <role>.kubeconfig: config/rbac's ServiceAccount of the role; <role>-chart.kubeconfig: the chart's.
ROLES=(controller server)
CHART_RELEASE="e2e"
EXTERNAL_URL="http://127.0.0.1:${SERVER_PORTS[0]}"

[[ -x "${BIN}" ]] || die "${BIN} not built; run cargo build --bins (--release for INFRA_PROFILE=release)"
mkdir -p "${STATE_DIR}/pids" "${STATE_DIR}/logs"

log "installing CRDs and RBAC into namespace ${NS}"
kubectl_admin apply --server-side --field-manager=infra-e2e -k "${REPO_ROOT}/crds/" >/dev/null
kubectl_admin wait --for=condition=Established --timeout=60s \
  crd/identityproviders.infrahq.com crd/scimkeys.infrahq.com crd/users.infrahq.com crd/groups.infrahq.com \
  crd/grants.infrahq.com crd/deviceauthorizations.infrahq.com crd/sessions.infrahq.com >/dev/null
kubectl_admin create namespace "${NS}" --dry-run=client -o yaml | kubectl_admin apply --server-side --field-manager=infra-e2e -f - >/dev/null
kubectl_admin apply --server-side --field-manager=infra-e2e -k "${REPO_ROOT}/config/rbac" >/dev/null
kubectl_admin apply --server-side --field-manager=infra-e2e -k "${REPO_ROOT}/config/admission" >/dev/null
for role in "${ROLES[@]}"; do
  "${SCRIPT_DIR}/sa-kubeconfig.sh" "${NS}" "infra-${role}" "${STATE_DIR}/${role}.kubeconfig"
done

log "installing the Helm chart (release ${CHART_RELEASE}) into ${NS}"
HELM_BIN="$("${SCRIPT_DIR}/build-helm.sh")"
# The user ClusterRoles already come from config/rbac and the CRDs from crds/ (applied above,
# before anything else needs them); the chart's Deployment never runs here (no kubelet), its
# ServiceAccounts and Roles are what replica 1 of each role uses.
"${HELM_BIN}" upgrade --install "${CHART_RELEASE}" "${REPO_ROOT}/charts/infra" --kubeconfig "${ADMIN_KUBECONFIG}" -n "${NS}" \
  --set externalURL="${EXTERNAL_URL}" --set rbac.createUserRoles=false --set crds.enabled=false >/dev/null
for role in "${ROLES[@]}"; do
  "${SCRIPT_DIR}/sa-kubeconfig.sh" "${NS}" "${CHART_RELEASE}-infra-${role}" "${STATE_DIR}/${role}-chart.kubeconfig"
done

# start NAME KUBECONFIG ARGS... : runs the operator binary in the background with its own pid and log.
start() {
  local name="$1" kubeconfig="$2"
  shift 2
  if pid_alive "${STATE_DIR}/pids/${name}.pid" infra-operator; then
    log "${name} already running"
    return
  fi
  [[ -f "${STATE_DIR}/logs/${name}.log" ]] && mv "${STATE_DIR}/logs/${name}.log" "${STATE_DIR}/logs/${name}.log.1"
  KUBECONFIG="${kubeconfig}" INFRA_NAMESPACE="${NS}" INFRA_EXTERNAL_URL="${EXTERNAL_URL}" \
    INFRA_EXTRA_CA_FILE="${STATE_DIR}/idp/ca.crt" INFRA_LOG="${INFRA_LOG:-info}" MALLOC_ARENA_MAX=2 \
    INFRA_CLUSTER_NAME="${CLUSTER_NAME}" INFRA_KUBE_ISSUER_URL="${ISSUER_URL}" \
    INFRA_KUBE_API_SERVER_URL="https://127.0.0.1:${APISERVER_PORT}" INFRA_KUBE_API_SERVER_CA_FILE="${STATE_DIR}/pki/ca.crt" \
    INFRA_KUBE_TOKEN_LIFETIME="${INFRA_KUBE_TOKEN_LIFETIME:-5m}" INFRA_BROKER_URLS="${BROKER_URLS}" \
    INFRA_BROKER_CLIENTS="infra-server,${CHART_RELEASE}-infra-server" \
    setsid "${BIN}" "$@" >"${STATE_DIR}/logs/${name}.log" 2>&1 </dev/null &
  echo $! >"${STATE_DIR}/pids/${name}.pid"
}

# kubeconfig_for ROLE INDEX : replica 0 as config/rbac's ServiceAccount of ROLE, the others as the chart's.
kubeconfig_for() {
  if (($2 == 0)); then echo "${STATE_DIR}/$1.kubeconfig"; else echo "${STATE_DIR}/$1-chart.kubeconfig"; fi
}

for i in "${!CONTROLLER_PORTS[@]}"; do
  start "controller-${i}" "$(kubeconfig_for controller "${i}")" controller --metrics-addr "127.0.0.1:${CONTROLLER_PORTS[$i]}" --identity "controller-${i}" \
    --broker-addr "127.0.0.1:${BROKER_PORTS[$i]}" \
    --recheck-interval "${RECHECK_INTERVAL:-10m}"
done
for i in "${!SERVER_PORTS[@]}"; do
  start "server-${i}" "$(kubeconfig_for server "${i}")" server --listen-addr "127.0.0.1:${SERVER_PORTS[$i]}" \
    --metrics-addr "127.0.0.1:${SERVER_METRICS_PORTS[$i]}" --tls-listen-addr "127.0.0.1:${TLS_PORTS[$i]}" \
    --tls-cert-file "${STATE_DIR}/pki/infra-issuer.crt" --tls-key-file "${STATE_DIR}/pki/infra-issuer.key"
done

for i in "${!SERVER_PORTS[@]}"; do
  wait_for 60 "server-${i} /readyz" curl -fsS "http://127.0.0.1:${SERVER_PORTS[$i]}/readyz" || {
    tail -n 30 "${STATE_DIR}/logs/server-${i}.log" >&2
    die "server-${i} did not become ready"
  }
done
for i in "${!CONTROLLER_PORTS[@]}"; do
  wait_for 60 "controller-${i} /readyz" curl -fsS "http://127.0.0.1:${CONTROLLER_PORTS[$i]}/readyz" || {
    tail -n 30 "${STATE_DIR}/logs/controller-${i}.log" >&2
    die "controller-${i} did not become ready"
  }
done
log "operator running: servers on ${SERVER_PORTS[*]} (metrics on ${SERVER_METRICS_PORTS[*]}), controllers on ${CONTROLLER_PORTS[*]}"
