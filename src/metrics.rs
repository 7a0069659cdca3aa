//! Prometheus metrics. One registry per process, encoded by the `/metrics` route.

use std::sync::Mutex;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    pub kind: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    pub kind: String,
    pub error: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct KindLabels {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct HttpLabels {
    pub method: String,
    pub route: String,
    pub status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

pub struct Metrics {
    registry: Mutex<Registry>,
    pub reconciles: Family<ReconcileLabels, Counter>,
    pub reconcile_duration: Family<KindLabels, Histogram>,
    /// Reconciles that failed, by kind and by the class of error (`kube`, `random`, …).
    pub reconcile_errors: Family<ErrorLabels, Counter>,
    pub http_requests: Family<HttpLabels, Counter>,
    pub http_duration: Family<HttpLabels, Histogram>,
    pub scim_auth: Family<OutcomeLabels, Counter>,
    /// Logins (CLI and dashboard) by outcome: `success` or the error code.
    pub logins: Family<OutcomeLabels, Counter>,
    /// Sessions ended, by why: `logout`, `expired`, `idle`, `refused` (by the provider at a
    /// re-check), `user_inactive`, `user_gone`, `provider_gone`.
    pub sessions_ended: Family<OutcomeLabels, Counter>,
    /// Session re-checks with the provider by outcome: `confirmed`, `refused`, `unreachable`.
    pub session_rechecks: Family<OutcomeLabels, Counter>,
    /// Login sessions stored (counted by the leader controller).
    pub sessions: Gauge,
    pub leader: Gauge,
    pub scim_keys_active: Gauge,
    pub users: Gauge,
    pub groups: Gauge,
}

fn seconds_histogram() -> Histogram {
    // 1 ms to ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("infra");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let reconcile_duration = Family::<KindLabels, Histogram>::new_with_constructor(seconds_histogram as fn() -> Histogram);
        let http_requests = Family::<HttpLabels, Counter>::default();
        let http_duration = Family::<HttpLabels, Histogram>::new_with_constructor(seconds_histogram as fn() -> Histogram);
        let scim_auth = Family::<OutcomeLabels, Counter>::default();
        let (logins, sessions_ended, session_rechecks) = (Family::default(), Family::default(), Family::default());
        let leader = Gauge::default();
        let (scim_keys_active, users, groups, sessions) = (Gauge::default(), Gauge::default(), Gauge::default(), Gauge::default());
        registry.register("reconciles", "Reconciles by kind and result", reconciles.clone());
        registry.register("reconcile_duration_seconds", "Reconcile duration by kind", reconcile_duration.clone());
        let reconcile_errors = Family::<ErrorLabels, Counter>::default();
        registry.register("reconcile_errors", "Failed reconciles by kind and error class", reconcile_errors.clone());
        registry.register("http_requests", "HTTP requests by method, route and status", http_requests.clone());
        registry.register("http_request_duration_seconds", "HTTP request duration", http_duration.clone());
        registry.register("scim_authentications", "SCIM bearer authentications by outcome", scim_auth.clone());
        registry.register("logins", "Logins by outcome", logins.clone());
        registry.register("sessions_ended", "Login sessions ended, by reason", sessions_ended.clone());
        registry.register("session_rechecks", "Re-checks of login sessions with the provider, by outcome", session_rechecks.clone());
        registry.register("sessions", "Login sessions stored (reported by the leader controller)", sessions.clone());
        registry.register("controller_leader", "1 when this controller holds the leader lease", leader.clone());
        registry.register("scim_keys_active", "SCIM keys that are issued and not expired", scim_keys_active.clone());
        registry.register("users", "Users in the server's directory", users.clone());
        registry.register("groups", "Groups in the server's directory", groups.clone());
        Self {
            registry: Mutex::new(registry),
            reconciles,
            reconcile_duration,
            reconcile_errors,
            http_requests,
            http_duration,
            scim_auth,
            logins,
            sessions_ended,
            session_rechecks,
            sessions,
            leader,
            scim_keys_active,
            users,
            groups,
        }
    }
}

impl Metrics {
    pub fn encode(&self) -> String {
        let mut out = String::new();
        let registry = self.registry.lock().expect("metrics registry lock poisoned");
        prometheus_client::encoding::text::encode(&mut out, &registry).expect("writing to a String cannot fail");
        out
    }

    /// Records the reconcile's duration when dropped, so every return path is measured.
    pub fn reconcile_timer(&self, kind: &str) -> ReconcileTimer<'_> {
        ReconcileTimer { metrics: self, kind: kind.to_string(), start: Instant::now() }
    }

    pub fn count(family: &Family<OutcomeLabels, Counter>, outcome: &str) {
        family.get_or_create(&OutcomeLabels { outcome: outcome.into() }).inc();
    }

    pub fn reconciled(&self, kind: &str, result: &str) {
        self.reconciles.get_or_create(&ReconcileLabels { kind: kind.into(), result: result.into() }).inc();
    }

    pub fn reconcile_failed(&self, kind: &str, error: &str) {
        self.reconciled(kind, "error");
        self.reconcile_errors.get_or_create(&ErrorLabels { kind: kind.into(), error: error.into() }).inc();
    }
}

pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    kind: String,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics
            .reconcile_duration
            .get_or_create(&KindLabels { kind: self.kind.clone() })
            .observe(self.start.elapsed().as_secs_f64());
    }
}
