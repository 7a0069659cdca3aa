//! The server's outer layers: a request id on every request and response (`x-request-id`, kept
//! when a proxy already set one), an access log line per request carrying it, and a timeout so no
//! request holds a connection and a worker forever.
//!
//! The log names the method and path only: query strings carry login codes and `state`, and
//! headers carry bearer keys and cookies, so neither is ever logged.

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderName, Request, StatusCode};
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId, SetRequestIdLayer};
use tower_http::timeout::TimeoutLayer;
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use super::http_metrics::method_label;

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// 16 random hex digits: unique enough to find one request in the logs, and no counter that
/// tells an outsider how busy the server is.
#[derive(Clone, Copy, Default)]
struct RandomId;

impl MakeRequestId for RandomId {
    fn make_request_id<B>(&mut self, _: &Request<B>) -> Option<RequestId> {
        let id = crate::keys::random_string(b"0123456789abcdef", 16).ok()?;
        Some(RequestId::new(id.parse().ok()?))
    }
}

/// Wraps `router` in the timeout, the access log and the request id (outermost, so the log and
/// every response carry it). A request that times out gets `503` (and so `Retry-After`).
pub fn wrap(router: Router, timeout: Duration) -> Router {
    let trace = TraceLayer::new_for_http()
        .make_span_with(|req: &Request<_>| {
            let id = req.headers().get(&REQUEST_ID).and_then(|v| v.to_str().ok()).unwrap_or("");
            tracing::info_span!("request", id = %crate::telemetry::escape(id), method = method_label(req.method()), path = %req.uri().path())
        })
        .on_response(DefaultOnResponse::new().level(Level::INFO));
    router
        .layer(TimeoutLayer::with_status_code(StatusCode::SERVICE_UNAVAILABLE, timeout))
        .layer(PropagateRequestIdLayer::new(REQUEST_ID))
        .layer(trace)
        .layer(SetRequestIdLayer::new(REQUEST_ID, RandomId))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::routing::get;
    use tower::ServiceExt;

    fn app() -> Router {
        let slow = get(|| async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            "late"
        });
        wrap(Router::new().route("/", get(|| async { "ok" })).route("/slow", slow), Duration::from_millis(100))
    }

    #[tokio::test]
    async fn every_response_carries_a_request_id_and_a_given_one_is_kept() {
        let resp = app().oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
        let id = resp.headers().get(&REQUEST_ID).expect("request id").to_str().unwrap().to_string();
        assert_eq!(id.len(), 16);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()));
        let other = app().oneshot(Request::get("/").body(Body::empty()).unwrap()).await.unwrap();
        assert_ne!(other.headers().get(&REQUEST_ID).unwrap().to_str().unwrap(), id);
        let given = app().oneshot(Request::get("/").header("x-request-id", "from-the-proxy").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(given.headers().get(&REQUEST_ID).unwrap(), "from-the-proxy");
    }

    #[tokio::test]
    async fn a_request_past_the_timeout_is_answered_503() {
        let resp = app().oneshot(Request::get("/slow").body(Body::empty()).unwrap()).await.unwrap();
        assert_eq!(resp.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(resp.headers().contains_key(&REQUEST_ID));
    }
}
