#!/usr/bin/env bash
# Writes the values table of charts/infra/README.md from the `# --` comments in values.yaml with
# helm-docs (README.md.gotmpl is the page around it). helm-docs is built from the Go module proxy
# into ${INFRA_CACHE_DIR:-$HOME/.cache/infra}/helm-docs-<version> once (about 3 minutes cold).
#
# Usage: build/chart-readme.sh          regenerate charts/infra/README.md
#        build/chart-readme.sh --check  fail if README.md is not what values.yaml generates
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VERSION="v1.14.2"
BIN_DIR="${INFRA_CACHE_DIR:-${HOME}/.cache/infra}/helm-docs-${VERSION}/bin"
BIN="${BIN_DIR}/helm-docs"
CHART="charts/infra"

check=0
case "${1:-}" in
  "") ;;
  --check) check=1 ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

if [[ ! -x "${BIN}" ]]; then
  echo "building helm-docs ${VERSION} into ${BIN_DIR} (once)" >&2
  GOBIN="${BIN_DIR}" GOFLAGS=-mod=readonly go install "github.com/norwoodj/helm-docs/cmd/helm-docs@${VERSION}"
fi

generate() { # DIR: a copy of the chart to write README.md into
  "${BIN}" --log-level warning --chart-search-root "$1" --template-files README.md.gotmpl --sort-values-order file
}

if ((check)); then
  tmp="$(mktemp -d)"
  trap 'rm -rf "${tmp}"' EXIT
  cp -r "${CHART}" "${tmp}/infra"
  generate "${tmp}/infra"
  if ! diff -u "${CHART}/README.md" "${tmp}/infra/README.md"; then
    echo "${CHART}/README.md is not what values.yaml generates: run build/chart-readme.sh" >&2
    exit 1
  fi
  echo "${CHART}/README.md is current"
else
  generate "${CHART}"
fi
