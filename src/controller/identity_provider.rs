//! Reconciles IdentityProviders: reads the client secret, discovers the provider, checks the client
//! credentials, and reports each step as a condition plus what to paste into the provider.

use std::sync::Arc;
use std::time::Duration;

use kube::ResourceExt;
use kube::runtime::controller::Action;

use super::context::{Context, Error, now};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

use crate::api::conditions::{self, Check};
use crate::api::identity_provider::{CREDENTIALS, DISCOVERY, READY, SECRET_VALID, SETTINGS_VALID};
use crate::api::{IdentityProvider, ProviderEndpoints, ProviderPhase, ProviderReason as Reason};
use crate::oidc::{self, Discovered, issuer};

pub const KIND: &str = "IdentityProvider";

/// How long to wait before checking again after a failure that needs a person to fix something.
/// A fixed Secret triggers a reconcile at once through the Secret watch; this only catches fixes
/// made at the provider (a re-enabled client, say).
const MISCONFIGURED_RECHECK: Duration = Duration::from_secs(300);

pub async fn reconcile(idp: Arc<IdentityProvider>, ctx: Arc<Context>) -> Result<Action, Error> {
    let _timer = ctx.metrics.reconcile_timer(KIND);
    let key = format!("{KIND}/{}", idp.name_any());
    let ns = idp.namespace().unwrap_or_default();

    let secret = oidc::read_client_secret(&ctx.kube.client, &ns, &idp).await?;
    let http = oidc::provider_http(&ctx.http, ctx.extra_ca.as_deref(), &idp);
    let (discovery, discovered) = run_discovery(&idp, &http).await;
    let credentials = match (&secret, &discovered, &http) {
        (Ok(secret), Some(found), Ok(http)) => oidc::check_credentials(http, found, &idp.spec.client_id, secret).await,
        (Err(_), _, _) => Check::unknown(CREDENTIALS, Reason::SecretInvalid, "waiting for a valid client secret (see SecretValid)"),
        _ => Check::unknown(CREDENTIALS, Reason::DiscoveryFailed, "waiting for discovery to succeed (see DiscoverySucceeded)"),
    };
    let secret_check = match &secret {
        Ok(_) => Check::passed(
            SECRET_VALID,
            Reason::Found,
            format!("read the client secret from key {:?} of Secret {:?}", idp.spec.client_secret_ref.key, idp.spec.client_secret_ref.name),
        ),
        Err(check) => check.clone(),
    };

    let settings = match crate::oidc::identity::groups_filter(idp.spec.groups_filter.as_deref()) {
        Ok(_) => Check::passed(SETTINGS_VALID, Reason::Valid, "spec.groupsFilter is a valid regular expression"),
        Err(e) => Check::failed(SETTINGS_VALID, Reason::InvalidGroupsFilter, format!("{e}; logins are refused until it is fixed")),
    };
    let checks = [secret_check, settings, discovery, credentials];
    let ready = ready_check(&checks);
    let old = idp.status.clone().unwrap_or_default();
    let mut status = old.clone();
    let mut changed = vec![];
    for check in checks.iter().chain(std::iter::once(&ready)) {
        if conditions::set(&mut status.conditions, check, idp.metadata.generation, now()) {
            changed.push(check.clone());
        }
    }
    status.observed_generation = idp.metadata.generation;
    status.phase = Some(phase(&checks));
    status.last_checked_time = Some(Time(now()));
    status.redirect_uris = ctx.args.cli_redirect_uris.iter().cloned().chain([ctx.args.login_callback_url()]).collect();
    status.scim_url = Some(ctx.args.scim_url());
    match &discovered {
        Some(found) => {
            status.issuer = Some(found.issuer.clone());
            status.endpoints = Some(endpoints(found));
            status.scopes_supported = found.metadata.scopes_supported().map(|scopes| scopes.iter().map(|s| s.to_string()).collect());
        }
        None => {
            status.issuer = None;
            status.endpoints = None;
            status.scopes_supported = None;
        }
    }
    if status != old {
        ctx.apply_status(idp.as_ref(), &status).await?;
    }
    for check in &changed {
        ctx.record(idp.as_ref(), check).await;
    }

    let transient = checks.iter().any(|c| c.status == conditions::FALSE && c.reason.is_transient());
    let result = if ready.is_true() {
        "ready"
    } else if transient {
        "transient"
    } else {
        "misconfigured"
    };
    ctx.metrics.reconciled(KIND, result);
    // A healthy provider is re-checked every few minutes; only a change is news.
    if changed.is_empty() {
        tracing::debug!(provider = %key, phase = phase(&checks).as_str(), reason = ready.reason.as_str(), "reconciled, unchanged");
    } else {
        tracing::info!(provider = %key, phase = phase(&checks).as_str(), reason = ready.reason.as_str(), "reconciled");
    }
    Ok(if ready.is_true() {
        ctx.backoff.reset(&key);
        Action::requeue(ctx.recheck_interval)
    } else if transient {
        Action::requeue(ctx.backoff.next(&key))
    } else {
        ctx.backoff.reset(&key);
        Action::requeue(MISCONFIGURED_RECHECK)
    })
}

pub fn error_policy(idp: Arc<IdentityProvider>, err: &Error, ctx: Arc<Context>) -> Action {
    super::context::error_policy(KIND, idp.as_ref(), err, &ctx)
}

async fn run_discovery(
    idp: &IdentityProvider,
    http: &Result<oidc::ProviderHttp, oidc::HttpClientError>,
) -> (Check<Reason>, Option<Discovered>) {
    let issuer = match issuer::issuer_url(idp.spec.kind, &idp.spec.url) {
        Ok(i) => i,
        Err(e) => return (Check::failed(DISCOVERY, Reason::InvalidURL, format!("spec.url: {e}")), None),
    };
    let http = match http {
        Ok(h) => h,
        Err(e) => return (Check::failed(DISCOVERY, Reason::InvalidCABundle, format!("spec.caBundle: {e}")), None),
    };
    match oidc::discover(http, &issuer).await {
        Ok(found) => {
            let msg = format!("discovered issuer {issuer} and its signing keys");
            (Check::passed(DISCOVERY, Reason::Discovered, msg), Some(found))
        }
        Err(check) => (check, None),
    }
}

fn endpoints(found: &Discovered) -> ProviderEndpoints {
    let m = &found.metadata;
    ProviderEndpoints {
        authorization: Some(m.authorization_endpoint().to_string()),
        token: m.token_endpoint().map(|u| u.to_string()),
        userinfo: m.userinfo_endpoint().map(|u| u.to_string()),
        jwks_uri: Some(m.jwks_uri().to_string()),
        token_auth_method: Some(if oidc::secret_in_body(found) { oidc::SECRET_POST } else { oidc::SECRET_BASIC }.to_string()),
    }
}

/// `Ready` is true when every check passed; otherwise it carries the first failing check's
/// message, which is the one a person should act on first.
pub fn ready_check(checks: &[Check<Reason>]) -> Check<Reason> {
    match checks.iter().find(|c| !c.is_true() && c.status == conditions::FALSE).or_else(|| checks.iter().find(|c| !c.is_true())) {
        None => Check::passed(READY, Reason::Ready, "the provider is reachable and accepts the client credentials"),
        Some(c) => Check::failed(READY, c.reason, format!("{}: {}", c.type_, c.message)),
    }
}

pub fn phase(checks: &[Check<Reason>]) -> ProviderPhase {
    if checks.iter().all(Check::is_true) {
        ProviderPhase::Ready
    } else if checks.iter().any(|c| c.status == conditions::FALSE) {
        ProviderPhase::Failed
    } else {
        ProviderPhase::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ready_when_all_pass() {
        let checks = [
            Check::passed(SECRET_VALID, Reason::Found, ""),
            Check::passed(DISCOVERY, Reason::Discovered, ""),
            Check::passed(CREDENTIALS, Reason::Accepted, ""),
        ];
        assert!(ready_check(&checks).is_true());
        assert_eq!(phase(&checks), ProviderPhase::Ready);
    }

    #[test]
    fn ready_names_the_first_failure() {
        let checks = [
            Check::passed(SECRET_VALID, Reason::Found, ""),
            Check::failed(DISCOVERY, Reason::IssuerMismatch, "names issuer x"),
            Check::unknown(CREDENTIALS, Reason::DiscoveryFailed, "waiting"),
        ];
        let ready = ready_check(&checks);
        assert_eq!(ready.status, conditions::FALSE);
        assert_eq!(ready.reason, Reason::IssuerMismatch);
        assert_eq!(ready.message, "DiscoverySucceeded: names issuer x");
        assert_eq!(phase(&checks), ProviderPhase::Failed);
    }

    #[test]
    fn a_false_check_wins_over_an_earlier_unknown_one() {
        let checks = [Check::unknown(SECRET_VALID, Reason::Waiting, ""), Check::failed(DISCOVERY, Reason::Unreachable, "down")];
        assert_eq!(ready_check(&checks).reason, Reason::Unreachable);
    }

    #[test]
    fn pending_when_only_unknowns() {
        let checks = [Check::passed(SECRET_VALID, Reason::Found, ""), Check::unknown(CREDENTIALS, Reason::Waiting, "")];
        assert_eq!(phase(&checks), ProviderPhase::Pending);
        assert_eq!(ready_check(&checks).status, conditions::FALSE);
    }
}
