#!/usr/bin/env bash
# Installs what the dashboard login tests need (e2e/browser/dashboard.mjs):
#   - Debian's Chromium, with apt-get, only when /usr/bin/chromium is missing
#     (needs root, as on CI; otherwise it fails and says what to run);
#   - playwright-core: `npm ci` in e2e/browser only when node_modules is
#     missing or was installed from another package-lock.json.
# Idempotent: a second run changes nothing and needs no network. Progress goes
# to stderr.
#
# Env: INFRA_CHROMIUM (/usr/bin/chromium): use this browser executable instead;
#      nothing is installed for it.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# shellcheck source=e2e/scripts/lib.sh
source "${SCRIPT_DIR}/lib.sh"

CHROMIUM="${INFRA_CHROMIUM:-/usr/bin/chromium}"
BROWSER_DIR="${E2E_DIR}/browser"

command -v node >/dev/null || die "browser: node not found (Node.js >= 20 needed)"

if [[ ! -x "${CHROMIUM}" ]]; then
  [[ "${CHROMIUM}" == /usr/bin/chromium ]] ||
    die "browser: INFRA_CHROMIUM=${CHROMIUM} is not an executable file"
  command -v apt-get >/dev/null ||
    die "browser: /usr/bin/chromium is missing and there is no apt-get; install Chromium or set INFRA_CHROMIUM"
  ((EUID == 0)) ||
    die "browser: /usr/bin/chromium is missing and installing it needs root; run: sudo apt-get update && sudo apt-get install -y --no-install-recommends chromium"
  log "browser: installing Debian's chromium (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends chromium >&2
  [[ -x /usr/bin/chromium ]] || die "browser: apt-get installed chromium but /usr/bin/chromium is still missing"
fi

npm_ci_cached "${BROWSER_DIR}" browser
log "browser: ready (${CHROMIUM}, playwright-core $(node -p 'require(process.argv[1]).version' "${BROWSER_DIR}/node_modules/playwright-core/package.json"))"
