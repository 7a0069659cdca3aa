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

/// A session with what checking a token against it needs ([`super::check`]).
#[derive(Clone, Debug)]
pub struct Stored {
    pub session: Session,
    /// SHA-256 of the session's token.
    pub token_hash: [u8; 32],
    /// UID of the User the session was started for: its owner.
    pub owner_uid: Option<String>,
}

impl Stored {
    /// `None` for an object that is not a well-formed session: its label must name the object
    /// itself, and its hash must be one.
    pub fn from_object(object: &SessionObject) -> Option<Self> {
        let session = parse(object).filter(|s| object.metadata.name.as_deref() == Some(s.id.as_str()))?;
        let token_hash = keys::unhex_hash(&object.spec.token_hash)?;
        let owner_uid = object.owner_references().iter().find(|o| o.kind == "User").map(|o| o.uid.clone());
        Some(Self { session, token_hash, owner_uid })
    }
}

/// The session id a token names, if it is a session token at all.
pub fn token_id(token: &str) -> Result<&str, SessionError> {
    keys::parse_id_with(keys::SESSION_PREFIX, token).ok_or(SessionError::Unknown)
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

    /// Session `id` from the API server; `None` if there is none, or it is being deleted
    /// (`kubectl delete --cascade=foreground` keeps it until its Secret is gone), or malformed.
    pub async fn read(&self, id: &str) -> Result<Option<Stored>, kube::Error> {
        let object = self.sessions.get_opt(id).await?.filter(|o| o.metadata.deletion_timestamp.is_none());
        Ok(object.as_ref().and_then(Stored::from_object))
    }

    /// Moves session `id`'s last-seen time to `now`, in the background: the request that used the
    /// session need not wait for the write, and a failed one is tried again at the next use.
    pub fn touch(&self, id: &str, now: Timestamp) {
        let (sessions, params, id) = (self.sessions.clone(), self.manager.patch(), id.to_string());
        tokio::spawn(async move {
            let patch = json!({"metadata": {"annotations": {annotations::LAST_SEEN: now.to_string()}}});
            match sessions.patch(&id, &params, &Patch::Merge(&patch)).await {
                Ok(_) => {}
                // Ended in the meantime: nothing to note.
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => tracing::warn!(session = %id, error = %e, "could not note the session's use"),
            }
        });
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
