#!/usr/bin/env bash
# Checks the dependency tree with cargo-deny against deny.toml: licenses, duplicate versions and
# banned crates, crate sources, and security advisories. cargo-deny is built from crates.io into
# ${INFRA_CACHE_DIR:-$HOME/.cache/infra}/cargo-deny-<version> once (about 6 minutes on 2 cores),
# then reused; a run takes seconds. Not part of e2e/test, to keep that within CI's time.
#
# The advisory database is a git repository that cargo-deny fetches from GitHub. Where that cannot
# be reached, pass --no-advisories to check everything else; the script then says plainly that
# advisories were not checked (it never skips them without being told).
#
# Usage: build/cargo-deny.sh [--no-advisories]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

VERSION="0.20.2"
ROOT="${INFRA_CACHE_DIR:-${HOME}/.cache/infra}/cargo-deny-${VERSION}"
BIN="${ROOT}/bin/cargo-deny"

checks=(licenses bans sources advisories)
case "${1:-}" in
  "") ;;
  --no-advisories) checks=(licenses bans sources) ;;
  *) echo "usage: $0 [--no-advisories]" >&2; exit 2 ;;
esac

if [[ ! -x "${BIN}" ]]; then
  echo "building cargo-deny ${VERSION} into ${ROOT} (once; about 6 minutes on 2 cores)" >&2
  cargo install --quiet --locked --version "${VERSION}" --root "${ROOT}" cargo-deny
fi

"${BIN}" --version >&2
"${BIN}" check --config deny.toml "${checks[@]}"
if [[ "${#checks[@]}" -lt 4 ]]; then
  echo "NOTE: advisories were NOT checked (--no-advisories)" >&2
fi
