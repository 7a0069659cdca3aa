//! What every reconciler shares, and the Kubernetes writes they all make.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::{Patch, PatchParams};
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Api, Client, Resource, ResourceExt};
use serde::Serialize;

use crate::api::conditions::Check;
use crate::config::OperatorArgs;
use crate::metrics::Metrics;
use crate::oidc::ProviderHttp;

/// The field manager the controller writes with, distinct from the CLI's and the server's so that
/// server-side apply shows who owns what.
pub const FIELD_MANAGER: &str = "infra-controller";

pub struct Context {
    pub client: Client,
    pub args: OperatorArgs,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Trusts public roots plus the operator's extra CA file.
    pub http: ProviderHttp,
    pub extra_ca: Option<Vec<u8>>,
    pub recheck_interval: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("{0}")]
    Other(String),
}

impl Context {
    pub fn new(
        client: Client,
        args: OperatorArgs,
        recorder: Recorder,
        metrics: Arc<Metrics>,
        http: ProviderHttp,
        extra_ca: Option<Vec<u8>>,
        recheck_interval: Duration,
    ) -> Self {
        Self { client, args, recorder, metrics, http, extra_ca, recheck_interval, failures: Mutex::default() }
    }

    /// Exponential backoff per object for failures that may heal on their own (an unreachable
    /// provider): 5 s, 10 s, 20 s … capped at 5 minutes.
    pub fn backoff(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().expect("backoff lock poisoned");
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        backoff_for(*n)
    }

    pub fn reset_backoff(&self, key: &str) {
        self.failures.lock().expect("backoff lock poisoned").remove(key);
    }

    /// Writes `status` with server-side apply, so only the fields the controller owns change.
    pub async fn apply_status<K, S>(&self, obj: &K, status: &S) -> Result<(), Error>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
        S: Serialize,
    {
        let api: Api<K> = Api::namespaced(self.client.clone(), &obj.namespace().unwrap_or_default());
        let patch = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        api.patch_status(&obj.name_any(), &PatchParams::apply(FIELD_MANAGER).force(), &Patch::Apply(&patch)).await?;
        Ok(())
    }

    /// Records a condition change as an Event on `obj`. Failures to record are logged, never
    /// fatal: an Event is a trace, not state.
    pub async fn record<K: Resource<DynamicType = ()>>(&self, obj: &K, check: &Check) {
        let event = Event {
            type_: if check.status == crate::api::conditions::FALSE { EventType::Warning } else { EventType::Normal },
            reason: check.reason.to_string(),
            note: Some(truncate(&format!("{}: {}", check.type_, check.message), 1000)),
            action: format!("Check{}", check.type_),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason = check.reason, "could not record event");
        }
    }
}

pub fn backoff_for(failures: u32) -> Duration {
    let secs = 5u64.saturating_mul(1u64 << failures.saturating_sub(1).min(10));
    Duration::from_secs(secs.min(300))
}

pub fn now() -> Timestamp {
    Timestamp::now()
}

fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_caps() {
        assert_eq!(backoff_for(1), Duration::from_secs(5));
        assert_eq!(backoff_for(2), Duration::from_secs(10));
        assert_eq!(backoff_for(4), Duration::from_secs(40));
        assert_eq!(backoff_for(7), Duration::from_secs(300));
        assert_eq!(backoff_for(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("ééé", 3), "é…");
    }
}
