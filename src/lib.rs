//! Infra connects a company's identity provider to Kubernetes.
//!
//! The library holds everything; `src/bin/` holds thin mains. Pure logic (URL normalization,
//! conditions, key handling) lives apart from the code that talks to the API server or the IdP.

pub mod api;
pub mod api_server;
pub mod broker;
pub mod cli;
pub mod config;
pub mod controller;
pub mod device;
pub mod directory;
pub mod health;
pub mod html;
pub mod keys;
pub mod kube_access;
pub mod metrics;
pub mod oidc;
pub mod scim;
pub mod sealed;
pub mod server;
pub mod session;
pub mod state_key;
pub mod telemetry;

/// A channel that flips to `true` on SIGTERM or Ctrl-C, so every long-running part can finish
/// in-flight work and stop cleanly.
pub fn shutdown_signal() -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term => {}
        }
        tracing::info!("shutdown signal received");
        let _ = tx.send(true);
    });
    rx
}
