//! The server role: SCIM (and, later, login) over HTTP, reading from reflector caches.

mod health;
mod http_metrics;
pub mod scim;

pub use health::health_router;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::Router;
use clap::Args;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tower_http::limit::RequestBodyLimitLayer;

use crate::api::{labels, IdentityProvider, ScimKey};
use crate::config::OperatorArgs;
use crate::metrics::Metrics;
use scim::auth::{AuthState, KeyStores};

/// Request bodies larger than this are refused with 413 before they are read.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Args, Clone, Debug)]
pub struct ServerArgs {
    #[command(flatten)]
    pub operator: OperatorArgs,

    /// Address to serve HTTP on.
    #[arg(long, env = "INFRA_LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    pub listen_addr: SocketAddr,
}

pub async fn run(args: ServerArgs, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let client = Client::try_default().await?;
    let ns = &args.operator.namespace;
    let metrics = Arc::new(Metrics::default());
    let ready = Arc::new(AtomicBool::new(false));

    let keys = cache::<ScimKey>(Api::namespaced(client.clone(), ns), watcher::Config::default());
    let secrets = cache::<Secret>(Api::namespaced(client.clone(), ns), watcher::Config::default().labels(labels::SCIM_KEY));
    let providers = cache::<IdentityProvider>(Api::namespaced(client.clone(), ns), watcher::Config::default());
    {
        let (keys, secrets, providers, ready) = (keys.clone(), secrets.clone(), providers.clone(), ready.clone());
        tokio::spawn(async move {
            let synced = tokio::try_join!(keys.wait_until_ready(), secrets.wait_until_ready(), providers.wait_until_ready());
            match synced {
                Ok(_) => {
                    ready.store(true, Ordering::Relaxed);
                    tracing::info!("caches synced; ready");
                }
                Err(e) => tracing::error!(error = %e, "caches never synced"),
            }
        });
    }

    let auth = AuthState { stores: KeyStores { keys, secrets, providers }, metrics: metrics.clone() };
    let app = router(&args.operator, auth, metrics.clone(), ready);
    let listener = tokio::net::TcpListener::bind(args.listen_addr).await?;
    tracing::info!(addr = %args.listen_addr, external_url = %args.operator.external_url, "server listening");
    let mut stop = shutdown.clone();
    axum::serve(listener, app)
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|v| *v).await;
            tracing::info!("shutting down; finishing in-flight requests");
        })
        .await?;
    Ok(())
}

pub fn router(args: &OperatorArgs, auth: AuthState, metrics: Arc<Metrics>, ready: Arc<AtomicBool>) -> Router {
    Router::new()
        .nest("/api/scim/v2", scim::router(auth, args.scim_url()))
        .merge(health_router(metrics.clone(), ready))
        .layer(axum::middleware::from_fn_with_state(metrics, http_metrics::record))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
}

/// A reflector cache of `api`, kept current by a background watch.
fn cache<K>(api: Api<K>, config: watcher::Config) -> Store<K>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (reader, writer) = reflector::store();
    let stream = watcher(api, config).default_backoff().reflect(writer).touched_objects();
    tokio::spawn(async move {
        stream
            .for_each(|event| async move {
                if let Err(e) = event {
                    tracing::warn!(error = %e, kind = %K::kind(&()), "watch error; retrying");
                }
            })
            .await;
    });
    reader
}
