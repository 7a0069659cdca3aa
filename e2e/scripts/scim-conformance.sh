#!/usr/bin/env bash
# The independent SCIM 2.0 conformance suite, scim2-tester run through scim2-cli (`scim2 test`),
# against the running local environment (start it with e2e/up). The suite gets a provider and
# SCIM key of its own; the provider is removed at the end, and with it, through garbage
# collection, every user and group the suite created. Fails unless every check passes (a check
# that is skipped or only "compliant" fails too) and prints the count either way; the full
# report goes to e2e/.state/logs/scim-conformance.log.
#
# The tools are installed at the versions pinned in e2e/conformance/requirements.txt into a
# virtualenv under ${INFRA_CACHE_DIR:-$HOME/.cache/infra}/scim2-tester/, rebuilt only when that
# file or the Python version changes; later runs need no network.
#
# Env: INFRA_PYTHON (python3): the Python (>= 3.11, as scim2-cli needs) to build the virtualenv with.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=e2e/scripts/lib.sh
source "${SCRIPT_DIR}/lib.sh"

REQUIREMENTS="${E2E_DIR}/conformance/requirements.txt"
PYTHON="${INFRA_PYTHON:-python3}"
VENV_ROOT="${CACHE_DIR}/scim2-tester"
VENV="${VENV_ROOT}/venv"
STAMP="${VENV}/.infra-requirements.sha256"
REPORT="${STATE_DIR}/logs/scim-conformance.log"
# The statuses scim2-tester prints at the start of a result line; only SUCCESS is a pass.
STATUSES="SUCCESS|COMPLIANT|ACCEPTABLE|DEVIATION|ERROR|CRITICAL|SKIPPED"

# ---- The tools, in a cached virtualenv ------------------------------------------------------

command -v "${PYTHON}" >/dev/null || die "conformance: ${PYTHON} not found (Python >= 3.11 needed; set INFRA_PYTHON)"
"${PYTHON}" -c 'import sys; sys.exit(sys.version_info < (3, 11))' ||
  die "conformance: $("${PYTHON}" --version 2>&1) is too old; scim2-cli needs Python >= 3.11 (set INFRA_PYTHON)"

stamp_value() {
  { "${PYTHON}" --version 2>&1; cat "${REQUIREMENTS}"; } | sha256sum | cut -d' ' -f1
}
venv_cached() {
  [[ -x "${VENV}/bin/scim2" && -f "${STAMP}" && "$(<"${STAMP}")" == "$(stamp_value)" ]]
}

if ! venv_cached; then
  # A subshell, so that build_lock's cleanup trap stays out of this script's own.
  (
    build_lock "${VENV_ROOT}" venv_cached || exit 0
    log "conformance: installing $(grep -E '^scim2-(cli|tester)==' "${REQUIREMENTS}" | tr '\n' ' ')into ${VENV}"
    # A virtualenv cannot be moved once made, so it is built in place; the stamp, written last,
    # is what marks it complete.
    rm -rf "${VENV}"
    "${PYTHON}" -m venv "${VENV}"
    # --no-deps with `pip check`: exactly the pinned set is installed, and a pin missing from the
    # file fails here instead of being resolved to whatever is newest.
    "${VENV}/bin/pip" install --quiet --disable-pip-version-check --no-input --no-deps -r "${REQUIREMENTS}" >&2
    broken="$("${VENV}/bin/pip" check --disable-pip-version-check)" || die "conformance: ${broken}"
    stamp_value >"${STAMP}"
  )
fi

# ---- A provider and key of its own ------------------------------------------------------------

[[ -s "${STATE_DIR}/env" ]] && pid_alive "${STATE_DIR}/pids/server-0.pid" infra-operator ||
  die "conformance: the local environment is not running; start it with e2e/up"
# shellcheck disable=SC1091
source "${STATE_DIR}/env"
SCIM_URL="${INFRA_SERVER_URL}/api/scim/v2"

provider="scim-conformance-$(od -An -N3 -tx1 /dev/urandom | tr -d ' \n')"
cleanup() {
  infra providers remove "${provider}" >/dev/null ||
    log "conformance: could not remove provider ${provider}; remove it with: infra providers remove ${provider}"
}
trap cleanup EXIT
# The stand-in Okta's client, as the e2e tests use it.
CONFORMANCE_CLIENT_SECRET=infra-e2e-secret infra providers add "${provider}" --url "${INFRA_IDP_URL#https://}" \
  --client-id infra-e2e --client-secret-env CONFORMANCE_CLIENT_SECRET >/dev/null
key="$(infra scim-keys create -q --provider "${provider}" --name "${provider}" --description "scim2-tester conformance suite")"
[[ -n "${key}" ]] || die "conformance: infra scim-keys create printed no key"

# The key works once the server's watch has seen its Secret. The key goes to curl on stdin and
# to scim2 in its environment, never on a command line.
key_works() {
  curl -fsS -o /dev/null -H @- "${SCIM_URL}/ServiceProviderConfig" <<<"Authorization: Bearer ${key}"
}
wait_for 30 "the conformance SCIM key to work" key_works || die "conformance: the new SCIM key is refused"

# ---- The suite --------------------------------------------------------------------------------

log "conformance: scim2 test against ${SCIM_URL} (provider ${provider})"
mkdir -p "$(dirname "${REPORT}")"
rc=0
SCIM_CLI_HEADERS="Authorization: Bearer ${key}" "${VENV}/bin/scim2" -u "${SCIM_URL}" test --verbose >"${REPORT}" 2>&1 || rc=$?
# Colours are dropped when the output is not a terminal; strip them anyway, to parse plain text.
sed -i 's/\x1b\[[0-9;]*m//g' "${REPORT}"

total="$(grep -cE "^(${STATUSES}) " "${REPORT}" || true)"
passed="$(grep -c '^SUCCESS ' "${REPORT}" || true)"
if ((passed < total)); then
  # Each check that did not pass, with its reason (the indented lines under it).
  awk -v statuses="^(${STATUSES}) " '
    $0 ~ statuses { show = ($0 !~ /^SUCCESS /) }
    show { print }
  ' "${REPORT}" >&2
fi
log "conformance: scim2-tester: ${passed} of ${total} checks pass (report: ${REPORT})"
if ((total == 0)); then
  tail -n 20 "${REPORT}" >&2
  die "conformance: scim2 test ran no checks (exit status ${rc})"
fi
((passed == total && rc == 0)) || die "conformance: $((total - passed)) of ${total} checks failed (scim2 exit status ${rc})"
