//! What every reconciler shares (one context for all of them), their error type, and the
//! Kubernetes writes they all make.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use k8s_openapi::jiff::Timestamp;
use kube::api::Patch;
use kube::core::PartialObjectMeta;
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::Store;
use kube::{Api, Resource, ResourceExt};
use serde::Serialize;

use crate::api::User;
use crate::api::conditions::{Check, Reason};
use crate::api_server::Kube;
use crate::config::OperatorArgs;
use crate::metrics::Metrics;
use crate::oidc::ProviderHttp;
use crate::oidc::login::ProviderAccess;
use crate::session::SessionStore;

pub struct Context {
    /// The controller's client, namespace and field manager (`infra-controller`).
    pub kube: Kube,
    pub args: OperatorArgs,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    /// Trusts public roots plus the operator's extra CA file.
    pub http: ProviderHttp,
    pub extra_ca: Option<Vec<u8>>,
    /// How often a Ready provider is checked again.
    pub recheck_interval: Duration,
    /// Metadata of every User (the SCIM id is a label), kept by a watch: group membership is
    /// judged against it.
    pub users: Store<PartialObjectMeta<User>>,
    /// Acting as the client of a provider, to re-check sessions with it.
    pub access: ProviderAccess,
    pub sessions: SessionStore,
    /// The sessions' refresh tokens (Secrets only the controller reads).
    pub refresh_tokens: crate::session::refresh::RefreshTokens,
    pub backoff: Backoff,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("generating a key: {0}")]
    Random(#[from] crate::keys::RandomError),
    #[error("spec.expiresAfter {0:?} is not a valid duration")]
    InvalidExpiry(String),
    #[error("the user cache has not synced yet")]
    UsersNotSynced,
    #[error("finalizer: {0}")]
    Finalizer(String),
}

impl Error {
    /// A 409 from the API server: the object changed since it was read.
    pub fn is_conflict(&self) -> bool {
        matches!(self, Error::Kube(kube::Error::Api(s)) if s.code == 409)
    }

    /// The error's class, a fixed label for the `infra_reconcile_errors` metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube(_) => "kube",
            Error::Random(_) => "random",
            Error::InvalidExpiry(_) => "invalid_expiry",
            Error::UsersNotSynced => "users_not_synced",
            Error::Finalizer(_) => "finalizer",
        }
    }
}

/// The error policy of every reconciler: log, count by kind and error class, and retry with
/// exponential backoff per object.
pub fn error_policy<K: Resource<DynamicType = ()>>(kind: &'static str, obj: &K, err: &Error, ctx: &Context) -> Action {
    if err.is_conflict() {
        // Someone else wrote the object since it was read: routine, retried at once from fresh state.
        tracing::debug!(kind, name = %obj.name_any(), error = %err, "reconcile raced another write; retrying");
    } else {
        tracing::warn!(kind, name = %obj.name_any(), error = %err, "reconcile failed");
    }
    ctx.metrics.reconcile_failed(kind, err.metric_label());
    Action::requeue(ctx.backoff.next(&format!("{kind}/{}", obj.name_any())))
}

/// Exponential backoff per object for failures that may heal on their own (an unreachable
/// provider, an API-server hiccup): 5 s, 10 s, 20 s … capped at 5 minutes.
#[derive(Default)]
pub struct Backoff {
    failures: Mutex<HashMap<String, u32>>,
}

impl Backoff {
    pub fn next(&self, key: &str) -> Duration {
        let mut failures = self.failures.lock().expect("backoff lock poisoned");
        let n = failures.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        backoff_for(*n)
    }

    pub fn reset(&self, key: &str) {
        self.failures.lock().expect("backoff lock poisoned").remove(key);
    }
}

impl Context {
    /// Writes `status` with server-side apply, so only the fields the controller owns change.
    pub async fn apply_status<K, S>(&self, obj: &K, status: &S) -> Result<(), Error>
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope> + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
        S: Serialize,
    {
        let api: Api<K> = Api::namespaced(self.kube.client.clone(), &obj.namespace().unwrap_or_default());
        let patch = serde_json::json!({
            "apiVersion": K::api_version(&()),
            "kind": K::kind(&()),
            "status": status,
        });
        api.patch_status(&obj.name_any(), &self.kube.manager.apply(), &Patch::Apply(&patch)).await?;
        Ok(())
    }

    /// Records a condition change as an Event on `obj`. Failures to record are logged, never
    /// fatal: an Event is a trace, not state.
    pub async fn record<K: Resource<DynamicType = ()>, R: Reason>(&self, obj: &K, check: &Check<R>) {
        let event = Event {
            type_: if check.status == crate::api::conditions::FALSE { EventType::Warning } else { EventType::Normal },
            reason: check.reason.as_str().to_string(),
            note: Some(truncate(&format!("{}: {}", check.type_, check.message), 1000)),
            action: format!("Check{}", check.type_),
            secondary: None,
        };
        if let Err(e) = self.recorder.publish(&event, &obj.object_ref(&())).await {
            tracing::warn!(error = %e, reason = check.reason.as_str(), "could not record event");
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
    fn backoff_is_per_object_and_resets() {
        let b = Backoff::default();
        assert_eq!(b.next("a"), Duration::from_secs(5));
        assert_eq!(b.next("a"), Duration::from_secs(10));
        assert_eq!(b.next("b"), Duration::from_secs(5));
        b.reset("a");
        assert_eq!(b.next("a"), Duration::from_secs(5));
    }

    #[test]
    fn truncation_respects_char_boundaries() {
        assert_eq!(truncate("abc", 5), "abc");
        assert_eq!(truncate("ééé", 3), "é…");
    }
}
