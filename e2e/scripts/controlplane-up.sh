#!/usr/bin/env bash
# Starts a local Kubernetes control plane on loopback: etcd, kube-apiserver
# and kube-controller-manager (no scheduler, no kubelet: pods never run, but
# the API, RBAC, admission, garbage collection, namespace deletion and
# ServiceAccounts behave as in a real cluster).
#
# State lives in e2e/.state/ (see lib.sh): pki/, etcd/, logs/<name>.log,
# pids/<name>.pid and the admin kubeconfig (kubeconfig, system:masters).
# Re-running it while everything runs only re-checks readiness. A restart
# keeps pki/ and etcd/, so objects and tokens survive controlplane-down.sh.
#
# Env: ETCD_PORT ETCD_PEER_PORT APISERVER_PORT KCM_PORT (see lib.sh),
#      INFRA_CACHE_DIR, INFRA_STATE_DIR, CONTROLPLANE_TIMEOUT (s, default 180).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=SCRIPTDIR/lib.sh
source "${SCRIPT_DIR}/lib.sh"

PKI_DIR="${STATE_DIR}/pki"
PID_DIR="${STATE_DIR}/pids"
LOG_DIR="${STATE_DIR}/logs"
ETCD_DATA_DIR="${STATE_DIR}/etcd"
KCM_KUBECONFIG="${STATE_DIR}/kube-controller-manager.kubeconfig"
TIMEOUT="${CONTROLPLANE_TIMEOUT:-180}"
COMPONENTS=(etcd kube-apiserver kube-controller-manager)
APISERVER_URL="https://127.0.0.1:${APISERVER_PORT}"

started_at=${SECONDS}

# kube-controller-manager gets a high API rate limit and more garbage-collection workers: the
# defaults (20 requests/s) make deleting a provider with thousands of users take minutes.

# --- failure reporting -------------------------------------------------------

# fail COMPONENT MESSAGE : print the component's log tail, stop whatever this
# control plane has running (so a retry finds free ports), exit 1.
fail() {
  local name="$1" msg="$2"
  log "ERROR: ${msg}"
  if [[ -f "${LOG_DIR}/${name}.log" ]]; then
    log "last 40 lines of ${LOG_DIR}/${name}.log:"
    tail -n 40 "${LOG_DIR}/${name}.log" >&2
  fi
  log "stopping the control plane (logs kept in ${LOG_DIR})"
  "${SCRIPT_DIR}/controlplane-down.sh" >&2 || true
  exit 1
}

# wait_ready COMPONENT WHAT COMMAND... : like wait_for, but fails at once,
# naming the component, if the component's process has died.
wait_ready() {
  local name="$1" what="$2"
  shift 2
  local deadline=$((SECONDS + TIMEOUT))
  until "$@" >/dev/null 2>&1; do
    pid_alive "${PID_DIR}/${name}.pid" "${name}" || fail "${name}" "${name} exited while waiting for ${what}"
    ((SECONDS < deadline)) || fail "${name}" "timed out after ${TIMEOUT}s waiting for ${what}"
    sleep 1
  done
  log "${what}: ok ($((SECONDS - started_at))s)"
}

kcm_healthy() {
  if command -v curl >/dev/null 2>&1; then
    [[ "$(curl -sS --max-time 5 --cacert "${PKI_DIR}/ca.crt" \
      "https://127.0.0.1:${KCM_PORT}/healthz")" == ok ]]
  else
    port_open "${KCM_PORT}"
  fi
}

wait_all_ready() {
  wait_ready etcd "etcd on 127.0.0.1:${ETCD_PORT}" port_open "${ETCD_PORT}"
  wait_ready kube-apiserver "kube-apiserver /readyz" kubectl_admin get --raw /readyz
  # /healthz on its secure port: it runs now (on a restart the ServiceAccount
  # below already exists in etcd and proves nothing about this run).
  wait_ready kube-controller-manager "kube-controller-manager /healthz" kcm_healthy
  # The default ServiceAccount is created by kube-controller-manager's
  # serviceaccount controller: proof that the controllers work.
  wait_ready kube-controller-manager "ServiceAccount default/default" \
    kubectl_admin -n default get serviceaccount default
}

# --- already running? --------------------------------------------------------

running=0
for c in "${COMPONENTS[@]}"; do
  if pid_alive "${PID_DIR}/${c}.pid" "${c}"; then running=$((running + 1)); fi
done
if ((running == ${#COMPONENTS[@]})); then
  log "control plane already running (pids in ${PID_DIR}); checking readiness"
  wait_all_ready
  exit 0
elif ((running > 0)); then
  log "control plane partly running; restarting it"
  "${SCRIPT_DIR}/controlplane-down.sh"
fi

"${SCRIPT_DIR}/build-controlplane.sh"

# A port held by something else (another checkout's control plane, a stale
# process) would otherwise surface as a confusing timeout.
for port in "${ETCD_PORT}" "${ETCD_PEER_PORT}" "${APISERVER_PORT}" "${KCM_PORT}"; do
  if port_open "${port}"; then
    die "127.0.0.1:${port} is already in use; stop its owner or set ETCD_PORT/ETCD_PEER_PORT/APISERVER_PORT/KCM_PORT"
  fi
done

mkdir -p "${PID_DIR}" "${LOG_DIR}"

# --- PKI ---------------------------------------------------------------------
# RSA 2048 everywhere: every client library (Go, rustls, OpenSSL) takes it.
# Files are reused across restarts: etcd holds objects and tokens that were
# issued under them.

new_key() {
  openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out "$1" 2>/dev/null
}

# new_ca NAME CN : self-signed CA key + cert.
new_ca() {
  new_key "${PKI_DIR}/$1.key"
  openssl req -x509 -new -key "${PKI_DIR}/$1.key" -subj "/CN=$2" \
    -days 3650 -sha256 \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
    -out "${PKI_DIR}/$1.crt"
}

# issue NAME SUBJECT EXTENSIONS [CA] : key + cert signed by CA (default
# "ca"), unless both files exist.
issue() {
  local name="$1" subj="$2" ext="$3" ca="${4:-ca}"
  local key="${PKI_DIR}/${name}.key" crt="${PKI_DIR}/${name}.crt"
  [[ -s "${key}" && -s "${crt}" ]] && return 0
  new_key "${key}"
  openssl req -new -key "${key}" -subj "${subj}" -out "${PKI_DIR}/${name}.csr"
  openssl x509 -req -in "${PKI_DIR}/${name}.csr" \
    -CA "${PKI_DIR}/${ca}.crt" -CAkey "${PKI_DIR}/${ca}.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 3650 -sha256 \
    -extfile <(printf '%s\n' "basicConstraints=critical,CA:FALSE" \
      "keyUsage=critical,digitalSignature,keyEncipherment" "${ext}") \
    -out "${crt}" 2>/dev/null
  rm -f "${PKI_DIR}/${name}.csr"
}

gen_pki() {
  if [[ ! -s "${PKI_DIR}/ca.key" || ! -s "${PKI_DIR}/ca.crt" ]]; then
    # A new CA invalidates every leaf: start over.
    rm -rf "${PKI_DIR}"
    mkdir -p "${PKI_DIR}"
    chmod 700 "${PKI_DIR}"
    log "generating PKI in ${PKI_DIR}"
    new_ca ca infra-e2e-ca
  fi
  # The front-proxy (aggregation layer) CA is separate, as in kubeadm: a
  # cert from it lets its holder assert any user via X-Remote-* headers.
  if [[ ! -s "${PKI_DIR}/front-proxy-ca.key" || ! -s "${PKI_DIR}/front-proxy-ca.crt" ]]; then
    rm -f "${PKI_DIR}"/front-proxy-client.*
    new_ca front-proxy-ca infra-e2e-front-proxy-ca
  fi
  issue front-proxy-client "/CN=front-proxy-client" "extendedKeyUsage=clientAuth" front-proxy-ca
  local loopback="IP:127.0.0.1,DNS:localhost"
  issue apiserver "/CN=kube-apiserver" \
    "extendedKeyUsage=serverAuth
subjectAltName=${loopback},DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,IP:10.0.0.1"
  # etcd serves clients and peers with one cert; peers also present it as
  # client cert, hence both usages.
  issue etcd "/CN=etcd" "extendedKeyUsage=serverAuth,clientAuth
subjectAltName=${loopback}"
  issue apiserver-etcd-client "/CN=kube-apiserver-etcd-client" "extendedKeyUsage=clientAuth"
  issue kube-controller-manager "/CN=system:kube-controller-manager" "extendedKeyUsage=clientAuth"
  issue kube-controller-manager-serving "/CN=kube-controller-manager" \
    "extendedKeyUsage=serverAuth
subjectAltName=${loopback}"
  issue admin "/O=system:masters/CN=infra-admin" "extendedKeyUsage=clientAuth"
  # The Infra servers' HTTPS listener: the Kubernetes issuer the API server fetches.
  issue infra-issuer "/CN=infra-issuer" "extendedKeyUsage=serverAuth
subjectAltName=${loopback}"
  if [[ ! -s "${PKI_DIR}/sa.key" || ! -s "${PKI_DIR}/sa.pub" ]]; then
    new_key "${PKI_DIR}/sa.key"
    openssl pkey -in "${PKI_DIR}/sa.key" -pubout -out "${PKI_DIR}/sa.pub"
  fi
}

# write_kubeconfig FILE USER CERT KEY : client-cert kubeconfig, all embedded so
# the file can be copied anywhere.
write_kubeconfig() {
  local file="$1" user="$2" crt="$3" key="$4"
  # It holds a private key: owner-only, even while being written.
  (
    umask 077
    cat >"${file}" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: infra-e2e
  cluster:
    server: ${APISERVER_URL}
    certificate-authority-data: $(base64 -w0 <"${PKI_DIR}/ca.crt")
users:
- name: ${user}
  user:
    client-certificate-data: $(base64 -w0 <"${crt}")
    client-key-data: $(base64 -w0 <"${key}")
contexts:
- name: ${user}@infra-e2e
  context:
    cluster: infra-e2e
    user: ${user}
    namespace: default
current-context: ${user}@infra-e2e
EOF
  )
}

gen_pki
# Written on every start: the port may have changed.
write_kubeconfig "${ADMIN_KUBECONFIG}" infra-admin "${PKI_DIR}/admin.crt" "${PKI_DIR}/admin.key"
write_kubeconfig "${KCM_KUBECONFIG}" system:kube-controller-manager \
  "${PKI_DIR}/kube-controller-manager.crt" "${PKI_DIR}/kube-controller-manager.key"

# --- Infra as a token issuer ------------------------------------------------------
# The API server trusts Infra's tokens through the configuration `infra kube apiserver-config`
# prints (the same a cluster administrator copies), and audits what Infra's people do.
INFRA_CLI="${CARGO_TARGET_DIR:-${REPO_ROOT}/target}/debug/infra"
[[ -x "${INFRA_CLI}" ]] || die "${INFRA_CLI} not built; run cargo build --bins (e2e/up does)"
AUTHN_CONFIG="${STATE_DIR}/authentication-config.yaml"
"${INFRA_CLI}" kube apiserver-config --issuer-url "${ISSUER_URL}" --audience "${CLUSTER_NAME}" \
  --issuer-ca-file "${PKI_DIR}/ca.crt" >"${AUTHN_CONFIG}"
# Infra's authorization webhook first (deny for revoked sessions and users, no opinion
# otherwise), then Node and RBAC, as --authorization-mode=Node,RBAC had them.
AUTHZ_CONFIG="${STATE_DIR}/authorization-config.yaml"
WEBHOOK_KUBECONFIG="${STATE_DIR}/authorization-webhook.kubeconfig"
"${INFRA_CLI}" kube apiserver-config --issuer-url "${ISSUER_URL}" --audience "${CLUSTER_NAME}" \
  --issuer-ca-file "${PKI_DIR}/ca.crt" --print webhook-kubeconfig >"${WEBHOOK_KUBECONFIG}"
"${INFRA_CLI}" kube apiserver-config --issuer-url "${ISSUER_URL}" --audience "${CLUSTER_NAME}" \
  --print authorization --webhook-kubeconfig-path "${WEBHOOK_KUBECONFIG}" >"${AUTHZ_CONFIG}"
AUDIT_POLICY="${STATE_DIR}/audit-policy.yaml"
cat >"${AUDIT_POLICY}" <<'POLICY'
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [RequestReceived]
rules:
# Infra's people only: the operator's and the control plane's own traffic would drown them.
- level: Metadata
  userGroups: ["infra:authenticated"]
- level: None
POLICY

# --- processes ---------------------------------------------------------------

# start NAME COMMAND... : run detached (own session, so the caller's Ctrl-C or
# exit doesn't reach it; stdio off the caller's pipes, so a test harness
# capturing our output sees EOF), log to logs/NAME.log (previous run's log
# kept as NAME.log.1), pid to pids/NAME.pid.
start() {
  local name="$1"
  shift
  local logf="${LOG_DIR}/${name}.log"
  [[ -f "${logf}" ]] && mv -f "${logf}" "${logf}.1"
  log "starting ${name} (log: ${logf})"
  setsid "$@" </dev/null >"${logf}" 2>&1 &
  local pid=$!
  echo "${pid}" >"${PID_DIR}/${name}.pid"
  # The background job is bash, then setsid, then the component, under one pid: wait until the
  # exec has happened, or pid_alive's name check would take a starting component for a dead one
  # (on a busy machine this window is long enough to fail a start).
  local comm deadline=$((SECONDS + 10))
  while proc_alive "${pid}" && ((SECONDS < deadline)); do
    comm="$(cat "/proc/${pid}/comm" 2>/dev/null || true)"
    [[ "${comm}" == "${name:0:15}" ]] && return 0
    sleep 0.05
  done
}

BIN="${K8S_BIN_DIR}"

start etcd "${BIN}/etcd" \
  --name=infra-e2e \
  --data-dir="${ETCD_DATA_DIR}" \
  --listen-client-urls="https://127.0.0.1:${ETCD_PORT}" \
  --advertise-client-urls="https://127.0.0.1:${ETCD_PORT}" \
  --listen-peer-urls="https://127.0.0.1:${ETCD_PEER_PORT}" \
  --initial-advertise-peer-urls="https://127.0.0.1:${ETCD_PEER_PORT}" \
  --initial-cluster="infra-e2e=https://127.0.0.1:${ETCD_PEER_PORT}" \
  --initial-cluster-state=new \
  --cert-file="${PKI_DIR}/etcd.crt" --key-file="${PKI_DIR}/etcd.key" \
  --trusted-ca-file="${PKI_DIR}/ca.crt" --client-cert-auth \
  --peer-cert-file="${PKI_DIR}/etcd.crt" --peer-key-file="${PKI_DIR}/etcd.key" \
  --peer-trusted-ca-file="${PKI_DIR}/ca.crt" --peer-client-cert-auth \
  --log-level=warn
wait_ready etcd "etcd on 127.0.0.1:${ETCD_PORT}" port_open "${ETCD_PORT}"

# --advertise-address=127.0.0.1: there may be no non-loopback interface.
# --endpoint-reconciler-type=none: the `kubernetes` Service's Endpoints may
#   not hold a loopback IP, so the default reconciler would log errors
#   forever; nothing in-cluster needs that Service here.
# --cert-dir: keep the apiserver from writing to /var/run/kubernetes.
# --requestheader-*/--proxy-client-*: the aggregation layer's front proxy,
#   as kubeadm sets it; without it kube-controller-manager's delegated
#   authentication logs "missing content for CA bundle" errors forever.
# Admission plugins: the defaults, none of which need a kubelet.
start kube-apiserver "${BIN}/kube-apiserver" \
  --bind-address=127.0.0.1 \
  --secure-port="${APISERVER_PORT}" \
  --advertise-address=127.0.0.1 \
  --endpoint-reconciler-type=none \
  --cert-dir="${PKI_DIR}" \
  --tls-cert-file="${PKI_DIR}/apiserver.crt" \
  --tls-private-key-file="${PKI_DIR}/apiserver.key" \
  --client-ca-file="${PKI_DIR}/ca.crt" \
  --requestheader-client-ca-file="${PKI_DIR}/front-proxy-ca.crt" \
  --requestheader-allowed-names=front-proxy-client \
  --requestheader-username-headers=X-Remote-User \
  --requestheader-group-headers=X-Remote-Group \
  --requestheader-extra-headers-prefix=X-Remote-Extra- \
  --proxy-client-cert-file="${PKI_DIR}/front-proxy-client.crt" \
  --proxy-client-key-file="${PKI_DIR}/front-proxy-client.key" \
  --etcd-servers="https://127.0.0.1:${ETCD_PORT}" \
  --etcd-cafile="${PKI_DIR}/ca.crt" \
  --etcd-certfile="${PKI_DIR}/apiserver-etcd-client.crt" \
  --etcd-keyfile="${PKI_DIR}/apiserver-etcd-client.key" \
  --authorization-config="${AUTHZ_CONFIG}" \
  --authentication-config="${AUTHN_CONFIG}" \
  --audit-policy-file="${AUDIT_POLICY}" \
  --audit-log-path="${LOG_DIR}/audit.log" \
  --service-account-issuer=https://kubernetes.default.svc \
  --service-account-key-file="${PKI_DIR}/sa.pub" \
  --service-account-signing-key-file="${PKI_DIR}/sa.key" \
  --service-cluster-ip-range=10.0.0.0/24 \
  --allow-privileged=true \
  --profiling=false \
  --v=1
wait_ready kube-apiserver "kube-apiserver /readyz" kubectl_admin get --raw /readyz

# --use-service-account-credentials=true: each controller acts as its own
#   kube-system ServiceAccount bound to its system:controller:* role (as
#   kubeadm sets it up). With false every controller acts as
#   system:kube-controller-manager, whose role may not delete arbitrary
#   objects, so the garbage collector and namespace controller get 403s.
# --authentication/authorization-kubeconfig: secure-port requests are
#   authenticated and authorized against the apiserver (as kubeadm does).
# --cluster-signing-*: the CSR signer works, for tests that want it.
start kube-controller-manager "${BIN}/kube-controller-manager" \
  --kubeconfig="${KCM_KUBECONFIG}" \
  --authentication-kubeconfig="${KCM_KUBECONFIG}" \
  --authorization-kubeconfig="${KCM_KUBECONFIG}" \
  --bind-address=127.0.0.1 \
  --secure-port="${KCM_PORT}" \
  --cert-dir="${PKI_DIR}" \
  --tls-cert-file="${PKI_DIR}/kube-controller-manager-serving.crt" \
  --tls-private-key-file="${PKI_DIR}/kube-controller-manager-serving.key" \
  --leader-elect=false \
  --use-service-account-credentials=true \
  --service-account-private-key-file="${PKI_DIR}/sa.key" \
  --root-ca-file="${PKI_DIR}/ca.crt" \
  --cluster-signing-cert-file="${PKI_DIR}/ca.crt" \
  --cluster-signing-key-file="${PKI_DIR}/ca.key" \
  --service-cluster-ip-range=10.0.0.0/24 \
  --cluster-name=infra-e2e \
  --controllers='*' \
  --concurrent-gc-syncs=50 \
  --kube-api-qps=500 \
  --kube-api-burst=1000 \
  --profiling=false \
  --v=1

wait_all_ready
log "control plane up in $((SECONDS - started_at))s: KUBECONFIG=${ADMIN_KUBECONFIG} (${APISERVER_URL})"
