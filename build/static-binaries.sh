#!/usr/bin/env bash
# Builds infra-operator and infra as static executables (glibc, statically linked: no libc needed at
# run time, so the image needs no shell and no OS packages). The Dockerfile runs exactly this, and
# the test suite runs it too (tests/e2e/image.rs) to check the result starts.
#
# The target is buildx's TARGETARCH (amd64 or arm64) when set, else this machine's. Building for
# another architecture needs its C cross compiler and libc (the Dockerfile installs them):
# gcc-aarch64-linux-gnu and libc6-dev-arm64-cross for arm64, gcc-x86-64-linux-gnu and
# libc6-dev-amd64-cross for amd64.
#
# Usage: [TARGETARCH=amd64|arm64] build/static-binaries.sh [OUT_DIR]   (default target/static)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
out="${1:-target/static}"
host="$(rustc -vV | sed -n 's/^host: //p')"
case "${TARGETARCH:-${host%%-*}}" in
  amd64 | x86_64) target=x86_64-unknown-linux-gnu ;;
  arm64 | aarch64) target=aarch64-unknown-linux-gnu ;;
  *) echo "unsupported architecture ${TARGETARCH:-${host}}: amd64 or arm64" >&2; exit 1 ;;
esac
if [[ "${target}" != "${host}" ]]; then
  # Cargo and the cc crate (ring's C and assembly) both need the cross compiler named.
  cc="${target%%-*}-linux-gnu-gcc"
  target_env="$(tr 'a-z-' 'A-Z_' <<<"${target}")"
  export "CARGO_TARGET_${target_env}_LINKER=${cc}" "CC_${target//-/_}=${cc}"
fi
RUSTFLAGS="-C target-feature=+crt-static" \
  cargo build --release --locked --target "${target}" --target-dir target/static-build \
  --bin infra-operator --bin infra
mkdir -p "${out}"
cp "target/static-build/${target}/release/infra-operator" "target/static-build/${target}/release/infra" "${out}/"
