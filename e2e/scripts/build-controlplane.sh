#!/usr/bin/env bash
# Builds a real Kubernetes control plane (kube-apiserver,
# kube-controller-manager, kubectl) and etcd from the Go module proxy into
# ${INFRA_CACHE_DIR:-$HOME/.cache/infra}/k8s-<version>/bin/.
#
# The sources come from the wrapper modules e2e/controlplane and e2e/etcd
# (their go.sum pins every byte). Idempotent: when every binary exists and
# was built from the current go.mod/go.sum it returns at once. The Go build
# cache stays at its default (~/.cache/go-build) so rebuilds after a version
# bump only recompile what changed.
#
# Usage: e2e/scripts/build-controlplane.sh [--force]
set -euo pipefail

# shellcheck source=SCRIPTDIR/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

force=0
case "${1:-}" in
  "") ;;
  --force) force=1 ;;
  *) die "usage: $0 [--force]" ;;
esac

BINARIES=(etcd kube-apiserver kube-controller-manager kubectl)
STAMP="${K8S_BIN_DIR}/.build-stamp"

# What the binaries are built from: the four module files plus this recipe
# (flags, tags). A change to any of them makes the cache stale.
RECIPE="cgo=0 tags=selinux,notest,grpcnotrace trimpath ldflags=-s,-w k8s=${K8S_VERSION} etcd=${ETCD_VERSION}"
stamp_value() {
  {
    printf '%s\n' "${RECIPE}"
    cat "${E2E_DIR}/controlplane/go.mod" "${E2E_DIR}/controlplane/go.sum" \
      "${E2E_DIR}/etcd/go.mod" "${E2E_DIR}/etcd/go.sum"
  } | sha256sum | cut -d' ' -f1
}

all_cached() {
  local b
  for b in "${BINARIES[@]}"; do
    [[ -x "${K8S_BIN_DIR}/${b}" ]] || return 1
  done
  [[ -f "${STAMP}" && "$(<"${STAMP}")" == "$(stamp_value)" ]]
}

if ((force == 0)) && all_cached; then
  log "control plane binaries cached in ${K8S_BIN_DIR}"
  exit 0
fi

go_build_setup "Kubernetes ${K8S_VERSION}"
build_lock "${K8S_BIN_DIR}" all_cached || {
  log "control plane binaries cached in ${K8S_BIN_DIR}"
  exit 0
}
tmp="${BUILD_TMP}"

log "building Kubernetes ${K8S_VERSION} + etcd ${ETCD_VERSION} with $(go version | cut -d' ' -f3) (cold: ~6 min on 2 cores plus module downloads)"
started=${SECONDS}

# Version info the way upstream's hack/lib/version.sh sets it; without it
# the binaries report v0.0.0-master and kubectl warns about version skew.
kube_ldflags="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  kube_ldflags+=" -X ${pkg}.gitVersion=${K8S_VERSION}"
  kube_ldflags+=" -X ${pkg}.gitMajor=$(cut -d. -f1 <<<"${K8S_VERSION#v}")"
  kube_ldflags+=" -X ${pkg}.gitMinor=$(cut -d. -f2 <<<"${K8S_VERSION#v}")"
  kube_ldflags+=" -X ${pkg}.gitTreeState=clean"
done

log "downloading modules (skipped when in the module cache)"
(cd "${E2E_DIR}/controlplane" && go mod download)
(cd "${E2E_DIR}/etcd" && go mod download)

# One `go build` for the three kube commands: they share most packages and a
# single action graph keeps both cores busy through the long link steps.
# Tags as upstream release builds use them (hack/lib/golang.sh).
log "building kube-apiserver, kube-controller-manager, kubectl"
(
  cd "${E2E_DIR}/controlplane"
  go build -trimpath -tags selinux,notest,grpcnotrace -ldflags "${kube_ldflags}" \
    -o "${tmp}/" \
    k8s.io/kubernetes/cmd/kube-apiserver \
    k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kubectl
)
log "kube binaries built ($((SECONDS - started))s so far)"

# The etcd command's main package is the root of go.etcd.io/etcd/server/v3.
log "building etcd"
(
  cd "${E2E_DIR}/etcd"
  go build -trimpath -ldflags "-s -w" -o "${tmp}/etcd" go.etcd.io/etcd/server/v3
)

for b in "${BINARIES[@]}"; do
  [[ -x "${tmp}/${b}" ]] || die "build produced no ${b}"
  mv -f "${tmp}/${b}" "${K8S_BIN_DIR}/${b}"
done
stamp_value >"${STAMP}"

log "built ${BINARIES[*]} in $((SECONDS - started))s into ${K8S_BIN_DIR}"
