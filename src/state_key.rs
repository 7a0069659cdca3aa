//! The Secret with the key every server replica signs login state with. The controller creates it
//! at start (so the internet-facing server needs no `create` on Secrets); the servers read it by
//! name, waiting for the controller if they start first.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::api::labels;
use crate::api_server::FieldManager;

pub const SECRET_NAME: &str = "infra-login-state-key";
pub const DATA_KEY: &str = "key";
/// Bytes of the key (HMAC-SHA256).
pub const KEY_LEN: usize = 32;

/// Creates the key unless it exists (two replicas racing: the loser gets 409, which is fine).
pub async fn ensure(secrets: &Api<Secret>) -> anyhow::Result<()> {
    if secrets.get_metadata_opt(SECRET_NAME).await?.is_some() {
        return Ok(());
    }
    let mut key = [0u8; KEY_LEN];
    getrandom::fill(&mut key).map_err(|e| anyhow::anyhow!("random source: {e}"))?;
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(SECRET_NAME.into()),
            labels: Some(BTreeMap::from([
                (labels::MANAGED_BY.to_string(), FieldManager::CONTROLLER.name().to_string()),
                (labels::LOGIN_STATE_KEY.to_string(), "true".to_string()),
            ])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(DATA_KEY.to_string(), ByteString(key.to_vec()))])),
        ..Default::default()
    };
    match secrets.create(&FieldManager::CONTROLLER.post(), &secret).await {
        Ok(_) => {
            tracing::info!(secret = SECRET_NAME, "generated the login state key");
            Ok(())
        }
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// The key's bytes, waiting (up to `patience`) for the controller to create it.
pub async fn read(secrets: &Api<Secret>, patience: Duration) -> anyhow::Result<Vec<u8>> {
    let started = std::time::Instant::now();
    loop {
        if let Some(secret) = secrets.get_opt(SECRET_NAME).await? {
            return Ok(secret.data.as_ref().and_then(|d| d.get(DATA_KEY)).map(|b| b.0.clone()).unwrap_or_default());
        }
        if started.elapsed() >= patience {
            anyhow::bail!("Secret {SECRET_NAME} does not exist: the controller creates it when it starts; is the controller running?");
        }
        tracing::info!(secret = SECRET_NAME, "waiting for the controller to create the login state key");
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}
