//! SCIM bearer authentication over the keys the controller generates.
//!
//! Everything is read from reflector caches, so a revoked key (its ScimKey deleted) is refused as
//! soon as the watch event reaches this replica, without waiting for the garbage collector to
//! delete the Secret.

use crate::server::cache::Cache;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::{Resource, ResourceExt};

use super::error::{self, ScimError};
use crate::api::{IdentityProvider, KEY_HASH_DATA, LEGACY_KEY_DATA, ScimKey, annotations, labels};
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
    /// Key Secrets only (labelled with their ScimKey), named `scimkey-<key id>`.
    pub secrets: Cache<Secret>,
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
        let secret = self
            .secrets
            .get(&format!("scimkey-{id}"))
            .filter(|s| s.labels().get(labels::KEY_ID).map(String::as_str) == Some(id))
            .ok_or(Refusal::Unknown)?;
        let stored = |k: &str| secret.data.as_ref().and_then(|d| d.get(k)).and_then(|v| std::str::from_utf8(&v.0).ok());
        let genuine = match (stored(KEY_HASH_DATA), stored(LEGACY_KEY_DATA)) {
            (Some(hash), _) => keys::verify_hash(token, hash),
            // A Secret from before keys were stored hashed, until the controller hashes it.
            (None, Some(plain)) => keys::verify(token, plain),
            (None, None) => false,
        };
        if !genuine {
            return Err(Refusal::Unknown);
        }
        // The key is alive only while the ScimKey that owns this very Secret exists.
        let owner = secret.owner_references().iter().find(|o| o.controller == Some(true) && o.kind == ScimKey::kind(&()));
        let scim_key =
            owner.and_then(|o| self.keys.live(&o.name).filter(|k| k.uid().as_deref() == Some(o.uid.as_str()))).ok_or(Refusal::Unknown)?;
        if let Some(at) = secret.annotations().get(annotations::EXPIRES_AT) {
            // An unreadable expiry is treated as expired: fail closed.
            if at.parse::<Timestamp>().map_or(true, |at| at <= now) {
                return Err(Refusal::Expired(id.to_string()));
            }
        }
        let provider = scim_key.spec.provider_ref.name.clone();
        // The label written at generation must agree with the (immutable) spec: a key never
        // moves to another provider.
        if secret.labels().get(labels::PROVIDER) != Some(&provider) {
            return Err(Refusal::Unknown);
        }
        if self.providers.live(&provider).is_none() {
            return Err(Refusal::NoProvider(id.to_string(), provider));
        }
        Ok(Principal { provider, key_id: id.to_string(), scim_key: scim_key.name_any() })
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
    use std::collections::BTreeMap;

    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
    use kube::runtime::reflector::{self, store::Writer};
    use kube::runtime::watcher;

    use super::*;
    use crate::api::{IdentityProviderSpec, ProviderKind, ProviderRef, ScimKeySpec, SecretKeyRef};

    struct Fixture {
        stores: KeyStores,
        keys: Writer<ScimKey>,
        secrets: Writer<Secret>,
        providers: Writer<IdentityProvider>,
    }

    fn fixture() -> Fixture {
        let (k, kw) = reflector::store();
        let (s, sw) = reflector::store();
        let (p, pw) = reflector::store();
        Fixture {
            stores: KeyStores { keys: Cache::new(k, "ns"), secrets: Cache::new(s, "ns"), providers: Cache::new(p, "ns") },
            keys: kw,
            secrets: sw,
            providers: pw,
        }
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

    /// A ScimKey for `provider` and the Secret the controller would generate for it.
    fn key_pair(name: &str, provider: &str, expires: Option<&str>) -> (ScimKey, Secret, String) {
        let mut key =
            ScimKey::new(name, ScimKeySpec { provider_ref: ProviderRef { name: provider.into() }, expires_after: None, description: None });
        key.metadata.namespace = Some("ns".into());
        key.metadata.uid = Some(format!("uid-{name}"));
        let generated = keys::generate().unwrap();
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(format!("scimkey-{}", generated.id)),
                namespace: Some("ns".into()),
                labels: Some(BTreeMap::from([
                    (labels::KEY_ID.to_string(), generated.id.clone()),
                    (labels::PROVIDER.to_string(), provider.to_string()),
                    (labels::SCIM_KEY.to_string(), name.to_string()),
                ])),
                annotations: expires.map(|e| BTreeMap::from([(annotations::EXPIRES_AT.to_string(), e.to_string())])),
                owner_references: Some(vec![OwnerReference {
                    api_version: "infrahq.com/v1alpha1".into(),
                    kind: "ScimKey".into(),
                    name: name.into(),
                    uid: format!("uid-{name}"),
                    controller: Some(true),
                    block_owner_deletion: Some(true),
                }]),
                ..Default::default()
            },
            data: Some(BTreeMap::from([(KEY_HASH_DATA.to_string(), ByteString(keys::hash_hex(&generated.token).into_bytes()))])),
            ..Default::default()
        };
        (key, secret, generated.token)
    }

    fn now() -> Timestamp {
        "2030-01-01T00:00:00Z".parse().unwrap()
    }

    fn add(f: &mut Fixture, key: &ScimKey, secret: &Secret) {
        f.keys.apply_watcher_event(&watcher::Event::Apply(key.clone()));
        f.secrets.apply_watcher_event(&watcher::Event::Apply(secret.clone()));
    }

    #[test]
    fn accepts_a_live_key_and_binds_it_to_its_provider() {
        let mut f = fixture();
        f.providers.apply_watcher_event(&watcher::Event::Apply(provider("okta")));
        let (key, secret, token) = key_pair("k1", "okta", None);
        add(&mut f, &key, &secret);
        let p = f.stores.authenticate(Some(&format!("Bearer {token}")), now()).unwrap();
        assert_eq!(p.provider, "okta");
        assert_eq!(p.scim_key, "k1");
    }

    #[test]
    fn secrets_hold_only_the_hash_and_legacy_plain_keys_still_work() {
        let mut f = fixture();
        f.providers.apply_watcher_event(&watcher::Event::Apply(provider("okta")));
        let (key, mut secret, token) = key_pair("k1", "okta", None);
        let stored = secret.data.as_ref().unwrap()[KEY_HASH_DATA].0.clone();
        assert_ne!(stored, token.as_bytes(), "the key itself is stored");
        // The hash itself is not a key.
        let as_key = format!("Bearer {}", String::from_utf8(stored).unwrap());
        add(&mut f, &key, &secret);
        assert_eq!(f.stores.authenticate(Some(&as_key), now()), Err(Refusal::Unknown));
        // A Secret of an earlier version, holding the key itself.
        secret.data = Some(BTreeMap::from([(LEGACY_KEY_DATA.to_string(), ByteString(token.clone().into_bytes()))]));
        add(&mut f, &key, &secret);
        assert!(f.stores.authenticate(Some(&format!("Bearer {token}")), now()).is_ok());
        secret.data = Some(BTreeMap::new());
        add(&mut f, &key, &secret);
        assert_eq!(f.stores.authenticate(Some(&format!("Bearer {token}")), now()), Err(Refusal::Unknown));
    }

    #[test]
    fn refusals() {
        let mut f = fixture();
        f.providers.apply_watcher_event(&watcher::Event::Apply(provider("okta")));
        let (key, secret, token) = key_pair("k1", "okta", None);
        add(&mut f, &key, &secret);
        let s = &f.stores;
        assert_eq!(s.authenticate(None, now()), Err(Refusal::Missing));
        assert_eq!(s.authenticate(Some("Basic abc"), now()), Err(Refusal::Malformed));
        assert_eq!(s.authenticate(Some(&format!("Bearer {token}x")), now()), Err(Refusal::Unknown));
        let (_, _, other) = key_pair("k2", "okta", None);
        assert_eq!(s.authenticate(Some(&format!("Bearer {other}")), now()), Err(Refusal::Unknown));

        // Revoked: the ScimKey is gone even though the Secret is still cached.
        f.keys.apply_watcher_event(&watcher::Event::Delete(key));
        assert_eq!(f.stores.authenticate(Some(&format!("Bearer {token}")), now()), Err(Refusal::Unknown));
    }

    #[test]
    fn expired_keys_are_refused() {
        let mut f = fixture();
        f.providers.apply_watcher_event(&watcher::Event::Apply(provider("okta")));
        let (key, secret, token) = key_pair("k1", "okta", Some("2029-12-31T23:59:59Z"));
        add(&mut f, &key, &secret);
        assert!(matches!(f.stores.authenticate(Some(&format!("Bearer {token}")), now()), Err(Refusal::Expired(_))));
        let (key, secret, token) = key_pair("k2", "okta", Some("not a time"));
        add(&mut f, &key, &secret);
        assert!(matches!(f.stores.authenticate(Some(&format!("Bearer {token}")), now()), Err(Refusal::Expired(_))));
    }

    #[test]
    fn keys_of_missing_providers_and_relabelled_secrets_are_refused() {
        let mut f = fixture();
        f.providers.apply_watcher_event(&watcher::Event::Apply(provider("okta")));
        let (key, secret, token) = key_pair("k1", "gone", None);
        add(&mut f, &key, &secret);
        assert!(matches!(f.stores.authenticate(Some(&format!("Bearer {token}")), now()), Err(Refusal::NoProvider(..))));

        // A ScimKey whose spec names another provider than the one its key was generated for.
        let (mut key, secret, token) = key_pair("k3", "okta", None);
        key.spec.provider_ref.name = "other".into();
        add(&mut f, &key, &secret);
        assert_eq!(f.stores.authenticate(Some(&format!("Bearer {token}")), now()), Err(Refusal::Unknown));
    }
}
