#!/usr/bin/env bash
# Writes a kubeconfig that authenticates as a ServiceAccount, with a 24h
# bound token from the TokenRequest API (`kubectl create token`), the server
# and CA of the admin kubeconfig, and NAMESPACE as its default namespace.
# The ServiceAccount must exist; what it may do is up to RBAC.
#
# Usage: e2e/scripts/sa-kubeconfig.sh NAMESPACE SERVICEACCOUNT OUTFILE
# Env: SA_TOKEN_DURATION (default 24h).
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

(($# == 3)) || die "usage: $0 NAMESPACE SERVICEACCOUNT OUTFILE"
ns="$1" sa="$2" out="$3"

[[ -s "${ADMIN_KUBECONFIG}" ]] || die "no ${ADMIN_KUBECONFIG}; run e2e/scripts/controlplane-up.sh first"

# --minify --raw: the current context's cluster, with the CA data inline.
server="$(kubectl_admin config view --minify --raw -o jsonpath='{.clusters[0].cluster.server}')"
ca_data="$(kubectl_admin config view --minify --raw -o jsonpath='{.clusters[0].cluster.certificate-authority-data}')"
[[ -n "${server}" && -n "${ca_data}" ]] || die "could not read server/CA from ${ADMIN_KUBECONFIG}"

token="$(kubectl_admin -n "${ns}" create token "${sa}" --duration="${SA_TOKEN_DURATION:-24h}")" ||
  die "TokenRequest for ServiceAccount ${ns}/${sa} failed"

mkdir -p "$(dirname "${out}")"
# The token is a credential: owner-only file.
(
  umask 077
  cat >"${out}" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: infra-e2e
  cluster:
    server: ${server}
    certificate-authority-data: ${ca_data}
users:
- name: ${ns}/${sa}
  user:
    token: ${token}
contexts:
- name: ${sa}@infra-e2e
  context:
    cluster: infra-e2e
    user: ${ns}/${sa}
    namespace: ${ns}
current-context: ${sa}@infra-e2e
EOF
)
log "wrote ${out} (system:serviceaccount:${ns}:${sa}, token valid ${SA_TOKEN_DURATION:-24h})"
