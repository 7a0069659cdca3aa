//! Sessions of earlier versions were whole Secrets `infra-session-<id>` (record, token hash and
//! refresh token). The controller moves each to a Session and keeps only the refresh token in the
//! Secret, now owned by the Session; a Secret without a refresh token is deleted. Logins stay
//! valid through the upgrade. Repeated until no legacy Secret is left (an old server replica may
//! still create one during a rolling upgrade).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, ListParams, Patch};
use kube::{Api, ResourceExt};
use serde_json::json;

use super::{REFRESH_TOKEN_KEY, SessionRecord};
use crate::api::{Session as SessionObject, SessionSpec, annotations, labels};
use crate::api_server::FieldManager;

/// Data keys of a session Secret of earlier versions.
pub const RECORD_KEY: &str = "session";
pub const TOKEN_HASH_KEY: &str = "tokenHash";

fn text(secret: &Secret, key: &str) -> Option<String> {
    secret.data.as_ref()?.get(key).and_then(|v| String::from_utf8(v.0.clone()).ok())
}

/// The Session a legacy session Secret describes, if it is one. Pure.
pub fn convert(secret: &Secret) -> Option<SessionObject> {
    let id = secret.labels().get(labels::SESSION)?;
    let record: SessionRecord = serde_json::from_str(&text(secret, RECORD_KEY)?).ok()?;
    let token_hash = text(secret, TOKEN_HASH_KEY)?;
    let mut object = SessionObject::new(id, SessionSpec { record, token_hash });
    let kept = [labels::MANAGED_BY, labels::SESSION, labels::PROVIDER, labels::USER, labels::NONCE_HASH];
    object.metadata.labels =
        Some(secret.labels().iter().filter(|(k, _)| kept.contains(&k.as_str())).map(|(k, v)| (k.clone(), v.clone())).collect());
    let last_seen = secret.annotations().get(annotations::LAST_SEEN);
    object.metadata.annotations = last_seen.map(|t| BTreeMap::from([(annotations::LAST_SEEN.to_string(), t.clone())]));
    // Owned by its User, as the Secret was.
    object.metadata.owner_references = secret.metadata.owner_references.clone();
    Some(object)
}

/// Moves every legacy session Secret over. Returns how many were moved.
pub async fn migrate(secrets: &Api<Secret>, sessions: &Api<SessionObject>, manager: FieldManager) -> Result<usize, kube::Error> {
    let list = secrets.list(&ListParams::default().labels(labels::SESSION)).await?;
    let mut moved = 0;
    for secret in &list.items {
        let Some(object) = convert(secret) else { continue };
        let id = object.name_any();
        let session = match sessions.create(&manager.post(), &object).await {
            Ok(s) => s,
            // Moved by an earlier attempt that stopped before the Secret was rewritten.
            Err(kube::Error::Api(s)) if s.code == 409 => sessions.get(&id).await?,
            Err(e) => return Err(e),
        };
        let result = if text(secret, REFRESH_TOKEN_KEY).is_some() {
            let patch = json!({
                "metadata": {"resourceVersion": secret.resource_version(), "ownerReferences": [super::refresh::owner(&session)],
                             "annotations": {annotations::LAST_SEEN: null}},
                "data": {RECORD_KEY: null, TOKEN_HASH_KEY: null},
            });
            secrets.patch(&secret.name_any(), &manager.patch(), &Patch::Merge(&patch)).await.map(|_| ())
        } else {
            let precondition = kube::api::Preconditions { resource_version: secret.resource_version(), uid: None };
            secrets.delete(&secret.name_any(), &DeleteParams { preconditions: Some(precondition), ..Default::default() }).await.map(|_| ())
        };
        match result {
            Ok(()) => {}
            // Changed meanwhile (a last-seen touch by an old replica): the next round moves it.
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 404 => continue,
            Err(e) => return Err(e),
        }
        tracing::info!(session = %id, user = %session.spec.record.user, "moved a session of an earlier version to a Session");
        moved += 1;
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::ByteString;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

    use super::*;

    #[test]
    fn a_legacy_secret_becomes_a_session_without_its_refresh_token() {
        let record = r#"{"user":"alice@example.com","userObject":"u-1","provider":"okta","createdAt":"2026-01-01T00:00:00Z","expiresAt":"2026-01-01T12:00:00Z","issuer":"https://idp","tokenEndpoint":"https://idp/token"}"#;
        let mut secret = Secret::default();
        secret.metadata.labels = Some(BTreeMap::from([
            (labels::SESSION.to_string(), "abc123def456".to_string()),
            (labels::PROVIDER.to_string(), "okta".to_string()),
            ("unrelated".to_string(), "x".to_string()),
        ]));
        secret.metadata.annotations = Some(BTreeMap::from([(annotations::LAST_SEEN.to_string(), "2026-01-01T01:00:00Z".to_string())]));
        secret.metadata.owner_references =
            Some(vec![OwnerReference { kind: "User".into(), name: "u-1".into(), uid: "uid".into(), ..Default::default() }]);
        let data = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec()))).collect();
        secret.data = Some(data(&[(RECORD_KEY, record), (TOKEN_HASH_KEY, "ab12"), (REFRESH_TOKEN_KEY, "rt-secret")]));
        let s = convert(&secret).unwrap();
        assert_eq!(s.name_any(), "abc123def456");
        assert_eq!(s.spec.token_hash, "ab12");
        assert_eq!(s.spec.record.user, "alice@example.com");
        assert_eq!(s.labels().get("unrelated"), None);
        assert_eq!(s.owner_references()[0].name, "u-1");
        assert_eq!(s.annotations()[annotations::LAST_SEEN], "2026-01-01T01:00:00Z");
        assert!(!serde_json::to_string(&s).unwrap().contains("rt-secret"), "the refresh token stays in the Secret");
        // A refresh-token Secret of this version is not a legacy session.
        secret.data = Some(data(&[(REFRESH_TOKEN_KEY, "rt-secret")]));
        assert!(convert(&secret).is_none());
    }
}
