//! Counts and times every request by method, route and status. Every label value comes from a
//! fixed set, whatever the client sends: a label per distinct value would let anyone on the
//! internet grow the metrics (and the server's memory) without bound.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::Response;

use crate::metrics::{HttpLabels, Metrics};

pub async fn record(State(metrics): State<Arc<Metrics>>, req: Request, next: Next) -> Response {
    let start = Instant::now();
    let method = method_label(req.method()).to_string();
    let route = route_label(req.uri().path());
    let resp = next.run(req).await;
    let labels = HttpLabels { method, route, status: resp.status().as_u16().to_string() };
    metrics.http_requests.get_or_create(&labels).inc();
    metrics.http_duration.get_or_create(&labels).observe(start.elapsed().as_secs_f64());
    resp
}

/// The standard methods by name; any other method (HTTP allows any token) is `other`.
pub fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// A bounded label for a path: the SCIM resource type rather than the raw path, so that ids and
/// junk paths cannot explode the number of series.
pub fn route_label(path: &str) -> String {
    const KNOWN: &[&str] = &[
        "/healthz",
        "/readyz",
        "/api/providers",
        "/login",
        "/login/callback",
        "/logout",
        "/api/login",
        "/api/whoami",
        "/api/logout",
        crate::kube_access::paths::TOKEN,
        crate::kube_access::paths::AUTHORIZE,
    ];
    const SCIM_RESOURCES: &[&str] = &["Users", "Groups", "ServiceProviderConfig", "ResourceTypes", "Schemas", ".search", "Bulk", "Me"];
    if KNOWN.contains(&path) {
        return path.to_string();
    }
    if let Some(rest) = path.strip_prefix("/api/scim/v2") {
        let first = rest.trim_start_matches('/').split('/').next().unwrap_or("");
        return match SCIM_RESOURCES.iter().find(|r| **r == first) {
            Some(r) => format!("/api/scim/v2/{r}"),
            None => "/api/scim/v2/other".to_string(),
        };
    }
    "other".to_string()
}

#[cfg(test)]
mod tests {
    use super::{method_label, route_label};
    use axum::http::Method;

    #[test]
    fn labels_are_bounded() {
        assert_eq!(route_label("/healthz"), "/healthz");
        assert_eq!(route_label("/api/scim/v2/Users/123"), "/api/scim/v2/Users");
        assert_eq!(route_label("/api/scim/v2/ServiceProviderConfig"), "/api/scim/v2/ServiceProviderConfig");
        assert_eq!(route_label("/api/scim/v2/whatever/1"), "/api/scim/v2/other");
        assert_eq!(route_label("/random/junk"), "other");
        assert_eq!(route_label("/login/callback"), "/login/callback");
        assert_eq!(route_label("/api/kube/authorize"), "/api/kube/authorize", "the webhook's latency is its own series");
        assert_eq!(route_label("/metrics"), "other", "the public listener serves no metrics");
    }

    #[test]
    fn methods_map_to_a_fixed_set() {
        for (m, want) in [
            (Method::GET, "GET"),
            (Method::POST, "POST"),
            (Method::PUT, "PUT"),
            (Method::PATCH, "PATCH"),
            (Method::DELETE, "DELETE"),
            (Method::HEAD, "HEAD"),
            (Method::OPTIONS, "OPTIONS"),
        ] {
            assert_eq!(method_label(&m), want);
        }
        for odd in ["TRACE", "CONNECT", "PROPFIND", "get", &"X".repeat(8192)] {
            assert_eq!(method_label(&Method::from_bytes(odd.as_bytes()).unwrap()), "other", "{odd}");
        }
    }
}
