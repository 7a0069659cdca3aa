#!/usr/bin/env bash
# Checks the dependency tree with cargo-deny against deny.toml: licenses, duplicate versions and
# banned crates, crate sources, and security advisories. cargo-deny is built from crates.io into
# ${INFRA_CACHE_DIR:-$HOME/.cache/infra}/cargo-deny-<version> once (4 CPU-minutes: 15 minutes on a
# busy 2-core machine),
# then reused; a run takes about 5 seconds. Not part of e2e/test, to keep that within CI's time.
#
# The advisory database is a git repository that cargo-deny fetches from GitHub. Where GitHub cannot
# be reached, either point INFRA_ADVISORY_DB at a clone of github.com/rustsec/advisory-db (used
# as is, not fetched), or pass --no-advisories to check everything else; the script then says
# plainly that advisories were not checked (it never skips them without being told).
#
# Usage: [INFRA_ADVISORY_DB=DIR] build/cargo-deny.sh [--no-advisories]
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
  echo "building cargo-deny ${VERSION} into ${ROOT} (once; 4 CPU-minutes)" >&2
  cargo install --quiet --locked --version "${VERSION}" --root "${ROOT}" cargo-deny
fi

"${BIN}" --version >&2
fetch=()
if [[ -n "${INFRA_ADVISORY_DB:-}" && " ${checks[*]} " == *" advisories "* ]]; then
  # Where cargo-deny 0.20 keeps the database of its default URL (a hash of the URL).
  db="${CARGO_HOME:-${HOME}/.cargo}/advisory-dbs/advisory-db-3157b0e258782691"
  rm -rf "${db}"
  git clone --quiet "${INFRA_ADVISORY_DB}" "${db}"
  echo "advisories from ${INFRA_ADVISORY_DB} ($(git -C "${db}" log -1 --format=%cs))" >&2
  fetch=(--offline)
fi
# deny.toml beside Cargo.toml is the policy.
"${BIN}" "${fetch[@]}" check --show-stats "${checks[@]}"
if [[ "${#checks[@]}" -lt 4 ]]; then
  echo "NOTE: advisories were NOT checked (--no-advisories)" >&2
fi
