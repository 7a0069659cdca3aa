#!/usr/bin/env bash
# Generates the test CA and the stand-in IdP's server certificate with openssl,
# into ${STATE_DIR}/idp/ (default e2e/.state/idp/):
#   ca.crt, ca.key    self-signed test CA (EC P-256, 10 years)
#   tls.crt, tls.key  server certificate for the IdP signed by that CA,
#                     SANs DNS:localhost, IP:127.0.0.1 (+ IDP_CERT_EXTRA_SANS)
# Idempotent: existing files are kept. tls.* is only re-issued when missing,
# not signed by ca.crt, or expiring within a day. Prints nothing on stdout.
#
# Env: STATE_DIR (else lib.sh's, honouring INFRA_STATE_DIR),
#      IDP_CERT_EXTRA_SANS e.g. "DNS:idp.example.test,IP:10.0.0.1" (only read
#      when tls.crt is issued).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
_idp_state_dir="${STATE_DIR:-}"
if [[ -f "${SCRIPT_DIR}/lib.sh" ]]; then
  # shellcheck source=e2e/scripts/lib.sh
  source "${SCRIPT_DIR}/lib.sh"
else
  REPO_ROOT="$(cd "${SCRIPT_DIR}/../.." && pwd)"
  STATE_DIR="${REPO_ROOT}/e2e/.state"
  log() { printf '[e2e %s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
  die() { log "ERROR: $*"; exit 1; }
fi
STATE_DIR="${_idp_state_dir:-${STATE_DIR}}"

command -v openssl >/dev/null || die "openssl not found (apt-get install openssl)"

CERT_DIR="${STATE_DIR}/idp"
mkdir -p "${CERT_DIR}"
chmod 700 "${CERT_DIR}"

tmp="$(mktemp -d)"
trap 'rm -rf "${tmp}"' EXIT

# Minimal config so nothing depends on the system openssl.cnf.
cat >"${tmp}/openssl.cnf" <<'EOF'
[req]
distinguished_name = dn
prompt = no
[dn]
CN = unused
[v3_ca]
basicConstraints = critical, CA:TRUE, pathlen:0
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
EOF

if [[ ! -s "${CERT_DIR}/ca.crt" || ! -s "${CERT_DIR}/ca.key" ]]; then
  log "idp-certs: creating test CA in ${CERT_DIR}"
  openssl ecparam -name prime256v1 -genkey -noout -out "${tmp}/ca.key" 2>/dev/null
  openssl req -x509 -new -config "${tmp}/openssl.cnf" -extensions v3_ca \
    -key "${tmp}/ca.key" -subj "/O=Infra e2e/CN=Infra e2e test CA" \
    -days 3650 -sha256 -set_serial "0x$(openssl rand -hex 16)" -out "${tmp}/ca.crt"
  chmod 600 "${tmp}/ca.key"
  mv "${tmp}/ca.key" "${CERT_DIR}/ca.key"
  mv "${tmp}/ca.crt" "${CERT_DIR}/ca.crt"
  rm -f "${CERT_DIR}/tls.crt" "${CERT_DIR}/tls.key"
fi

tls_ok() {
  [[ -s "${CERT_DIR}/tls.crt" && -s "${CERT_DIR}/tls.key" ]] || return 1
  openssl verify -CAfile "${CERT_DIR}/ca.crt" "${CERT_DIR}/tls.crt" >/dev/null 2>&1 || return 1
  openssl x509 -in "${CERT_DIR}/tls.crt" -noout -checkend 86400 >/dev/null 2>&1
}

if ! tls_ok; then
  sans="DNS:localhost,IP:127.0.0.1${IDP_CERT_EXTRA_SANS:+,${IDP_CERT_EXTRA_SANS}}"
  log "idp-certs: issuing IdP server certificate (${sans})"
  cat >"${tmp}/leaf.cnf" <<EOF
[v3_leaf]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = ${sans}
EOF
  openssl ecparam -name prime256v1 -genkey -noout -out "${tmp}/tls.key" 2>/dev/null
  openssl req -new -config "${tmp}/openssl.cnf" -key "${tmp}/tls.key" \
    -subj "/O=Infra e2e/CN=localhost" -out "${tmp}/tls.csr"
  openssl x509 -req -in "${tmp}/tls.csr" -CA "${CERT_DIR}/ca.crt" -CAkey "${CERT_DIR}/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 825 -sha256 \
    -extfile "${tmp}/leaf.cnf" -extensions v3_leaf -out "${tmp}/tls.crt" 2>/dev/null
  chmod 600 "${tmp}/tls.key"
  mv "${tmp}/tls.key" "${CERT_DIR}/tls.key"
  mv "${tmp}/tls.crt" "${CERT_DIR}/tls.crt"
fi
