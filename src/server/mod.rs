//! The server role: SCIM and login over HTTP, reading from reflector caches.

pub mod access;
mod access_log;
pub(crate) mod cache;
pub mod dashboard;
pub mod device;
mod http_metrics;
pub mod login;
mod memory;
mod providers;
pub mod rate_limit;
pub mod scim;
pub mod tls;
pub mod web;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use axum::Router;
use clap::Args;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::runtime::reflector::Store;
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Resource};
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tower_http::limit::RequestBodyLimitLayer;

use crate::api::{Group, IdentityProvider, KeyPhase, ScimKey, User};
use crate::api_server::{FieldManager, Kube};
use crate::config::OperatorArgs;
use crate::directory::DirectoryStore;
use crate::metrics::Metrics;
use cache::Cache;
use scim::auth::{AuthState, FreshKeys, KeyStores};
use scim::resources::ScimState;

/// Request bodies larger than this are refused with 413 before they are read.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

#[derive(Args, Clone, Debug)]
pub struct ServerArgs {
    #[command(flatten)]
    pub operator: OperatorArgs,

    /// Address to serve HTTP on: SCIM, login, `/healthz` and `/readyz`. Never `/metrics`.
    #[arg(long, env = "INFRA_LISTEN_ADDR", default_value = "0.0.0.0:8080")]
    pub listen_addr: SocketAddr,

    #[command(flatten)]
    pub limits: rate_limit::LimitArgs,

    /// Address for `/healthz`, `/readyz` and `/metrics` of the server. Kept apart from
    /// --listen-addr so that what an Ingress exposes never includes the metrics.
    #[arg(long, env = "INFRA_SERVER_METRICS_ADDR", default_value = "0.0.0.0:9090")]
    pub metrics_addr: SocketAddr,

    /// A request still unanswered after this long gets 503 (with Retry-After), so a stuck
    /// dependency cannot hold connections and workers forever. Long enough for the largest
    /// request the SCIM limits admit: 10,000 members in one PATCH are 10,000 User writes.
    #[arg(long, env = "INFRA_REQUEST_TIMEOUT", default_value = "5m", value_parser = crate::config::parse_span)]
    pub request_timeout: std::time::Duration,

    /// How long a device login's codes (`infra login --device`) work before someone must approve
    /// them.
    #[arg(long, env = "INFRA_DEVICE_CODE_LIFETIME", default_value = "10m", value_parser = crate::config::parse_span)]
    pub device_code_lifetime: std::time::Duration,
    /// URLs of the controllers' login broker, tried in order: the controller redeems login codes,
    /// since only it may read the providers' client secrets.
    #[arg(long, env = "INFRA_BROKER_URLS", value_delimiter = ',', default_value = "http://infra-broker:8082")]
    pub broker_url: Vec<url::Url>,

    #[command(flatten)]
    pub tls: tls::TlsArgs,

    #[command(flatten)]
    pub kube: crate::kube_access::IssuerArgs,
}

pub async fn run(args: ServerArgs, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    memory::limit_arenas();
    let client = crate::api_server::connect().await?;
    let ns = &args.operator.namespace;
    let kube = Kube::new(client.clone(), ns, FieldManager::SERVER);
    let metrics = Arc::new(Metrics::new(crate::metrics::Role::Server));
    let ready = Arc::new(AtomicBool::new(false));

    let keys = cache::watch::<ScimKey>(kube.api(), ns, watcher::Config::default());
    let providers = cache::watch::<IdentityProvider>(kube.api(), ns, watcher::Config::default());
    let store = DirectoryStore::new(kube.api(), kube.api(), (*providers).clone());
    let users_synced = feed_directory::<User>(kube.api(), store.clone(), DirectoryStore::on_user_event);
    let groups_synced = feed_directory::<Group>(kube.api(), store.clone(), DirectoryStore::on_group_event);
    {
        let (keys, providers, ready) = (keys.clone(), providers.clone(), ready.clone());
        tokio::spawn(async move {
            let synced = tokio::try_join!(keys.wait_until_ready(), providers.wait_until_ready());
            let directory_synced = users_synced.await.is_ok() && groups_synced.await.is_ok();
            match synced {
                Ok(_) if directory_synced => {
                    memory::trim();
                    memory::spawn_trimmer();
                    ready.store(true, Ordering::Relaxed);
                    tracing::info!("caches synced; ready");
                }
                Ok(_) => tracing::error!("the user and group watches stopped before syncing"),
                Err(e) => tracing::error!(error = %e, "caches never synced"),
            }
        });
    }

    spawn_gauges(metrics.clone(), (*keys).clone(), store.clone());
    // The one Session watch: minting, the webhook and the dashboard read it.
    let sessions = Arc::new(crate::session::cache::SessionCache::default());
    sessions.spawn_watch(kube.api());
    let login = Arc::new(login::LoginState {
        broker: crate::broker::client::BrokerClient::new(client.clone(), args.broker_url.clone())?,
        providers: providers.clone(),
        users: kube.api(),
        directory_store: store.clone(),
        sessions: crate::session::SessionStore::new(&kube, (&args.operator.sessions).into()),
        session_cache: sessions.clone(),
        metrics: metrics.clone(),
        state_key: login::load_state_key(&kube.api()).await?,
        args: args.operator.clone(),
    });
    let issuer = Arc::new(access::issuer::Issuer {
        login: login.clone(),
        keys: (*cache::watch::<Secret>(
            kube.api(),
            ns,
            watcher::Config::default().fields(&format!("metadata.name={}", crate::kube_access::signing_keys::SECRET_NAME)),
        ))
        .clone(),
        issuer: args.kube.issuer(&args.operator.external_url),
        args: args.kube.clone(),
        api_server_ca: args.kube.api_server_ca()?,
        revocations: Arc::new(access::webhook::Revocations {
            sessions: sessions.clone(),
            directory: store.clone(),
            providers: providers.clone(),
            provider_api: kube.api(),
            session_api: kube.api(),
            user_api: kube.api(),
        }),
    });
    let dashboard = Arc::new(dashboard::DashState {
        login: login.clone(),
        authz: dashboard::authz::Authorizer::new(client.clone()),
        kube: kube.clone(),
        keys: keys.clone(),
        sessions,
    });
    let scim_state = ScimState { store, base_url: args.operator.scim_url() };
    let limits = Arc::new(rate_limit::Limits::new(&args.limits));
    let auth = AuthState {
        stores: KeyStores { keys, providers: providers.clone(), fresh: Some(Arc::new(FreshKeys::new(kube.api()))) },
        metrics: metrics.clone(),
        limits: limits.clone(),
    };
    crate::health::spawn_metrics_listener(args.metrics_addr, metrics.clone(), ready.clone(), shutdown.clone()).await?;
    let device = Arc::new(device::DeviceLogin {
        login: login.clone(),
        dashboard: dashboard.clone(),
        api: kube.api(),
        lifetime: args.device_code_lifetime,
        limits: limits.clone(),
    });
    let app = access_log::wrap(
        router(Routes { auth, scim: scim_state, providers, login, device, issuer, dashboard, limits, metrics: metrics.clone(), ready }),
        args.request_timeout,
    );
    if let (Some(addr), Some(cert), Some(key)) = (args.tls.tls_listen_addr, args.tls.tls_cert_file.clone(), args.tls.tls_key_file.clone()) {
        let (app, stop) = (app.clone(), shutdown.clone());
        tokio::spawn(async move {
            if let Err(e) = tls::serve(addr, &cert, &key, app, stop).await {
                tracing::error!(%addr, error = %e, "the HTTPS listener failed");
                std::process::exit(1);
            }
        });
    }
    let listener = tokio::net::TcpListener::bind(args.listen_addr).await?;
    tracing::info!(addr = %args.listen_addr, external_url = %args.operator.external_url, "server listening");
    let mut stop = shutdown.clone();
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp: &mut tokio::net::TcpStream| tls::nodelay(tcp));
    axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move {
            let _ = stop.wait_for(|v| *v).await;
            tracing::info!("shutting down; finishing in-flight requests");
        })
        .await?;
    Ok(())
}

/// What the server's routes serve from.
pub struct Routes {
    pub auth: AuthState,
    pub scim: ScimState,
    pub providers: Cache<IdentityProvider>,
    pub login: Arc<login::LoginState>,
    pub device: Arc<device::DeviceLogin>,
    pub issuer: Arc<access::issuer::Issuer>,
    pub dashboard: Arc<dashboard::DashState>,
    pub limits: Arc<rate_limit::Limits>,
    pub metrics: Arc<Metrics>,
    pub ready: Arc<AtomicBool>,
}

pub fn router(r: Routes) -> Router {
    let Routes { auth, scim, providers, login, device, issuer, dashboard, limits, metrics, ready } = r;
    Router::new()
        .nest("/api/scim/v2", scim::router(auth, scim))
        .merge(
            login::router(login)
                .merge(device::router(device))
                .merge(access::issuer::router(issuer))
                .layer(axum::middleware::from_fn_with_state(limits, rate_limit::login_api)),
        )
        .merge(dashboard::router(dashboard))
        .merge(Router::new().route("/api/providers", axum::routing::get(providers::list)).with_state(providers))
        .merge(crate::health::probe_router(ready))
        .route("/assets/{file}", axum::routing::get(web::assets::serve))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(metrics, http_metrics::record))
        .layer(RequestBodyLimitLayer::new(MAX_BODY_BYTES))
        .layer(axum::middleware::from_fn(scim_body_limit_errors))
        .layer(axum::middleware::from_fn(retry_after_on_unavailable))
}

/// Every 503 the server answers means "try again soon" (the API server is unavailable, a
/// provider is not ready yet, a write kept conflicting): SCIM clients, the CLI and browsers are
/// told when, here for every kind of response rather than in each.
async fn retry_after_on_unavailable(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::http::header::RETRY_AFTER;
    let mut resp = next.run(req).await;
    if resp.status() == axum::http::StatusCode::SERVICE_UNAVAILABLE && !resp.headers().contains_key(RETRY_AFTER) {
        resp.headers_mut().insert(RETRY_AFTER, axum::http::HeaderValue::from(crate::api_server::RETRY_AFTER_SECS));
    }
    resp
}

const SCIM_PREFIX: &str = "/api/scim/v2";

/// Paths no route serves, including `/api/scim/v2/` itself: SCIM clients get a SCIM error body.
async fn not_found(uri: axum::http::Uri) -> axum::response::Response {
    use axum::response::IntoResponse;
    if uri.path().starts_with(SCIM_PREFIX) {
        scim::error::ScimError::not_found(format!("no SCIM endpoint at {}", uri.path())).into_response()
    } else {
        (axum::http::StatusCode::NOT_FOUND, "not found\n").into_response()
    }
}

/// The body limit answers in plain text (from the limit layer, or from the body extractor for
/// chunked bodies); SCIM clients get an RFC 7644 error body instead. A 413 that already is a SCIM
/// error (a resource too large for the cluster to store) is left as it is.
async fn scim_body_limit_errors(req: axum::extract::Request, next: axum::middleware::Next) -> axum::response::Response {
    use axum::response::IntoResponse;
    let scim = req.uri().path().starts_with(SCIM_PREFIX);
    let resp = next.run(req).await;
    let scim_error = resp.headers().get(axum::http::header::CONTENT_TYPE).is_some_and(|t| t == scim::error::CONTENT_TYPE);
    if scim && resp.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE && !scim_error {
        let detail = format!("the request body is larger than {} bytes", MAX_BODY_BYTES);
        return scim::error::ScimError::new(413, None, detail).into_response();
    }
    resp
}

/// Keeps `directory` current from a watch of `api`. The returned receiver fires once the initial
/// list has been applied.
fn feed_directory<K>(
    api: Api<K>,
    store: DirectoryStore,
    apply: fn(&DirectoryStore, watcher::Event<K>),
) -> tokio::sync::oneshot::Receiver<()>
where
    K: Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug + Send + Sync + 'static,
{
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let mut tx = Some(tx);
        let mut stream = std::pin::pin!(watcher(api, watcher::Config::default()).default_backoff());
        while let Some(event) = stream.next().await {
            match event {
                Ok(event) => {
                    let done = matches!(event, watcher::Event::InitDone);
                    apply(&store, event);
                    if done && let Some(tx) = tx.take() {
                        let _ = tx.send(());
                    }
                }
                Err(e) => tracing::warn!(error = %e, kind = %K::kind(&()), "watch error; retrying"),
            }
        }
    });
    rx
}

/// Refreshes the gauges that describe the caches (they are cheap to count, so a timer beats
/// keeping counters in step with every event).
fn spawn_gauges(metrics: Arc<Metrics>, keys: Store<ScimKey>, directory: DirectoryStore) {
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(10));
        loop {
            tick.tick().await;
            let active = keys.state().iter().filter(|k| k.status.as_ref().and_then(|s| s.phase) == Some(KeyPhase::Active)).count();
            metrics.scim_keys_active.set(active as i64);
            let (users, groups) = {
                let d = directory.read();
                (d.user_count(), d.group_count())
            };
            metrics.users.set(users as i64);
            metrics.groups.set(groups as i64);
            let m = memory::stats();
            for (kind, bytes) in [
                ("resident_anonymous", m.resident_anonymous),
                ("resident_file", m.resident_file),
                ("heap_in_use", m.heap_in_use),
                ("heap_free", m.heap_free),
            ] {
                metrics.memory.get_or_create(&crate::metrics::MemoryLabels { kind }).set(bytes as i64);
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use axum::http::StatusCode;
    use axum::response::IntoResponse;
    use axum::routing::get;

    use super::*;

    #[tokio::test]
    async fn every_503_says_when_to_retry() {
        let app = Router::new()
            .route("/scim", get(|| async { scim::error::unavailable("down").into_response() }))
            .route(
                "/login",
                get(|| async { login::FlowError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "down").into_response() }),
            )
            .route("/ok", get(|| async { "ok" }))
            .layer(axum::middleware::from_fn(retry_after_on_unavailable));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        let http = reqwest::Client::new();
        for path in ["/scim", "/login"] {
            let resp = http.get(format!("{base}{path}")).send().await.unwrap();
            assert_eq!(resp.status().as_u16(), 503, "{path}");
            assert_eq!(resp.headers()["retry-after"], "5", "{path}");
        }
        let resp = http.get(format!("{base}/ok")).send().await.unwrap();
        assert!(resp.headers().get("retry-after").is_none());
    }
}
