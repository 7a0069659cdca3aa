//! Session Secrets in the API server. Every read goes to the API server, not a cache, so a
//! session revoked on one replica is refused by every replica at once.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;
use sha2::{Digest, Sha256};

use crate::api_server::{FieldManager, Kube};

use super::{Policy, RECORD_KEY, REFRESH_TOKEN_KEY, SECRET_TYPE, SessionRecord, TOKEN_HASH_KEY, Verdict, secret_name};
use crate::api::{User, annotations, labels};
use crate::keys;

/// A valid session. `Debug` leaves the refresh token out.
#[derive(Clone)]
pub struct Session {
    pub id: String,
    pub record: SessionRecord,
    pub last_seen: Timestamp,
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").field("id", &self.id).field("record", &self.record).finish_non_exhaustive()
    }
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
    pub secrets: Api<Secret>,
    pub policy: Policy,
    manager: FieldManager,
}

/// Label values are at most 63 characters: 40 hex digits of SHA-256 are plenty to tell nonces apart.
pub fn nonce_hash(nonce: &str) -> String {
    keys::hex(&Sha256::digest(nonce.as_bytes()))[..40].to_string()
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    secret.data.as_ref()?.get(key).and_then(|v| String::from_utf8(v.0.clone()).ok())
}

/// The session a Secret describes, if it is a well-formed session Secret.
pub fn parse(secret: &Secret) -> Option<Session> {
    let id = secret.labels().get(labels::SESSION)?.clone();
    let record: SessionRecord = serde_json::from_str(&text(secret, RECORD_KEY)?).ok()?;
    let last_seen = secret.annotations().get(annotations::LAST_SEEN).and_then(|t| t.parse().ok()).unwrap_or(record.created_at);
    Some(Session { id, record, last_seen, refresh_token: text(secret, REFRESH_TOKEN_KEY) })
}

impl SessionStore {
    pub fn new(kube: &Kube, policy: Policy) -> Self {
        Self { secrets: kube.api(), policy, manager: kube.manager }
    }

    /// Refuses a nonce that already opened a session: each login's nonce is good for one session.
    /// Checked before the code is redeemed, so a replay changes nothing.
    pub async fn ensure_nonce_unused(&self, nonce: &str) -> Result<(), SessionError> {
        let selector = format!("{}={}", labels::NONCE_HASH, nonce_hash(nonce));
        let used = self.secrets.list_metadata(&ListParams::default().labels(&selector)).await?;
        if used.items.is_empty() { Ok(()) } else { Err(SessionError::NonceReused) }
    }

    /// Starts a session for `user` and returns its token (shown once, stored only as a hash).
    pub async fn create(
        &self,
        user: &User,
        nonce: &str,
        refresh_token: Option<&str>,
        binding: &crate::oidc::ProviderBinding,
        now: Timestamp,
    ) -> Result<(String, SessionRecord), SessionError> {
        let nonce_label = nonce_hash(nonce);
        let key = keys::generate_with(keys::SESSION_PREFIX)?;
        let record = self.policy.new_record(&user.spec.user_name, &user.name_any(), &user.spec.provider_ref.name, binding, now);
        let mut data = BTreeMap::from([
            (RECORD_KEY.to_string(), ByteString(serde_json::to_vec(&record).expect("record serializes"))),
            (TOKEN_HASH_KEY.to_string(), ByteString(keys::hash_hex(&key.token).into_bytes())),
        ]);
        if let Some(rt) = refresh_token {
            data.insert(REFRESH_TOKEN_KEY.to_string(), ByteString(rt.as_bytes().to_vec()));
        }
        let mut owner = user.controller_owner_ref(&()).ok_or(SessionError::Unknown)?;
        owner.controller = Some(false);
        owner.block_owner_deletion = Some(false);
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(secret_name(&key.id)),
                labels: Some(BTreeMap::from([
                    (labels::MANAGED_BY.to_string(), self.manager.name().to_string()),
                    (labels::SESSION.to_string(), key.id.clone()),
                    (labels::PROVIDER.to_string(), record.provider.clone()),
                    (labels::USER.to_string(), record.user_object.clone()),
                    (labels::NONCE_HASH.to_string(), nonce_label),
                ])),
                annotations: Some(BTreeMap::from([(annotations::LAST_SEEN.to_string(), now.to_string())])),
                owner_references: Some(vec![owner]),
                ..Default::default()
            },
            type_: Some(SECRET_TYPE.to_string()),
            data: Some(data),
            ..Default::default()
        };
        self.secrets.create(&self.manager.post(), &secret).await?;
        Ok((key.token.clone(), record))
    }

    /// The session `token` names, if the token is genuine and the session has not ended. An ended
    /// session is deleted on the way.
    pub async fn authenticate(&self, token: &str, now: Timestamp) -> Result<Session, SessionError> {
        let id = keys::parse_id_with(keys::SESSION_PREFIX, token).ok_or(SessionError::Unknown)?;
        let secret = self.secrets.get_opt(&secret_name(id)).await?.ok_or(SessionError::Unknown)?;
        let stored_hash = text(&secret, TOKEN_HASH_KEY).ok_or(SessionError::Unknown)?;
        if !keys::verify_hash(token, &stored_hash) {
            return Err(SessionError::Unknown);
        }
        let mut session = parse(&secret).ok_or(SessionError::Unknown)?;
        let verdict = self.policy.evaluate(&session.record, session.last_seen, now);
        if verdict != Verdict::Valid {
            self.delete(id).await?;
            return Err(SessionError::Ended(verdict));
        }
        if self.policy.should_touch(session.last_seen, now) {
            let patch = json!({"metadata": {"annotations": {annotations::LAST_SEEN: now.to_string()}}});
            self.secrets.patch(&secret.name_any(), &self.manager.patch(), &Patch::Merge(&patch)).await?;
            session.last_seen = now;
        }
        Ok(session)
    }

    /// Ends session `id` everywhere. Ending a session that is already gone is not an error.
    pub async fn delete(&self, id: &str) -> Result<(), kube::Error> {
        match self.secrets.delete(&secret_name(id), &DeleteParams::default()).await {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Records a confirmation by the provider, and the refresh token it rotated to. Conditional on
    /// `resource_version`, so two writers never lose a rotated refresh token.
    pub async fn record_check(&self, secret: &Secret, record: &SessionRecord, new_refresh_token: Option<&str>) -> Result<(), kube::Error> {
        let mut data = serde_json::Map::new();
        let encode = |b: &[u8]| json!(base64::Engine::encode(&base64::engine::general_purpose::STANDARD, b));
        data.insert(RECORD_KEY.into(), encode(&serde_json::to_vec(record).expect("record serializes")));
        if let Some(rt) = new_refresh_token {
            data.insert(REFRESH_TOKEN_KEY.into(), encode(rt.as_bytes()));
        }
        let patch = json!({"metadata": {"resourceVersion": secret.resource_version()}, "data": data});
        self.secrets.patch(&secret.name_any(), &self.manager.patch(), &Patch::Merge(&patch)).await?;
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
