//! The leader controller's side of the signing keys: creates the Secret, publishes the next key
//! ahead of its time and drops keys whose tokens have all expired (see [`KeySet::plan`]); and the
//! emergency rotation `infra-operator rotate-signing-keys`.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

use crate::api::labels;
use crate::kube_access::signing_keys::{DATA_KEY, KeyError, KeySet, Policy, SECRET_NAME, SECRET_TYPE, StoredKey};

/// How often the leader looks at the keys. Well below [`super::signing_keys::PUBLISH_AHEAD`], so
/// the next key is always published in time.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(20);
const MANAGER: &str = "infra-controller";

#[derive(Debug, thiserror::Error)]
pub enum RotationError {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Key(#[from] KeyError),
}

fn stored(secret: &Secret) -> KeySet {
    let bytes = secret.data.as_ref().and_then(|d| d.get(DATA_KEY)).map(|b| b.0.as_slice()).unwrap_or_default();
    KeySet::from_json(bytes).unwrap_or_else(|e| {
        // Unreadable keys cannot sign anything: start over with a new key.
        tracing::error!(secret = SECRET_NAME, error = %e, "the signing-key Secret is unreadable; replacing its keys");
        KeySet::default()
    })
}

/// Brings the Secret to what [`KeySet::plan`] says for now. A write that loses a race (another
/// leader, an emergency rotation) fails with 409 and is retried at the next check.
pub async fn reconcile(secrets: &Api<Secret>, policy: Policy) -> Result<(), RotationError> {
    let now = Timestamp::now();
    let existing = secrets.get_opt(SECRET_NAME).await?;
    let current = existing.as_ref().map(stored).unwrap_or_default();
    let Some(next) = current.plan(policy, now, |signs_from| StoredKey::generate(now, signs_from))? else { return Ok(()) };
    write(secrets, existing.as_ref(), &next).await?;
    let kids: Vec<(&str, String)> = next.keys.iter().map(|k| (k.kid.as_str(), k.signs_from.to_string())).collect();
    tracing::info!(secret = SECRET_NAME, keys = ?kids, "updated the issuer's signing keys");
    Ok(())
}

/// Replaces every key with one that signs at once: tokens signed before fail once the API
/// server refreshes the key set. For a leaked key.
pub async fn rotate_now(secrets: &Api<Secret>) -> Result<String, RotationError> {
    let existing = secrets.get_opt(SECRET_NAME).await?;
    let next = KeySet::rotate_now(Timestamp::now())?;
    write(secrets, existing.as_ref(), &next).await?;
    Ok(next.keys[0].kid.clone())
}

async fn write(secrets: &Api<Secret>, existing: Option<&Secret>, next: &KeySet) -> Result<(), kube::Error> {
    let data = ByteString(next.to_json());
    match existing {
        None => {
            let secret = Secret {
                metadata: kube::api::ObjectMeta {
                    name: Some(SECRET_NAME.into()),
                    labels: Some(BTreeMap::from([(labels::MANAGED_BY.to_string(), MANAGER.to_string())])),
                    ..Default::default()
                },
                type_: Some(SECRET_TYPE.into()),
                data: Some(BTreeMap::from([(DATA_KEY.to_string(), data)])),
                ..Default::default()
            };
            secrets.create(&PostParams { field_manager: Some(MANAGER.into()), ..Default::default() }, &secret).await?;
        }
        Some(secret) => {
            // Conditional on the version read, so two writers never drop each other's key.
            let patch = json!({"metadata": {"resourceVersion": secret.resource_version()}, "data": {DATA_KEY: data}});
            secrets
                .patch(SECRET_NAME, &PatchParams { field_manager: Some(MANAGER.into()), ..Default::default() }, &Patch::Merge(&patch))
                .await?;
        }
    }
    Ok(())
}

/// Runs [`reconcile`] every [`CHECK_INTERVAL`] until `stop`.
pub async fn run(secrets: Api<Secret>, policy: Policy, stop: impl std::future::Future<Output = ()>) {
    tokio::pin!(stop);
    loop {
        if let Err(e) = reconcile(&secrets, policy).await {
            tracing::warn!(secret = SECRET_NAME, error = %e, "could not update the signing keys; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(CHECK_INTERVAL) => {}
            _ = &mut stop => return,
        }
    }
}
