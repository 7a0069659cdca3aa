//! SCIM bearer authentication over the keys the controller generates.
//!
//! Everything is read from reflector caches of ScimKeys, whose status (written only by the
//! controller) carries the key's id, SHA-256 and expiry: the server reads no Secrets. A revoked
//! key (its ScimKey deleted) is refused as soon as the watch event reaches this replica.
//!
//! A key this replica's cache does not know yet (an admin pastes a new key into Okta and presses
//! "Test" while the watch is a moment behind) is looked up with a consistent list of ScimKeys
//! instead of being refused: see [`FreshKeys`]. Lists are shared and at most four a second, so
//! unknown keys sent at speed cost the API server four small lists a second per replica, and a
//! refusal waits a quarter of a second at most for its list (which also slows guessing).

use crate::server::cache::Cache;
use axum::extract::{Request, State};
use axum::http::header::AUTHORIZATION;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::FutureExt;
use futures::future::BoxFuture;
use k8s_openapi::jiff::Timestamp;
use kube::api::ListParams;
use kube::{Api, Resource, ResourceExt};
use std::sync::Arc;
use std::time::Duration;
use tokio::time::Instant;

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
    /// Where keys the cache does not know yet are looked up; `None` trusts the cache alone.
    pub fresh: Option<Arc<FreshKeys>>,
}

/// A consistent list of the namespace's ScimKeys, taken when the cache misses: single-flight
/// (callers waiting together share one list) and at most one list per [`FreshKeys::INTERVAL`].
/// A caller is answered only by a list that started after it asked, so a key created just
/// before a throttled list is still found.
pub struct FreshKeys {
    list: Lister,
    last: tokio::sync::Mutex<Option<Listed>>,
}

type Lister = Box<dyn Fn() -> BoxFuture<'static, Result<Vec<ScimKey>, kube::Error>> + Send + Sync>;

struct Listed {
    started: Instant,
    keys: Arc<Vec<ScimKey>>,
}

impl FreshKeys {
    const INTERVAL: Duration = Duration::from_millis(250);
    const LIST_TIMEOUT: Duration = Duration::from_secs(5);

    pub fn new(api: Api<ScimKey>) -> Self {
        Self::with_lister(Box::new(move || {
            let api = api.clone();
            async move { api.list(&ListParams::default()).await.map(|l| l.items) }.boxed()
        }))
    }

    fn with_lister(list: Lister) -> Self {
        Self { list, last: tokio::sync::Mutex::new(None) }
    }

    /// The ScimKey whose key id is `id`, from a list that started after this call.
    async fn find(&self, id: &str) -> Option<ScimKey> {
        let keys = self.listed_since(Instant::now()).await?;
        keys.iter().find(|k| has_id(k, id)).cloned()
    }

    async fn listed_since(&self, asked: Instant) -> Option<Arc<Vec<ScimKey>>> {
        let mut last = self.last.lock().await;
        if let Some(l) = last.as_ref() {
            if l.started > asked {
                return Some(l.keys.clone());
            }
            tokio::time::sleep_until(l.started + Self::INTERVAL).await;
        }
        let started = Instant::now();
        // Bounded, so that an API server that does not answer holds the requests waiting here
        // (only requests with keys this replica does not know) for seconds, not minutes.
        let listed = match tokio::time::timeout(Self::LIST_TIMEOUT, (self.list)()).await {
            Ok(Ok(items)) => Ok(Arc::new(items)),
            Ok(Err(e)) => Err(e.to_string()),
            Err(_) => Err(format!("no answer within {} s", Self::LIST_TIMEOUT.as_secs())),
        };
        // A failed list throttles the next one too: an API server in trouble is not hammered.
        *last = Some(Listed { started, keys: listed.as_ref().map_or_else(|_| Arc::default(), Arc::clone) });
        listed.map_err(|error| tracing::warn!(%error, "listing ScimKeys for a key this replica has not seen failed")).ok()
    }
}

fn has_id(key: &ScimKey, id: &str) -> bool {
    key.meta().deletion_timestamp.is_none() && key.status.as_ref().and_then(|s| s.key_id.as_deref()) == Some(id)
}

/// Whether the controller has published the key's hash (until then it cannot be verified).
fn published(key: &ScimKey) -> bool {
    key.status.as_ref().is_some_and(|s| s.key_hash.is_some())
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
    pub async fn authenticate(&self, header: Option<&str>, now: Timestamp) -> Result<Principal, Refusal> {
        let header = header.ok_or(Refusal::Missing)?;
        let token = keys::bearer_token(header).ok_or(Refusal::Malformed)?;
        let id = keys::parse_id(token).ok_or(Refusal::Unknown)?;
        let mut key = self.keys.find(|k| has_id(k, id));
        // Only a key the cache lacks (or whose hash it lacks) is looked up: a wrong secret sent
        // with a known key id is refused from the cache.
        if !key.as_deref().is_some_and(published)
            && let Some(fresh) = &self.fresh
            && let Some(listed) = fresh.find(id).await
        {
            key = Some(Arc::new(listed));
        }
        self.verify(key.as_deref().ok_or(Refusal::Unknown)?, token, id, now)
    }

    fn verify(&self, key: &ScimKey, token: &str, id: &str, now: Timestamp) -> Result<Principal, Refusal> {
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
    pub metrics: Arc<Metrics>,
    pub limits: Arc<crate::server::rate_limit::Limits>,
}

/// Middleware: authenticates the request and hands the `Principal` to the handlers.
pub async fn require_key(State(state): State<AuthState>, mut req: Request, next: Next) -> Response {
    let header = req.headers().get(AUTHORIZATION).map(|v| v.to_str().unwrap_or(""));
    match state.stores.authenticate(header, Timestamp::now()).await {
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
        Fixture { stores: KeyStores { keys: Cache::new(k, "ns"), providers: Cache::new(p, "ns"), fresh: None }, keys: kw, providers: pw }
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

    #[tokio::test]
    async fn accepts_a_live_key_and_binds_it_to_its_provider() {
        let mut f = fixture();
        f.providers.apply_watcher_event(&watcher::Event::Apply(provider("okta")));
        let (key, token) = key_pair("k1", "okta", None);
        add(&mut f, &key);
        let p = f.stores.authenticate(Some(&format!("Bearer {token}")), now()).await.unwrap();
        assert_eq!(p.provider, "okta");
        assert_eq!(p.scim_key, "k1");
    }

    #[tokio::test]
    async fn status_holds_only_the_hash() {
        let mut f = fixture();
        f.providers.apply_watcher_event(&watcher::Event::Apply(provider("okta")));
        let (mut key, token) = key_pair("k1", "okta", None);
        let stored = key.status.as_ref().unwrap().key_hash.clone().unwrap();
        assert_ne!(stored, token, "the key itself is stored");
        add(&mut f, &key);
        // The hash itself is not a key.
        assert_eq!(f.stores.authenticate(Some(&format!("Bearer {stored}")), now()).await, Err(Refusal::Unknown));
        // A key whose hash the controller has not published yet (a legacy key before its first
        // reconcile by this version) is unknown until it is.
        key.status.as_mut().unwrap().key_hash = None;
        add(&mut f, &key);
        assert_eq!(f.stores.authenticate(Some(&format!("Bearer {token}")), now()).await, Err(Refusal::Unknown));
    }

    #[tokio::test]
    async fn refusals() {
        let mut f = fixture();
        f.providers.apply_watcher_event(&watcher::Event::Apply(provider("okta")));
        let (key, token) = key_pair("k1", "okta", None);
        add(&mut f, &key);
        let s = &f.stores;
        assert_eq!(s.authenticate(None, now()).await, Err(Refusal::Missing));
        assert_eq!(s.authenticate(Some("Basic abc"), now()).await, Err(Refusal::Malformed));
        assert_eq!(s.authenticate(Some(&format!("Bearer {token}x")), now()).await, Err(Refusal::Unknown));
        let (_, other) = key_pair("k2", "okta", None);
        assert_eq!(s.authenticate(Some(&format!("Bearer {other}")), now()).await, Err(Refusal::Unknown));

        // Revoked: the ScimKey is being deleted, or gone.
        let mut deleting = key.clone();
        deleting.metadata.deletion_timestamp = Some(Time(now()));
        add(&mut f, &deleting);
        assert_eq!(f.stores.authenticate(Some(&format!("Bearer {token}")), now()).await, Err(Refusal::Unknown));
        f.keys.apply_watcher_event(&watcher::Event::Delete(key));
        assert_eq!(f.stores.authenticate(Some(&format!("Bearer {token}")), now()).await, Err(Refusal::Unknown));
    }

    #[tokio::test]
    async fn expired_keys_are_refused() {
        let mut f = fixture();
        f.providers.apply_watcher_event(&watcher::Event::Apply(provider("okta")));
        let (key, token) = key_pair("k1", "okta", Some("2029-12-31T23:59:59Z"));
        add(&mut f, &key);
        assert!(matches!(f.stores.authenticate(Some(&format!("Bearer {token}")), now()).await, Err(Refusal::Expired(_))));
    }

    #[tokio::test]
    async fn keys_of_missing_providers_are_refused() {
        let mut f = fixture();
        f.providers.apply_watcher_event(&watcher::Event::Apply(provider("okta")));
        let (key, token) = key_pair("k1", "gone", None);
        add(&mut f, &key);
        assert!(matches!(f.stores.authenticate(Some(&format!("Bearer {token}")), now()).await, Err(Refusal::NoProvider(..))));
    }

    /// A lister that counts its calls and answers with whatever `keys` holds at the time.
    fn lister(keys: Arc<std::sync::Mutex<Vec<ScimKey>>>, calls: Arc<std::sync::atomic::AtomicUsize>) -> FreshKeys {
        FreshKeys::with_lister(Box::new(move || {
            calls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let items = keys.lock().unwrap().clone();
            async move { Ok(items) }.boxed()
        }))
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_the_cache_has_not_seen_yet_is_found_by_a_list() {
        let mut f = fixture();
        f.providers.apply_watcher_event(&watcher::Event::Apply(provider("okta")));
        let (key, token) = key_pair("k1", "okta", None);
        let (known, known_token) = key_pair("k0", "okta", None);
        add(&mut f, &known);
        let listed = Arc::new(std::sync::Mutex::new(vec![key.clone()]));
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        f.stores.fresh = Some(Arc::new(lister(listed.clone(), calls.clone())));
        let count = || calls.load(std::sync::atomic::Ordering::SeqCst);

        // The cache lags: the listed key is accepted anyway.
        let p = f.stores.authenticate(Some(&format!("Bearer {token}")), now()).await.unwrap();
        assert_eq!(p.scim_key, "k1");
        assert_eq!(count(), 1);
        // A cached key costs no list, and neither does a wrong secret sent with a cached key's id.
        f.stores.authenticate(Some(&format!("Bearer {known_token}")), now()).await.unwrap();
        let forged = format!("{}x", &known_token[..known_token.len() - 1]);
        assert_eq!(f.stores.authenticate(Some(&format!("Bearer {forged}")), now()).await, Err(Refusal::Unknown));
        assert_eq!(count(), 1);
        // The list is checked like the cache: a wrong secret for the listed key is refused.
        let wrong = format!("{}x", &token[..token.len() - 1]);
        assert_eq!(f.stores.authenticate(Some(&format!("Bearer {wrong}")), now()).await, Err(Refusal::Unknown));
        // A deleted key is not resurrected by the list.
        listed.lock().unwrap().clear();
        tokio::time::advance(Duration::from_secs(2)).await;
        assert_eq!(f.stores.authenticate(Some(&format!("Bearer {token}")), now()).await, Err(Refusal::Unknown));
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_keys_sent_at_speed_share_throttled_lists() {
        let mut f = fixture();
        f.providers.apply_watcher_event(&watcher::Event::Apply(provider("okta")));
        let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let listed = Arc::new(std::sync::Mutex::new(Vec::new()));
        f.stores.fresh = Some(Arc::new(lister(listed.clone(), calls.clone())));
        let stores = f.stores.clone();
        let start = Instant::now();
        let attempts = (0..50).map(|_| {
            let stores = stores.clone();
            async move {
                let (_, token) = key_pair("nope", "okta", None);
                stores.authenticate(Some(&format!("Bearer {token}")), now()).await
            }
        });
        let results = futures::future::join_all(attempts).await;
        assert!(results.iter().all(|r| r == &Err(Refusal::Unknown)));
        // All 50 waited together: one list, and one more for those that asked while it ran.
        assert!(calls.load(std::sync::atomic::Ordering::SeqCst) <= 2, "{calls:?} lists");
        // A key created after a list is still found by the next one, an interval later at most.
        let (key, token) = key_pair("k1", "okta", None);
        listed.lock().unwrap().push(key);
        let before = Instant::now();
        stores.authenticate(Some(&format!("Bearer {token}")), now()).await.unwrap();
        assert!(before.elapsed() <= FreshKeys::INTERVAL, "{:?}", before.elapsed());
        assert!(start.elapsed() <= 3 * FreshKeys::INTERVAL);
    }

    #[tokio::test(start_paused = true)]
    async fn an_api_server_that_does_not_answer_delays_unknown_keys_by_seconds_only() {
        let mut f = fixture();
        f.providers.apply_watcher_event(&watcher::Event::Apply(provider("okta")));
        f.stores.fresh = Some(Arc::new(FreshKeys::with_lister(Box::new(|| futures::future::pending().boxed()))));
        let (_, token) = key_pair("k1", "okta", None);
        let started = Instant::now();
        assert_eq!(f.stores.authenticate(Some(&format!("Bearer {token}")), now()).await, Err(Refusal::Unknown));
        assert_eq!(started.elapsed(), FreshKeys::LIST_TIMEOUT);
    }
}
