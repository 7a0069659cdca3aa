//! The authorization webhook: the API server asks it first about every request by an `infra:`
//! user (a `SubjectAccessReview`, uncached), and it answers "deny" when the session behind the
//! token has ended or the user was deactivated or deleted, and "no opinion" otherwise, so RBAC
//! decides. Tokens live minutes; this makes revocation take effect at once.
//!
//! Answers come from watch caches. A miss (a session or user created a moment ago, not yet in
//! this replica's cache) is checked against the API server before denying, so a new login is
//! never refused by a lagging cache.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use kube::Api;
use kube::core::PartialObjectMeta;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api::{IdentityProvider, Session, User};
use crate::directory::naming::user_object_name;
use crate::kube_access::identity::{PREFIX, SESSION_EXTRA};
use crate::server::cache::Cache;
use crate::session::cache::SessionCache;

/// What the webhook needs to know, from the caches and (on a miss) the API server.
pub struct Revocations {
    /// The server's Session cache.
    pub sessions: Arc<SessionCache>,
    /// The server's user directory (kept current by its User watch).
    pub directory: crate::directory::store::DirectoryStore,
    /// The server's IdentityProvider cache: removing a provider ends its people's access the
    /// moment its deletion starts, not when garbage collection gets to their sessions.
    pub providers: Cache<IdentityProvider>,
    pub provider_api: Api<IdentityProvider>,
    pub session_api: Api<Session>,
    pub user_api: Api<User>,
}

#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    NoOpinion,
    Deny(String),
}

/// The state of a user, as far as access goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserState {
    pub uid: String,
    pub active: bool,
}

/// The pieces of an Infra username: provider and userName.
pub fn parse_username(username: &str) -> Option<(&str, &str)> {
    username.strip_prefix(PREFIX)?.split_once(':')
}

/// What the caches (or, on a miss, the API server) say about a request's session, provider and user.
#[derive(Debug, Clone, Copy)]
pub struct Seen<'a> {
    pub session_exists: bool,
    /// The user's IdentityProvider exists and is not being deleted.
    pub provider_live: bool,
    pub user: Option<&'a UserState>,
}

/// The decision for a request by `username` (uid `uid`) through session `session`, given what
/// was `seen`. Pure.
pub fn decide(username: &str, uid: Option<&str>, session: Option<&str>, seen: Seen<'_>) -> Decision {
    if parse_username(username).is_none() {
        return Decision::NoOpinion;
    }
    let Some(_) = session else { return Decision::Deny("the token names no Infra session".into()) };
    if !seen.session_exists {
        return Decision::Deny("the Infra session has ended (logged out, expired or revoked); run `infra login`".into());
    }
    if !seen.provider_live {
        return Decision::Deny("the user's identity provider was removed from Infra".into());
    }
    match seen.user {
        None => Decision::Deny("the user no longer exists in Infra".into()),
        Some(u) if uid.is_some_and(|uid| uid != u.uid) => {
            Decision::Deny("the user was deleted and created again; run `infra login`".into())
        }
        Some(u) if !u.active => Decision::Deny("the user is deactivated in the identity provider".into()),
        Some(_) => Decision::NoOpinion,
    }
}

#[derive(Deserialize)]
struct Review {
    #[serde(default)]
    spec: ReviewSpec,
}

#[derive(Deserialize, Default)]
struct ReviewSpec {
    #[serde(default)]
    user: String,
    #[serde(default)]
    uid: Option<String>,
    #[serde(default)]
    extra: std::collections::BTreeMap<String, Vec<String>>,
}

impl Revocations {
    async fn session_exists(&self, id: &str) -> bool {
        // A Session being deleted has ended.
        let live = |m: &PartialObjectMeta<Session>| m.metadata.deletion_timestamp.is_none();
        if let Some(cached) = self.sessions.live(id) {
            return cached;
        }
        // A miss may be a session created a moment ago: ask the API server before denying. If it
        // cannot answer, the cache's answer stands. (Not a session id: no such session.)
        crate::keys::is_id(id) && matches!(self.session_api.get_metadata_opt(id).await, Ok(Some(m)) if live(&m))
    }

    async fn user(&self, provider: &str, user_name: &str) -> Option<UserState> {
        let state = |u: &User| UserState { uid: u.metadata.uid.clone().unwrap_or_default(), active: u.spec.is_active() };
        let cached = self.directory.read().user_access(provider, user_name).map(|(uid, active)| UserState { uid: uid.to_string(), active });
        if cached.is_some() {
            return cached;
        }
        self.user_api.get_opt(&user_object_name(provider, user_name)).await.ok().flatten().as_ref().map(state)
    }

    async fn provider_live(&self, name: &str) -> bool {
        let live = |p: &IdentityProvider| p.metadata.deletion_timestamp.is_none();
        if let Some(cached) = self.providers.get(name) {
            return live(&cached);
        }
        // Providers exist long before anyone's token does, so a miss is almost always a removed
        // one; the API server settles a cache that has not caught up yet.
        matches!(self.provider_api.get_opt(name).await, Ok(Some(p)) if live(&p))
    }

    pub async fn review(&self, username: &str, uid: Option<&str>, session: Option<&str>) -> Decision {
        let Some((provider, user_name)) = parse_username(username) else { return Decision::NoOpinion };
        let session_exists = match session {
            Some(id) => self.session_exists(id).await,
            None => false,
        };
        let provider_live = session_exists && self.provider_live(provider).await;
        let user = if provider_live { self.user(provider, user_name).await } else { None };
        decide(username, uid, session, Seen { session_exists, provider_live, user: user.as_ref() })
    }
}

pub async fn authorize(State(r): State<Arc<Revocations>>, body: Bytes) -> Response {
    let review: Review = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("not a SubjectAccessReview: {e}\n")).into_response(),
    };
    let s = &review.spec;
    let session = s.extra.get(SESSION_EXTRA).and_then(|v| v.first()).map(String::as_str);
    let decision = r.review(&s.user, s.uid.as_deref(), session).await;
    let status: Value = match &decision {
        Decision::NoOpinion => json!({"allowed": false}),
        Decision::Deny(reason) => {
            tracing::info!(user = %s.user, session, reason = %reason, "denied a request of a revoked identity");
            json!({"allowed": false, "denied": true, "reason": reason})
        }
    };
    Json(json!({"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview", "status": status})).into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deny_only_what_was_revoked() {
        let active = UserState { uid: "u1".into(), active: true };
        let inactive = UserState { uid: "u1".into(), active: false };
        let user = "infra:okta:alice@example.com";
        let seen = |user| Seen { session_exists: true, provider_live: true, user };
        let denied = |d: Decision, why: &str| matches!(d, Decision::Deny(r) if r.contains(why));
        assert_eq!(parse_username(user), Some(("okta", "alice@example.com")));
        assert_eq!(decide(user, Some("u1"), Some("s"), seen(Some(&active))), Decision::NoOpinion);
        let ended = Seen { session_exists: false, ..seen(Some(&active)) };
        assert!(denied(decide(user, Some("u1"), Some("s"), ended), "session has ended"));
        let removed = Seen { provider_live: false, ..seen(Some(&active)) };
        assert!(denied(decide(user, Some("u1"), Some("s"), removed), "identity provider was removed"));
        assert!(denied(decide(user, Some("u1"), Some("s"), seen(Some(&inactive))), "deactivated"));
        assert!(denied(decide(user, Some("u1"), Some("s"), seen(None)), "no longer exists"));
        assert!(denied(decide(user, Some("u2"), Some("s"), seen(Some(&active))), "created again"));
        assert!(denied(decide(user, Some("u1"), None, seen(Some(&active))), "names no Infra session"));
        // Everyone else is RBAC's business, whatever the caches say.
        let nothing = Seen { session_exists: false, provider_live: false, user: None };
        assert_eq!(decide("system:admin", None, None, nothing), Decision::NoOpinion);
        assert_eq!(decide("alice", None, None, nothing), Decision::NoOpinion);
    }
}
