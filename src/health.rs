//! `/healthz` and `/readyz`, served by both roles, and `/metrics`, served only on each role's
//! separate metrics address: the server's public listener (which an Ingress exposes to the
//! internet) never serves metrics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::sync::watch;

use crate::metrics::Metrics;

/// `/healthz`, `/readyz` and `/metrics`, for a role's metrics address. `ready` flips to true once
/// the process can serve correctly (caches synced for the server; the lease manager running for
/// the controller).
pub fn health_router(metrics: Arc<Metrics>, ready: Arc<AtomicBool>) -> Router {
    probe_router(ready).merge(Router::new().route("/metrics", get(metrics_text)).with_state(metrics))
}

/// `/healthz` and `/readyz` only, for the server's public listener (the kubelet probes it there,
/// so a probe fails when the port people use stops answering).
pub fn probe_router(ready: Arc<AtomicBool>) -> Router {
    Router::new().route("/healthz", get(|| async { "ok\n" })).route("/readyz", get(readyz)).with_state(ready)
}

/// Binds `addr` (so a taken port fails startup) and serves [`health_router`] there until
/// `shutdown` turns true.
pub async fn spawn_metrics_listener(
    addr: SocketAddr,
    metrics: Arc<Metrics>,
    ready: Arc<AtomicBool>,
    shutdown: watch::Receiver<bool>,
) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| anyhow::anyhow!("binding the metrics address {addr}: {e}"))?;
    tracing::info!(%addr, "health and metrics listening");
    let mut stop = shutdown;
    tokio::spawn(async move {
        let _ = axum::serve(listener, health_router(metrics, ready))
            .with_graceful_shutdown(async move {
                let _ = stop.wait_for(|v| *v).await;
            })
            .await;
    });
    Ok(())
}

async fn readyz(State(ready): State<Arc<AtomicBool>>) -> impl IntoResponse {
    if ready.load(Ordering::Relaxed) {
        (StatusCode::OK, "ready\n")
    } else {
        (StatusCode::SERVICE_UNAVAILABLE, "caches are not synced yet\n")
    }
}

async fn metrics_text(State(metrics): State<Arc<Metrics>>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], metrics.encode())
}
