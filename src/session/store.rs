//! Sessions in the API server. Every read goes to the API server, not a cache, so a session
//! revoked on one replica is refused by every replica at once.

use std::collections::BTreeMap;

use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::api::{Session as SessionObject, SessionSpec, User, annotations, labels};
use crate::api_server::{FieldManager, Kube};
use crate::keys::{self, GeneratedKey};

use super::{Policy, SessionRecord, Verdict};

/// A valid session.
#[derive(Clone, Debug)]
pub struct Session {
    pub id: String,
    pub record: SessionRecord,
    pub last_seen: Timestamp,
}

#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("the session token is not valid (it may have been revoked by logging out)")]
    Unknown,
    #[error("{}", .0.describe())]
    Ended(Verdict),
    #[error("this login's nonce was already used for a session; start a new login")]
    NonceReused,
    #[error("storing the session failed: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Random(#[from] keys::RandomError),
}

#[derive(Clone)]
pub struct SessionStore {
    pub sessions: Api<SessionObject>,
    pub policy: Policy,
    manager: FieldManager,
}

/// Label values are at most 63 characters: 40 hex digits of SHA-256 are plenty to tell nonces apart.
pub fn nonce_hash(nonce: &str) -> String {
    keys::hex(&Sha256::digest(nonce.as_bytes()))[..40].to_string()
}

/// The session a Session object describes, if it is well formed.
pub fn parse(object: &SessionObject) -> Option<Session> {
    let id = object.labels().get(labels::SESSION)?.clone();
    let record = object.spec.record.clone();
    let last_seen = object.annotations().get(annotations::LAST_SEEN).and_then(|t| t.parse().ok()).unwrap_or(record.created_at);
    Some(Session { id, record, last_seen })
}

impl SessionStore {
    pub fn new(kube: &Kube, policy: Policy) -> Self {
        Self { sessions: kube.api(), policy, manager: kube.manager }
    }

    /// Refuses a nonce that already opened a session: each login's nonce is good for one session.
    /// Checked before the code is redeemed, so a replay changes nothing.
    pub async fn ensure_nonce_unused(&self, nonce: &str) -> Result<(), SessionError> {
        let selector = format!("{}={}", labels::NONCE_HASH, nonce_hash(nonce));
        let used = self.sessions.list_metadata(&ListParams::default().labels(&selector)).await?;
        if used.items.is_empty() { Ok(()) } else { Err(SessionError::NonceReused) }
    }

    /// A new session id and token, for a session to be started with [`Self::create_with_key`]
    /// (a login hands the id to the controller first, which stores the refresh token under it).
    pub fn new_key(&self) -> Result<GeneratedKey, SessionError> {
        Ok(keys::generate_with(keys::SESSION_PREFIX)?)
    }

    /// Starts a session for `user` and returns its token (shown once, stored only as a hash).
    pub async fn create(
        &self,
        user: &User,
        nonce: &str,
        binding: &crate::oidc::ProviderBinding,
        now: Timestamp,
    ) -> Result<(String, SessionRecord), SessionError> {
        self.create_with_key(self.new_key()?, user, nonce, binding, now).await
    }

    /// [`Self::create`] with the id and token from [`Self::new_key`].
    pub async fn create_with_key(
        &self,
        key: GeneratedKey,
        user: &User,
        nonce: &str,
        binding: &crate::oidc::ProviderBinding,
        now: Timestamp,
    ) -> Result<(String, SessionRecord), SessionError> {
        let record = self.policy.new_record(&user.spec.user_name, &user.name_any(), &user.spec.provider_ref.name, binding, now);
        let mut owner = user.controller_owner_ref(&()).ok_or(SessionError::Unknown)?;
        owner.controller = Some(false);
        owner.block_owner_deletion = Some(false);
        let mut object = SessionObject::new(&key.id, SessionSpec { record: record.clone(), token_hash: keys::hash_hex(&key.token) });
        object.metadata.labels = Some(BTreeMap::from([
            (labels::MANAGED_BY.to_string(), self.manager.name().to_string()),
            (labels::SESSION.to_string(), key.id.clone()),
            (labels::PROVIDER.to_string(), record.provider.clone()),
            (labels::USER.to_string(), record.user_object.clone()),
            (labels::NONCE_HASH.to_string(), nonce_hash(nonce)),
        ]));
        object.metadata.annotations = Some(BTreeMap::from([(annotations::LAST_SEEN.to_string(), now.to_string())]));
        object.metadata.owner_references = Some(vec![owner]);
        self.sessions.create(&self.manager.post(), &object).await?;
        Ok((key.token.clone(), record))
    }

    /// The session `token` names, if the token is genuine and the session has not ended. An ended
    /// session is deleted on the way.
    pub async fn authenticate(&self, token: &str, now: Timestamp) -> Result<Session, SessionError> {
        let id = keys::parse_id_with(keys::SESSION_PREFIX, token).ok_or(SessionError::Unknown)?;
        // A Session being deleted (`kubectl delete --cascade=foreground` keeps it until its
        // Secret is gone) has ended.
        let object = self.sessions.get_opt(id).await?.filter(|o| o.metadata.deletion_timestamp.is_none()).ok_or(SessionError::Unknown)?;
        if !keys::verify_hash(token, &object.spec.token_hash) {
            return Err(SessionError::Unknown);
        }
        let mut session = parse(&object).filter(|s| s.id == id).ok_or(SessionError::Unknown)?;
        let verdict = self.policy.evaluate(&session.record, session.last_seen, now);
        if verdict != Verdict::Valid {
            self.delete(id).await?;
            return Err(SessionError::Ended(verdict));
        }
        if self.policy.should_touch(session.last_seen, now) {
            let patch = json!({"metadata": {"annotations": {annotations::LAST_SEEN: now.to_string()}}});
            self.sessions.patch(id, &self.manager.patch(), &Patch::Merge(&patch)).await?;
            session.last_seen = now;
        }
        Ok(session)
    }

    /// Ends session `id` everywhere (its refresh-token Secret goes with it: the Session owns it).
    /// Ending a session that is already gone is not an error.
    pub async fn delete(&self, id: &str) -> Result<(), kube::Error> {
        match self.sessions.delete(id, &DeleteParams::background()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Records a confirmation by the provider. Conditional on `resource_version`, so a stale
    /// reconcile never overwrites a newer check.
    pub async fn record_check(&self, object: &SessionObject, record: &SessionRecord) -> Result<(), kube::Error> {
        let patch = json!({"metadata": {"resourceVersion": object.resource_version()}, "spec": {"checkedAt": record.checked_at}});
        self.sessions.patch(&object.name_any(), &self.manager.patch(), &Patch::Merge(&patch)).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nonce_hashes_fit_in_a_label() {
        let h = nonce_hash("n-0S6_WzA2Mj");
        assert_eq!(h.len(), 40);
        assert!(h.bytes().all(|b| b.is_ascii_hexdigit()));
        assert_ne!(h, nonce_hash("n-0S6_WzA2Mk"));
    }
}
