#!/usr/bin/env bash
# Builds helm from the Go module proxy into
# ${INFRA_CACHE_DIR:-$HOME/.cache/infra}/helm-<version>/bin/helm and prints
# that path on stdout (progress goes to stderr), so callers can capture it:
#   INFRA_HELM="$(e2e/scripts/build-helm.sh)"
#
# The sources come from the wrapper module e2e/helm (its go.sum pins every
# byte; -mod=readonly makes a missing entry fail instead of being fetched
# silently). Idempotent: when the binary exists and was built from the
# current go.mod/go.sum and recipe it returns at once.
#
# Bump: change HELM_VERSION below and the require in e2e/helm/go.mod, then
# run `GOFLAGS=-mod=mod go mod tidy` in e2e/helm.
#
# Usage: e2e/scripts/build-helm.sh [--force]
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

HELM_VERSION="v3.22.0"
HELM_MODULE="helm.sh/helm/v3"
HELM_DIR="${E2E_DIR}/helm"
HELM_BIN_DIR="${CACHE_DIR}/helm-${HELM_VERSION}/bin"
HELM_BIN="${HELM_BIN_DIR}/helm"
STAMP="${HELM_BIN_DIR}/.build-stamp"

force=0
case "${1:-}" in
  "") ;;
  --force) force=1 ;;
  *) die "usage: $0 [--force]" ;;
esac

# What the binary is built from: the module files plus this recipe. A change
# to any of them makes the cache stale.
RECIPE="cgo=0 trimpath ldflags=-s,-w helm=${HELM_VERSION}"
stamp_value() {
  {
    printf '%s\n' "${RECIPE}"
    cat "${HELM_DIR}/go.mod" "${HELM_DIR}/go.sum"
  } | sha256sum | cut -d' ' -f1
}

cached() {
  [[ -x "${HELM_BIN}" && -f "${STAMP}" && "$(<"${STAMP}")" == "$(stamp_value)" ]]
}

done_cached() {
  log "helm ${HELM_VERSION} cached in ${HELM_BIN_DIR}"
  printf '%s\n' "${HELM_BIN}"
  exit 0
}

if ((force == 0)) && cached; then
  done_cached
fi

go_build_setup "helm ${HELM_VERSION}"
build_lock "${HELM_BIN_DIR}" cached || done_cached
tmp="${BUILD_TMP}"

log "building helm ${HELM_VERSION} with $(go version | cut -d' ' -f3) (cold: ~2 min on 2 cores plus module downloads)"
started=${SECONDS}

# Version info the way helm's Makefile sets it for a release build: the
# version, and the Kubernetes version that `helm lint` and the default
# .Capabilities.KubeVersion derive from client-go's (v0.X -> 1.X).
client_go="$(cd "${HELM_DIR}" && go list -m -f '{{.Version}}' k8s.io/client-go)"
k8s_minor="$(cut -d. -f2 <<<"${client_go#v}")"
ldflags="-s -w"
ldflags+=" -X ${HELM_MODULE}/internal/version.version=${HELM_VERSION}"
ldflags+=" -X ${HELM_MODULE}/internal/version.gitTreeState=clean"
for pkg in pkg/lint/rules pkg/chartutil; do
  ldflags+=" -X ${HELM_MODULE}/${pkg}.k8sVersionMajor=1"
  ldflags+=" -X ${HELM_MODULE}/${pkg}.k8sVersionMinor=${k8s_minor}"
done

log "downloading modules (skipped when in the module cache)"
(cd "${HELM_DIR}" && go mod download)

(
  cd "${HELM_DIR}"
  go build -trimpath -ldflags "${ldflags}" -o "${tmp}/helm" "${HELM_MODULE}/cmd/helm"
)
[[ -x "${tmp}/helm" ]] || die "build produced no helm"
"${tmp}/helm" version --short >/dev/null || die "the built helm does not run"
mv -f "${tmp}/helm" "${HELM_BIN}"
stamp_value >"${STAMP}"

log "built helm $("${HELM_BIN}" version --short) in $((SECONDS - started))s into ${HELM_BIN_DIR}"
printf '%s\n' "${HELM_BIN}"
