#!/usr/bin/env bash
# Starts the stand-in Okta IdP (e2e/idp/server.mjs, oidc-provider over HTTPS)
# in the background and waits until its discovery document answers.
#
#   - runs `npm ci` in e2e/idp when node_modules is missing or does not match
#     package-lock.json (a second run skips it);
#   - creates the test CA and server certificate (idp-certs.sh);
#   - starts the server: pid in $STATE_DIR/pids/idp.pid, log in
#     $STATE_DIR/logs/idp.log (the previous one kept as idp.log.1);
#   - waits for https://localhost:$IDP_PORT/oauth2/default/.well-known/openid-configuration
#     (curl --cacert $STATE_DIR/idp/ca.crt) and prints the issuer on stdout
#     (progress goes to stderr), so `ISSUER=$(e2e/scripts/idp-up.sh)` works.
# Re-running it while the IdP runs only re-checks it and prints the issuer.
#
# Env: IDP_PORT (18443), IDP_TIMEOUT (s, 30), STATE_DIR / INFRA_STATE_DIR, and
#      everything server.mjs reads (IDP_CONFIG, IDP_ADMIN_TOKEN,
#      IDP_EXTRA_REDIRECT_URIS, ...), passed through.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
_idp_state_dir="${STATE_DIR:-}"
# shellcheck source=e2e/scripts/lib.sh
source "${SCRIPT_DIR}/lib.sh"
STATE_DIR="${_idp_state_dir:-${STATE_DIR}}"
export STATE_DIR

IDP_DIR="${REPO_ROOT}/e2e/idp"
IDP_PORT="${IDP_PORT:-18443}"
export IDP_PORT
TIMEOUT="${IDP_TIMEOUT:-30}"
PID_FILE="${STATE_DIR}/pids/idp.pid"
LOG_FILE="${STATE_DIR}/logs/idp.log"
CA="${STATE_DIR}/idp/ca.crt"
DISCOVERY_URL="https://localhost:${IDP_PORT}/oauth2/default/.well-known/openid-configuration"

started_at=${SECONDS}
command -v node >/dev/null || die "node not found (Node.js >= 18 needed; this tree uses 20.x)"
command -v npm >/dev/null || die "npm not found"
command -v curl >/dev/null || die "curl not found"

discovery() {
  curl -fsS --max-time 2 --cacert "${CA}" "${DISCOVERY_URL}"
}

print_issuer() {
  local doc
  doc="$(discovery)" || die "cannot read ${DISCOVERY_URL}"
  node -e 'process.stdout.write(JSON.parse(process.argv[1]).issuer + "\n")' "${doc}"
}

# --- dependencies ---------------------------------------------------------------
npm_ci_cached "${IDP_DIR}" idp

# --- certificates -------------------------------------------------------------------
"${SCRIPT_DIR}/idp-certs.sh"

# --- already running? ---------------------------------------------------------------
mkdir -p "${STATE_DIR}/pids" "${STATE_DIR}/logs"
if pid_alive "${PID_FILE}" node; then
  log "idp: already running (pid $(<"${PID_FILE}"))"
else
  if (exec 3<>"/dev/tcp/127.0.0.1/${IDP_PORT}") 2>/dev/null; then
    die "port ${IDP_PORT} is already in use by another process (set IDP_PORT)"
  fi
  [[ -f "${LOG_FILE}" ]] && mv -f "${LOG_FILE}" "${LOG_FILE}.1"
  log "idp: starting on port ${IDP_PORT} (log ${LOG_FILE})"
  IDP_TLS_CERT="${STATE_DIR}/idp/tls.crt" IDP_TLS_KEY="${STATE_DIR}/idp/tls.key" \
    setsid node "${IDP_DIR}/server.mjs" </dev/null >"${LOG_FILE}" 2>&1 &
  echo "$!" >"${PID_FILE}"
fi

# --- wait for the discovery document -------------------------------------------------
deadline=$((SECONDS + TIMEOUT))
until discovery >/dev/null 2>&1; do
  if ! pid_alive "${PID_FILE}"; then
    log "ERROR: idp exited; last 40 lines of ${LOG_FILE}:"
    tail -n 40 "${LOG_FILE}" >&2 || true
    rm -f "${PID_FILE}"
    exit 1
  fi
  if ((SECONDS >= deadline)); then
    log "ERROR: timed out after ${TIMEOUT}s waiting for ${DISCOVERY_URL}; last 40 lines of ${LOG_FILE}:"
    tail -n 40 "${LOG_FILE}" >&2 || true
    "${SCRIPT_DIR}/idp-down.sh" || true
    exit 1
  fi
  sleep 0.1
done
log "idp: ready ($((SECONDS - started_at))s), discovery ${DISCOVERY_URL}"
print_issuer
