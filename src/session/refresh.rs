//! The Secrets that hold sessions' refresh tokens: `infra-session-<id>`, owned by Session `<id>`.
//! Only the controller reads or writes them. The controller stores a refresh token when it
//! redeems a login's code, before the server has created the Session (the server names the
//! session id in the redemption); the session reconciler then makes the Session the Secret's
//! owner, and a sweep removes Secrets whose login never became a session.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams, Patch};
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::{REFRESH_TOKEN_KEY, SECRET_TYPE, secret_name};
use crate::api::{Session as SessionObject, labels};
use crate::api_server::{FieldManager, Kube};

/// A refresh-token Secret no Session claimed within this long belongs to a login that failed
/// after its code was redeemed (a refused subject, a deactivated user): it is deleted.
pub const ORPHAN_AFTER: Duration = Duration::from_secs(600);

#[derive(Clone)]
pub struct RefreshTokens {
    pub secrets: Api<Secret>,
    manager: FieldManager,
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    secret.data.as_ref()?.get(key).and_then(|v| String::from_utf8(v.0.clone()).ok())
}

/// The reference that makes `session` own its Secret (deleted with it by the garbage collector).
pub fn owner(session: &SessionObject) -> Option<OwnerReference> {
    let mut owner = session.controller_owner_ref(&())?;
    owner.block_owner_deletion = Some(false);
    Some(owner)
}

/// Whether an unowned refresh-token Secret created at `created` is an orphan at `now`. Pure.
pub fn is_orphan(secret: &Secret, now: Timestamp) -> bool {
    let created = secret.metadata.creation_timestamp.as_ref().map(|t| t.0);
    secret.owner_references().is_empty()
        && created.is_some_and(|c| now.duration_since(c) >= k8s_openapi::jiff::SignedDuration::try_from(ORPHAN_AFTER).unwrap_or_default())
}

impl RefreshTokens {
    pub fn new(kube: &Kube) -> Self {
        Self { secrets: kube.api(), manager: kube.manager }
    }

    /// Stores the refresh token of session `id`, whose Session does not exist yet. Never
    /// overwrites: a second redemption naming the same session is refused (409).
    pub async fn store(&self, id: &str, provider: &str, refresh_token: &str) -> Result<(), kube::Error> {
        let secret = Secret {
            metadata: kube::api::ObjectMeta {
                name: Some(secret_name(id)),
                labels: Some(BTreeMap::from([
                    (labels::MANAGED_BY.to_string(), self.manager.name().to_string()),
                    (labels::SESSION.to_string(), id.to_string()),
                    (labels::PROVIDER.to_string(), provider.to_string()),
                ])),
                ..Default::default()
            },
            type_: Some(SECRET_TYPE.to_string()),
            data: Some(BTreeMap::from([(REFRESH_TOKEN_KEY.to_string(), ByteString(refresh_token.as_bytes().to_vec()))])),
            ..Default::default()
        };
        self.secrets.create(&self.manager.post(), &secret).await?;
        Ok(())
    }

    /// The Secret of session `id` and its refresh token, if it has one.
    pub async fn get(&self, id: &str) -> Result<Option<(Secret, String)>, kube::Error> {
        let Some(secret) = self.secrets.get_opt(&secret_name(id)).await? else { return Ok(None) };
        Ok(text(&secret, REFRESH_TOKEN_KEY).map(|t| (secret, t)))
    }

    /// Makes `session` the owner of its Secret, unless it already is. A Secret owned by something
    /// else is not this session's and is left alone (`false`).
    pub async fn adopt(&self, secret: &Secret, session: &SessionObject) -> Result<bool, kube::Error> {
        let uid = session.uid().unwrap_or_default();
        if secret.owner_references().iter().any(|o| o.uid == uid) {
            return Ok(true);
        }
        if !secret.owner_references().is_empty() || secret.labels().get(labels::SESSION) != Some(&session.name_any()) {
            return Ok(false);
        }
        let patch = json!({"metadata": {"resourceVersion": secret.resource_version(), "ownerReferences": [owner(session)]}});
        self.secrets.patch(&secret.name_any(), &self.manager.patch(), &Patch::Merge(&patch)).await?;
        Ok(true)
    }

    /// Replaces the refresh token with the one the provider rotated to. Conditional on the
    /// Secret's `resource_version`, so two writers never lose a rotated refresh token.
    pub async fn rotate(&self, secret: &Secret, refresh_token: &str) -> Result<(), kube::Error> {
        let encoded = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, refresh_token.as_bytes());
        let patch = json!({"metadata": {"resourceVersion": secret.resource_version()}, "data": {REFRESH_TOKEN_KEY: encoded}});
        self.secrets.patch(&secret.name_any(), &self.manager.patch(), &Patch::Merge(&patch)).await?;
        Ok(())
    }

    /// Deletes refresh tokens of logins that never became sessions. Returns how many.
    pub async fn sweep_orphans(&self, sessions: &Api<SessionObject>, now: Timestamp) -> Result<usize, kube::Error> {
        let list = self.secrets.list(&ListParams::default().labels(labels::SESSION)).await?;
        let mut removed = 0;
        for secret in list.items.iter().filter(|s| s.type_.as_deref() == Some(SECRET_TYPE) && is_orphan(s, now)) {
            let Some(id) = secret.labels().get(labels::SESSION) else { continue };
            if sessions.get_metadata_opt(id).await?.is_some() {
                continue; // Its session exists; the reconciler adopts the Secret.
            }
            let precondition = kube::api::Preconditions { resource_version: secret.resource_version(), uid: None };
            match self.secrets.delete(&secret.name_any(), &DeleteParams { preconditions: Some(precondition), ..Default::default() }).await {
                Ok(_) => removed += 1,
                Err(kube::Error::Api(s)) if s.code == 404 || s.code == 409 => {}
                Err(e) => return Err(e),
            }
        }
        Ok(removed)
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    use super::*;

    #[test]
    fn only_old_unowned_secrets_are_orphans() {
        let at = |s: i64| Timestamp::from_second(1_800_000_000 + s).unwrap();
        let mut secret = Secret::default();
        secret.metadata.creation_timestamp = Some(Time(at(0)));
        assert!(!is_orphan(&secret, at(599)), "a login may still be creating its session");
        assert!(is_orphan(&secret, at(600)));
        secret.metadata.owner_references = Some(vec![OwnerReference { uid: "s".into(), ..Default::default() }]);
        assert!(!is_orphan(&secret, at(6000)), "owned by its Session");
    }
}
