//! SCIM bearer authentication over the keys the controller generates.
//!
//! Everything is read from reflector caches of ScimKeys, whose status (written only by the
//! controller) carries the key's id, SHA-256 and expiry: the server reads no Secrets. A revoked
//! key (its ScimKey deleted) is refused as soon as the watch event reaches this replica.

use crate::server::cache::Cache;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};

use super::error::{self, ScimError};
use crate::api::{IdentityProvider, ScimKey};
use crate::keys;
use crate::metrics::{Metrics, OutcomeLabels};
use crate::server::rate_limit;

/// Who is calling: a key, and the one provider whose users and groups it may touch.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub provider: String,
    pub key_id: String,
    pub scim_key: String,
}

#[derive(Clone)]
pub struct KeyStores {
    pub keys: Cache<ScimKey>,
    pub providers: Cache<IdentityProvider>,
}

/// Why a request was refused; the variant is the metrics outcome, the message the SCIM detail.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("missing Authorization header; send `Authorization: Bearer <key>` with a key from `infra scim-keys create`")]
    Missing,
    #[error("malformed Authorization header; expected `Bearer <key>`")]
    Malformed,
    #[error("unknown or revoked SCIM key")]
    Unknown,
    #[error("SCIM key {0} has expired; create a new key with `infra scim-keys create` and update the provider")]
    Expired(String),
    #[error("SCIM key {0} belongs to IdentityProvider {1:?}, which does not exist")]
    NoProvider(String, String),
}

impl Refusal {
    fn outcome(&self) -> &'static str {
        match self {
            Self::Missing => "missing",
            Self::Malformed => "malformed",
            Self::Unknown => "unknown",
            Self::Expired(_) => "expired",
            Self::NoProvider(..) => "no_provider",
        }
    }
}

impl KeyStores {
    pub fn authenticate(&self, header: Option<&str>, now: Timestamp) -> Result<Principal, Refusal> {
        let header = header.ok_or(Refusal::Missing)?;
        let token = keys::bearer_token(header).ok_or(Refusal::Malformed)?;
        let id = keys::parse_id(token).ok_or(Refusal::Unknown)?;
        let key = self
            .keys
            .find(|k| k.meta().deletion_timestamp.is_none() && k.status.as_ref().and_then(|s| s.key_id.as_deref()) == Some(id))
            .ok_or(Refusal::Unknown)?;
        let status = key.status.as_ref().ok_or(Refusal::Unknown)?;
        // Constant-time comparison of the hashes; a key whose hash is not published yet is unknown.
        if !status.key_hash.as_deref().is_some_and(|hash| keys::verify_hash(token, hash)) {
            return Err(Refusal::Unknown);
        }
        if status.expires_at.as_ref().is_some_and(|at| at.0 <= now) {
            return Err(Refusal::Expired(id.to_string()));
        }
        let provider = key.spec.provider_ref.name.clone();
        if self.providers.live(&provider).is_none() {
            return Err(Refusal::NoProvider(id.to_string(), provider));
        }
        Ok(Principal { provider, key_id: id.to_string(), scim_key: key.name_any() })
    }
}

#[derive(Clone)]
pub struct AuthState {
    pub stores: KeyStores,
    pub metrics: std::sync::Arc<Metrics>,
    pub limits: std::sync::Arc<crate::server::rate_limit::Limits>,
}

/// Middleware: authenticates the request and hands the `Principal` to the handlers.
pub async fn require_key(State(state): State<AuthState>, mut req: Request, next: Next) -> Response {
    let header = req.headers().get(AUTHORIZATION).map(|v| v.to_str().unwrap_or(""));
    match state.stores.authenticate(header, Timestamp::now()) {
        Ok(principal) => {
            state.metrics.scim_auth.get_or_create(&OutcomeLabels { outcome: "accepted".into() }).inc();
            req.extensions_mut().insert(principal);
            next.run(req).await
        }
        Err(refusal) => {
            state.metrics.scim_auth.get_or_create(&OutcomeLabels { outcome: refusal.outcome().into() }).inc();
            // Failures are limited per client and per key id, so keys cannot be guessed at speed;
            // a request with a working key is never limited, so nobody can lock Okta out by
            // sending wrong secrets with its key id.
            let client = rate_limit::client_address(&req, state.limits.trusted_hops);
            let key_id = header.and_then(keys::bearer_token).and_then(keys::parse_id).map(|id| format!("key:{id}"));
            let now = std::time::Instant::now();
            let by_client = state.limits.scim_failures_by_client.check(&client, now);
            let by_key = key_id.map_or(Ok(()), |k| state.limits.scim_failures_by_key.check(&k, now));
            tracing::info!(outcome = refusal.outcome(), path = %req.uri().path(), %client, "SCIM request refused");
            match by_client.and(by_key) {
                Ok(()) => error::unauthorized(refusal.to_string()).into_response(),
                Err(wait) => {
                    let secs = rate_limit::retry_after_secs(wait);
                    let mut resp = ScimError::new(429, None, format!("too many failed authentications; retry in {secs} s")).into_response();
                    resp.headers_mut().insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from(secs));
                    resp
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use kube::runtime::reflector::{self, store::Writer};
    use kube::runtime::watcher;

    use super::*;
    use crate::api::{IdentityProviderSpec, ProviderKind, ProviderRef, ScimKeySpec, ScimKeyStatus, SecretKeyRef};

    struct Fixture {
        stores: KeyStores,
        keys: Writer<ScimKey>,
        providers: Writer<IdentityProvider>,
    }

    fn fixture() -> Fixture {
        let (k, kw) = reflector::store();
        let (p, pw) = reflector::store();
        Fixture { stores: KeyStores { keys: Cache::new(k, "ns"), providers: Cache::new(p, "ns") }, keys: kw, providers: pw }
    }

    fn provider(name: &str) -> IdentityProvider {
        let mut p = IdentityProvider::new(
            name,
            IdentityProviderSpec {
                kind: ProviderKind::Okta,
                url: "example.okta.com".into(),
                client_id: "id".into(),
                client_secret_ref: SecretKeyRef { name: "s".into(), key: "clientSecret".into() },
                scopes: None,
                claims: None,
                groups_filter: None,
                ca_bundle: None,
            },
        );
        p.metadata.namespace = Some("ns".into());
        p
    }

    /// A ScimKey for `provider` with the status the controller writes for its generated key.
    fn key_pair(name: &str, provider: &str, expires: Option<&str>) -> (ScimKey, String) {
        let mut key =
            ScimKey::new(name, ScimKeySpec { provider_ref: ProviderRef { name: provider.into() }, expires_after: None, description: None });
        key.metadata.namespace = Some("ns".into());
        key.metadata.uid = Some(format!("uid-{name}"));
        let generated = keys::generate().unwrap();
        key.status = Some(ScimKeyStatus {
            key_id: Some(generated.id.clone()),
            key_hash: Some(keys::hash_hex(&generated.token)),
            expires_at: expires.map(|e| Time(e.parse().unwrap())),
            ..Default::default()
        });
        (key, generated.token)
    }

    fn now() -> Timestamp {
        "2030-01-01T00:00:00Z".parse().unwrap()
    }

    fn add(f: &mut Fixture, key: &ScimKey) {
        f.keys.apply_watcher_event(&watcher::Event::Apply(key.clone()));
    }

    #[test]
    fn accepts_a_live_key_and_binds_it_to_its_provider() {
        let mut f = fixture();
        f.providers.apply_watcher_event(&watcher::Event::Apply(provider("okta")));
        let (key, token) = key_pair("k1", "okta", None);
        add(&mut f, &key);
        let p = f.stores.authenticate(Some(&format!("Bearer {token}")), now()).unwrap();
        assert_eq!(p.provider, "okta");
        assert_eq!(p.scim_key, "k1");
    }

    #[test]
    fn status_holds_only_the_hash() {
        let mut f = fixture();
        f.providers.apply_watcher_event(&watcher::Event::Apply(provider("okta")));
        let (mut key, token) = key_pair("k1", "okta", None);
        let stored = key.status.as_ref().unwrap().key_hash.clone().unwrap();
        assert_ne!(stored, token, "the key itself is stored");
        add(&mut f, &key);
        // The hash itself is not a key.
        assert_eq!(f.stores.authenticate(Some(&format!("Bearer {stored}")), now()), Err(Refusal::Unknown));
        // A key whose hash the controller has not published yet (a legacy key before its first
        // reconcile by this version) is unknown until it is.
        key.status.as_mut().unwrap().key_hash = None;
        add(&mut f, &key);
        assert_eq!(f.stores.authenticate(Some(&format!("Bearer {token}")), now()), Err(Refusal::Unknown));
    }

    #[test]
    fn refusals() {
        let mut f = fixture();
        f.providers.apply_watcher_event(&watcher::Event::Apply(provider("okta")));
        let (key, token) = key_pair("k1", "okta", None);
        add(&mut f, &key);
        let s = &f.stores;
        assert_eq!(s.authenticate(None, now()), Err(Refusal::Missing));
        assert_eq!(s.authenticate(Some("Basic abc"), now()), Err(Refusal::Malformed));
        assert_eq!(s.authenticate(Some(&format!("Bearer {token}x")), now()), Err(Refusal::Unknown));
        let (_, other) = key_pair("k2", "okta", None);
        assert_eq!(s.authenticate(Some(&format!("Bearer {other}")), now()), Err(Refusal::Unknown));

        // Revoked: the ScimKey is being deleted, or gone.
        let mut deleting = key.clone();
        deleting.metadata.deletion_timestamp = Some(Time(now()));
        add(&mut f, &deleting);
        assert_eq!(f.stores.authenticate(Some(&format!("Bearer {token}")), now()), Err(Refusal::Unknown));
        f.keys.apply_watcher_event(&watcher::Event::Delete(key));
        assert_eq!(f.stores.authenticate(Some(&format!("Bearer {token}")), now()), Err(Refusal::Unknown));
    }

    #[test]
    fn expired_keys_are_refused() {
        let mut f = fixture();
        f.providers.apply_watcher_event(&watcher::Event::Apply(provider("okta")));
        let (key, token) = key_pair("k1", "okta", Some("2029-12-31T23:59:59Z"));
        add(&mut f, &key);
        assert!(matches!(f.stores.authenticate(Some(&format!("Bearer {token}")), now()), Err(Refusal::Expired(_))));
    }

    #[test]
    fn keys_of_missing_providers_are_refused() {
        let mut f = fixture();
        f.providers.apply_watcher_event(&watcher::Event::Apply(provider("okta")));
        let (key, token) = key_pair("k1", "gone", None);
        add(&mut f, &key);
        assert!(matches!(f.stores.authenticate(Some(&format!("Bearer {token}")), now()), Err(Refusal::NoProvider(..))));
    }
}
