//! Prometheus metrics. One registry per process, holding only its role's metrics plus
//! `infra_build_info` and the standard `process_*` metrics, encoded by the `/metrics` route.
//! Label values (results, outcomes, reasons) are all snake_case.

mod process;

use std::sync::Mutex;
use std::time::Instant;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
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
pub struct MemoryLabels {
    pub kind: &'static str,
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
    /// The server's memory by kind: `resident_anonymous` and `resident_file` (code and libraries)
    /// make up its resident size; `heap_in_use` and `heap_free` (freed but kept by the allocator).
    pub memory: Family<MemoryLabels, Gauge>,
}

fn seconds_histogram() -> Histogram {
    // 1 ms to ~16 s.
    Histogram::new(exponential_buckets(0.001, 2.0, 15))
}

/// Which process a registry is for: each role exports only the metrics it produces, so a
/// dashboard never shows a server's idle controller gauges or the other way round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Controller,
    Server,
}

impl Role {
    fn as_str(self) -> &'static str {
        match self {
            Role::Controller => "controller",
            Role::Server => "server",
        }
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct BuildLabels {
    version: String,
    role: String,
}

impl Metrics {
    pub fn new(role: Role) -> Self {
        let metrics = Self {
            registry: Mutex::new(Registry::default()),
            reconciles: Family::default(),
            reconcile_duration: Family::new_with_constructor(seconds_histogram as fn() -> Histogram),
            reconcile_errors: Family::default(),
            http_requests: Family::default(),
            http_duration: Family::new_with_constructor(seconds_histogram as fn() -> Histogram),
            scim_auth: Family::default(),
            logins: Family::default(),
            sessions_ended: Family::default(),
            session_rechecks: Family::default(),
            sessions: Gauge::default(),
            leader: Gauge::default(),
            scim_keys_active: Gauge::default(),
            users: Gauge::default(),
            groups: Gauge::default(),
            memory: Family::default(),
        };
        let mut root = metrics.registry.lock().expect("new lock");
        root.register_collector(Box::new(process::ProcessCollector));
        let r = root.sub_registry_with_prefix("infra");
        let build_info = Family::<BuildLabels, Gauge>::default();
        build_info.get_or_create(&BuildLabels { version: env!("CARGO_PKG_VERSION").into(), role: role.as_str().into() }).set(1);
        r.register("build_info", "The running version and role (always 1)", build_info);
        // Sessions end on both roles: logout and failed checks on the server, re-checks and
        // lifetimes on the controller.
        r.register("sessions_ended", "Login sessions ended, by reason", metrics.sessions_ended.clone());
        match role {
            Role::Controller => {
                r.register("reconciles", "Reconciles by kind and result", metrics.reconciles.clone());
                r.register("reconcile_duration_seconds", "Reconcile duration by kind", metrics.reconcile_duration.clone());
                r.register("reconcile_errors", "Failed reconciles by kind and error class", metrics.reconcile_errors.clone());
                r.register(
                    "session_rechecks",
                    "Re-checks of login sessions with the provider, by outcome",
                    metrics.session_rechecks.clone(),
                );
                r.register("sessions", "Login sessions stored (reported by the leader controller)", metrics.sessions.clone());
                r.register("controller_leader", "1 when this controller holds the leader lease", metrics.leader.clone());
            }
            Role::Server => {
                r.register("http_requests", "HTTP requests by method, route and status", metrics.http_requests.clone());
                r.register("http_request_duration_seconds", "HTTP request duration", metrics.http_duration.clone());
                r.register("scim_authentications", "SCIM bearer authentications by outcome", metrics.scim_auth.clone());
                r.register("logins", "Logins by outcome", metrics.logins.clone());
                r.register("scim_keys_active", "SCIM keys that are issued and not expired", metrics.scim_keys_active.clone());
                r.register("users", "Users in the server's directory", metrics.users.clone());
                r.register("groups", "Groups in the server's directory", metrics.groups.clone());
                r.register_with_unit(
                    "server_memory",
                    "The server's resident memory (anonymous, file) and heap (in use, free), by kind",
                    prometheus_client::registry::Unit::Bytes,
                    metrics.memory.clone(),
                );
            }
        }
        drop(root);
        metrics
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

    /// Counts a reconcile by `result`, a snake_case label value (`reason_label` turns a
    /// condition reason into one).
    pub fn reconciled(&self, kind: &str, result: &str) {
        self.reconciles.get_or_create(&ReconcileLabels { kind: kind.into(), result: result.into() }).inc();
    }

    pub fn reconcile_failed(&self, kind: &str, error: &str) {
        self.reconciled(kind, "error");
        self.reconcile_errors.get_or_create(&ErrorLabels { kind: kind.into(), error: error.into() }).inc();
    }
}

/// A condition reason (`ProviderNotFound`) as a label value in the metrics' one convention
/// (`provider_not_found`).
pub fn reason_label(reason: &str) -> String {
    let chars: Vec<char> = reason.chars().collect();
    let mut out = String::with_capacity(reason.len() + 4);
    for (i, &c) in chars.iter().enumerate() {
        // A word starts at an upper-case letter after a lower-case one, or at the last capital of
        // an acronym that a lower-case letter follows (`CABundle` is `ca_bundle`).
        let starts_word = c.is_ascii_uppercase()
            && i > 0
            && (chars[i - 1].is_ascii_lowercase()
                || chars.get(i + 1).is_some_and(|n| n.is_ascii_lowercase()) && chars[i - 1].is_ascii_uppercase());
        if starts_word {
            out.push('_');
        }
        out.push(c.to_ascii_lowercase());
    }
    out
}

pub struct ReconcileTimer<'a> {
    metrics: &'a Metrics,
    kind: String,
    start: Instant,
}

impl Drop for ReconcileTimer<'_> {
    fn drop(&mut self) {
        self.metrics.reconcile_duration.get_or_create(&KindLabels { kind: self.kind.clone() }).observe(self.start.elapsed().as_secs_f64());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_role_exports_only_its_own_metrics() {
        let controller = Metrics::new(Role::Controller);
        controller.reconciled("ScimKey", "active");
        controller.leader.set(1);
        let server = Metrics::new(Role::Server);
        Metrics::count(&server.scim_auth, "success");
        server.users.set(3);
        let (c, s) = (controller.encode(), server.encode());
        assert!(
            c.contains("infra_controller_leader 1") && c.contains("infra_reconciles_total{kind=\"ScimKey\",result=\"active\"} 1"),
            "{c}"
        );
        assert!(!c.contains("infra_users") && !c.contains("infra_http_requests") && !c.contains("infra_scim_keys_active"), "{c}");
        assert!(s.contains("infra_users 3") && s.contains("infra_scim_authentications_total{outcome=\"success\"} 1"), "{s}");
        assert!(!s.contains("infra_controller_leader") && !s.contains("infra_reconciles") && !s.contains("infra_sessions "), "{s}");
        for (text, role) in [(&c, "controller"), (&s, "server")] {
            assert!(text.contains(&format!("infra_build_info{{version=\"{}\",role=\"{role}\"}} 1", env!("CARGO_PKG_VERSION"))), "{text}");
            assert!(text.contains("process_resident_memory_bytes ") && !text.contains("infra_process"), "{text}");
        }
    }

    #[test]
    fn reasons_become_snake_case_labels() {
        assert_eq!(reason_label("ProviderNotFound"), "provider_not_found");
        assert_eq!(reason_label("Active"), "active");
        assert_eq!(reason_label("InvalidURL"), "invalid_url");
        assert_eq!(reason_label("InvalidCABundle"), "invalid_ca_bundle");
        assert_eq!(reason_label("NotOpenIDProvider"), "not_open_id_provider");
    }
}
