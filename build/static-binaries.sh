#!/usr/bin/env bash
# Builds infra-operator and infra as static executables (glibc, statically linked: no libc needed at
# run time, so the image needs no shell and no OS packages). The Dockerfile runs exactly this, and
# the test suite runs it too (tests/e2e/image.rs) to check the result starts.
#
# Usage: build/static-binaries.sh [OUT_DIR]   (default target/static)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${1:-target/static}"
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release --locked --target x86_64-unknown-linux-gnu --target-dir target/static-build \
  --bin infra-operator --bin infra
mkdir -p "${out}"
cp target/static-build/x86_64-unknown-linux-gnu/release/infra-operator target/static-build/x86_64-unknown-linux-gnu/release/infra "${out}/"
