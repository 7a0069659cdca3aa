//! `/metrics` is served on each role's own metrics address, never on the server's public listener
//! (which an Ingress exposes), and no request can add label values to it.

use std::collections::BTreeSet;

use crate::harness::{env, http};

/// The `method` label values of `infra_http_requests_total` in a metrics text.
fn method_labels(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| l.starts_with("infra_http_requests_total{"))
        .filter_map(|l| l.split("method=\"").nth(1)?.split('"').next().map(String::from))
        .collect()
}

async fn metrics_text(base: &str) -> String {
    let resp = http().get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(resp.status(), 200, "{base}/metrics");
    resp.text().await.unwrap()
}

#[tokio::test]
async fn public_listener_serves_no_metrics() {
    assert_eq!(env().server_urls.len(), env().server_metrics_urls.len());
    for (public, metrics) in env().server_urls.iter().zip(&env().server_metrics_urls) {
        let resp = http().get(format!("{public}/metrics")).send().await.unwrap();
        assert_eq!(resp.status(), 404, "{public}/metrics is reachable on the public listener");
        let body = resp.text().await.unwrap();
        assert!(!body.contains("infra_"), "{public}/metrics leaked metrics: {body}");
        // The probes stay on the public port (the kubelet checks the port people use) ...
        for probe in ["/healthz", "/readyz"] {
            assert_eq!(http().get(format!("{public}{probe}")).send().await.unwrap().status(), 200, "{public}{probe}");
            assert_eq!(http().get(format!("{metrics}{probe}")).send().await.unwrap().status(), 200, "{metrics}{probe}");
        }
        // ... and the metrics address has them all, the public requests counted.
        let text = metrics_text(metrics).await;
        assert!(text.contains("infra_http_requests_total{"), "{text}");
        assert!(text.contains("infra_users "), "{text}");
    }
}

#[tokio::test]
async fn unknown_http_methods_add_no_label_values() {
    let fixed: BTreeSet<String> =
        ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "other"].into_iter().map(String::from).collect();
    let (public, metrics) = (&env().server_urls[0], &env().server_metrics_urls[0]);
    let before = metrics_text(metrics).await;
    // The attack from the review: unique 8 KB methods (it grew /metrics from 2.6 KB to 15.4 MB
    // with 100 of them). 40 are plenty to see growth.
    let marker = infra::keys::name_suffix(8).unwrap().to_ascii_uppercase();
    for i in 0..40 {
        let method = format!("M{marker}{i}{}", "X".repeat(8 * 1024));
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let resp = http().request(method, format!("{public}/api/scim/v2/Users/{marker}{i}")).send().await.unwrap();
        assert!(resp.status().is_client_error(), "{}", resp.status());
    }
    let after = metrics_text(metrics).await;
    assert!(!after.contains(&marker), "a request's method became a label value");
    let methods = method_labels(&after);
    assert!(methods.contains("other"), "the odd methods were not counted as `other`: {methods:?}");
    assert!(methods.is_subset(&fixed), "method labels outside the fixed set: {:?}", methods.difference(&fixed).collect::<Vec<_>>());
    // Other tests run concurrently and may add a few series of their own; 40 unique 8 KB labels
    // would add well over 320 KB.
    assert!(after.len() < before.len() + 64 * 1024, "/metrics grew from {} to {} bytes", before.len(), after.len());
}

/// Each role's registry holds only what that role produces, plus the build and process metrics
/// that every Prometheus target carries.
#[tokio::test]
async fn each_role_exports_only_its_own_metrics() {
    let controllers: Vec<String> =
        std::env::var("INFRA_CONTROLLER_URLS").expect("INFRA_CONTROLLER_URLS").split_whitespace().map(String::from).collect();
    let version = env!("CARGO_PKG_VERSION");
    for c in &controllers {
        let text = metrics_text(c).await;
        assert!(text.contains(&format!("infra_build_info{{version=\"{version}\",role=\"controller\"}} 1")), "{text}");
        assert!(text.contains("infra_controller_leader "), "{text}");
        for other in ["infra_http_requests", "infra_users ", "infra_scim_keys_active", "infra_scim_authentications"] {
            assert!(!text.contains(other), "the controller exports the server's {other}: {text}");
        }
        assert!(text.lines().any(|l| l.starts_with("process_resident_memory_bytes ")), "{text}");
    }
    for s in &env().server_metrics_urls {
        let text = metrics_text(s).await;
        assert!(text.contains(&format!("infra_build_info{{version=\"{version}\",role=\"server\"}} 1")), "{text}");
        for other in ["infra_controller_leader", "infra_reconciles", "infra_session_rechecks", "infra_sessions "] {
            assert!(!text.contains(other), "the server exports the controller's {other}: {text}");
        }
        let cpu = text.lines().find_map(|l| l.strip_prefix("process_cpu_seconds_total ")).and_then(|v| v.trim().parse::<f64>().ok());
        assert!(cpu.is_some_and(|v| v > 0.0), "process_cpu_seconds_total missing or zero: {text}");
    }
}

/// Every answer names its request (for finding it in the access log), and one a proxy set is kept.
#[tokio::test]
async fn responses_carry_a_request_id() {
    let public = &env().server_urls[0];
    let resp = http().get(format!("{public}/healthz")).send().await.unwrap();
    let id = resp.headers().get("x-request-id").expect("x-request-id").to_str().unwrap().to_string();
    assert_eq!(id.len(), 16, "{id}");
    let resp = http().get(format!("{public}/api/scim/v2/ServiceProviderConfig")).header("x-request-id", "lb-1234").send().await.unwrap();
    assert_eq!(resp.headers().get("x-request-id").unwrap(), "lb-1234");
}
