//! Deletes device logins (`DeviceAuthorization`) that expired and that nobody polled again, so
//! abandoned `infra login --device` runs leave nothing behind. The server deletes the ones it
//! meets expired; this sweep, on the leader, catches the rest.

use std::future::Future;
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, ListParams};
use kube::{Api, ResourceExt};

use crate::api::DeviceAuthorization;

const EVERY: Duration = Duration::from_secs(60);

/// Deletes every authorization past its expiry plus the grace period; returns how many.
pub async fn sweep(api: &Api<DeviceAuthorization>, now: Timestamp) -> Result<usize, kube::Error> {
    let mut deleted = 0;
    for auth in api.list(&ListParams::default()).await?.items.iter().filter(|a| a.spec.is_sweepable(now)) {
        match api.delete(&auth.name_any(), &DeleteParams::default()).await {
            Ok(_) => deleted += 1,
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(e),
        }
    }
    Ok(deleted)
}

/// Sweeps every minute until `stop`.
pub async fn run(api: Api<DeviceAuthorization>, stop: impl Future<Output = ()>) {
    let sweeping = async {
        loop {
            match sweep(&api, Timestamp::now()).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(deleted = n, "removed expired device logins"),
                Err(e) => tracing::warn!(error = %e, "sweeping expired device logins failed"),
            }
            tokio::time::sleep(EVERY).await;
        }
    };
    tokio::select! {
        _ = sweeping => {}
        _ = stop => {}
    }
}
