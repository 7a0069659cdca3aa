# shellcheck shell=bash
# The environment the local operator runs with in the suite: sourced by e2e/up and by e2e/bench
# (which restarts the operator from a release build and must keep the same settings).

# `infra login` listens on http://localhost:8301; the tests run several logins at once, each on
# its own port, so those loopback URIs are registered both at the IdP and with the server. The
# second server replica's callback is registered too, for logins that start on one replica and
# end on the other.
LOGIN_PORTS="$(seq -s ' ' 18301 18316)"
read -r -a login_ports <<<"${LOGIN_PORTS}"
CLI_REDIRECT_URIS="http://localhost:8301$(printf ',http://localhost:%s' "${login_ports[@]}")"
export INFRA_CLI_REDIRECT_URIS="${CLI_REDIRECT_URIS}"
export IDP_EXTRA_REDIRECT_URIS="${CLI_REDIRECT_URIS},http://127.0.0.1:18082/login/callback"
# The suite logs in and fails SCIM authentications from 127.0.0.1 many times a minute, so the
# shared replicas get high rate limits; tests/e2e/rate_limits.rs and device_login.rs (user code
# guesses) check the defaults on servers of their own.
export INFRA_LOGIN_RATE_LIMIT="${INFRA_LOGIN_RATE_LIMIT:-100000}"
export INFRA_WHOAMI_RATE_LIMIT="${INFRA_WHOAMI_RATE_LIMIT:-100000}"
export INFRA_SCIM_AUTH_FAILURE_LIMIT="${INFRA_SCIM_AUTH_FAILURE_LIMIT:-100000}"
export INFRA_DEVICE_CODE_GUESS_LIMIT="${INFRA_DEVICE_CODE_GUESS_LIMIT:-100000}"
export INFRA_DEVICE_CODE_GLOBAL_GUESS_LIMIT="${INFRA_DEVICE_CODE_GLOBAL_GUESS_LIMIT:-100000}"
# Ready providers are rechecked every 20 s here (10 minutes by default), and login sessions
# every 3 s (1 hour by default), so the suite sees periodic reconciles and session re-checks.
export RECHECK_INTERVAL="${RECHECK_INTERVAL:-20s}"
export INFRA_SESSION_RECHECK_INTERVAL="${INFRA_SESSION_RECHECK_INTERVAL:-3s}"
