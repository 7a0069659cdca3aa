//! The controller role: leader-elected reconcilers for IdentityProviders, ScimKeys, group
//! membership and login sessions.

mod context;
pub mod device_authorizations;
pub mod grant;
pub mod group_members;
pub mod identity_provider;
pub mod scim_key;
pub mod sessions;
pub mod signing_keys;

pub use context::{Context, Error};

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::ResourceExt;
use kube::core::PartialObjectMeta;
use kube::runtime::events::{Recorder, Reporter};
use kube::runtime::reflector::{self, ObjectRef};
use kube::runtime::{Controller, WatchStreamExt, predicates, reflector::reflector, watcher};
use kube_lease_manager::LeaseManagerBuilder;
use tokio::sync::watch;

use crate::api::{CLIENT_SECRET_TYPE, Group, IdentityProvider, ScimKey, User, labels};
use crate::api_server::{FieldManager, Kube};
use crate::config::OperatorArgs;
use crate::metrics::Metrics;
use crate::{health, oidc};

#[derive(Args, Clone, Debug)]
pub struct ControllerArgs {
    #[command(flatten)]
    pub operator: OperatorArgs,

    /// Address for `/healthz`, `/readyz` and `/metrics` of the controller.
    #[arg(long, env = "INFRA_CONTROLLER_METRICS_ADDR", default_value = "0.0.0.0:8081")]
    pub metrics_addr: SocketAddr,

    /// Address of the login broker, where the servers redeem login codes (every replica serves
    /// it, leader or not). Reach it only from the server pods (the chart's NetworkPolicy).
    #[arg(long, env = "INFRA_BROKER_ADDR", default_value = "0.0.0.0:8082")]
    pub broker_addr: SocketAddr,

    /// ServiceAccounts (in the operator's namespace) of the servers: only their tokens, for the
    /// audience `infra-broker`, may redeem login codes.
    #[arg(long, env = "INFRA_BROKER_CLIENTS", value_delimiter = ',', default_value = "infra-server")]
    pub broker_clients: Vec<String>,

    /// How often a Ready provider is checked again.
    #[arg(long, env = "INFRA_RECHECK_INTERVAL", default_value = "10m", value_parser = crate::config::parse_span)]
    pub recheck_interval: Duration,

    /// Seconds a leader's lease lasts without renewal; another replica takes over after it.
    #[arg(long, env = "INFRA_LEASE_DURATION", default_value_t = 15)]
    pub lease_duration: u64,

    /// This replica's identity in the Lease (defaults to the pod or host name plus a random suffix).
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    #[command(flatten)]
    pub tokens: crate::kube_access::TokenArgs,

    /// Roles (ClusterRoles, and Roles of these names) that Grants may bind. The controller's
    /// RBAC must allow `bind` on exactly these (the chart derives both from grants.allowedRoles).
    #[arg(long, env = "INFRA_GRANT_ALLOWED_ROLES", value_delimiter = ',', default_value = "view,edit,admin")]
    pub grant_allowed_roles: Vec<String>,

    /// How long each of the Kubernetes issuer's signing keys signs before the next takes over.
    #[arg(long, env = "INFRA_SIGNING_KEY_ROTATION_INTERVAL", default_value = "7d", value_parser = crate::config::parse_span)]
    pub signing_key_rotation_interval: Duration,
}

const LEASE_NAME: &str = "infra-controller";

pub async fn run(args: ControllerArgs, shutdown: watch::Receiver<bool>) -> anyhow::Result<()> {
    let client = crate::api_server::connect().await?;
    let metrics = Arc::new(Metrics::new(crate::metrics::Role::Controller));
    let ready = Arc::new(std::sync::atomic::AtomicBool::new(false));
    health::spawn_metrics_listener(args.metrics_addr, metrics.clone(), ready.clone(), shutdown.clone()).await?;

    let ns = args.operator.namespace.clone();
    let kube = Kube::new(client.clone(), &ns, FieldManager::CONTROLLER);
    let extra_ca = args.operator.read_extra_ca()?;
    let http = args.operator.provider_http()?;
    let provider_access = || oidc::login::ProviderAccess {
        kube: client.clone(),
        namespace: ns.clone(),
        http: http.clone(),
        extra_ca: extra_ca.clone(),
        key_sets: Default::default(),
    };
    // Every replica: the servers' logins must not wait for a leader election.
    let broker = Arc::new(crate::broker::service::Broker {
        access: provider_access(),
        providers: kube.api(),
        refresh_tokens: crate::session::refresh::RefreshTokens::new(&kube),
        token_reviews: kube::Api::all(client.clone()),
        clients: crate::broker::service::client_usernames(&ns, &args.broker_clients),
    });
    crate::broker::service::spawn(args.broker_addr, broker, shutdown.clone()).await?;
    // The key the servers sign login state with; created here so that the servers need not
    // create Secrets.
    crate::state_key::ensure(&kube.api()).await?;
    let identity = match &args.identity {
        Some(id) => id.clone(),
        None => format!("{}-{}", std::env::var("HOSTNAME").unwrap_or_else(|_| "infra-controller".into()), crate::keys::name_suffix(6)?),
    };
    let grace = (args.lease_duration / 3).max(1);
    let lease = LeaseManagerBuilder::new(client.clone(), LEASE_NAME)
        .with_namespace(&ns)
        .with_identity(&identity)
        .with_duration(args.lease_duration)
        .with_grace(grace)
        // The field manager stays the per-identity default: the lease relies on server-side apply
        // conflicts between managers, so a shared manager name would let every replica lead.
        .build()
        .await?;
    let (mut leader, lease_task) = lease.watch().await;
    tracing::info!(%identity, lease = LEASE_NAME, "waiting to become the leader");
    ready.store(true, std::sync::atomic::Ordering::Relaxed);
    let mut wait_shutdown = shutdown.clone();
    loop {
        if *leader.borrow_and_update() {
            break;
        }
        tokio::select! {
            changed = leader.changed() => changed?,
            _ = wait_shutdown.wait_for(|v| *v) => {
                drop(leader);
                let _ = lease_task.await;
                return Ok(());
            }
        }
    }
    tracing::info!(%identity, "became the leader; starting reconcilers");
    metrics.leader.set(1);

    let reporter = Reporter { controller: "infra-controller".into(), instance: Some(identity.clone()) };
    // Users as metadata only (the SCIM id is a label): group membership is judged against them.
    let (users, user_writer) = reflector::store();
    let user_events =
        reflector(user_writer, watcher(kube.api::<PartialObjectMeta<User>>(), watcher::Config::default().labels(labels::SCIM_ID)))
            .default_backoff()
            .touched_objects();
    let ctx = Arc::new(Context {
        access: provider_access(),
        sessions: crate::session::SessionStore::new(&kube, (&args.operator.sessions).into()),
        refresh_tokens: crate::session::refresh::RefreshTokens::new(&kube),
        recorder: Recorder::new(client.clone(), reporter),
        args: args.operator.clone(),
        metrics: metrics.clone(),
        http,
        extra_ca,
        recheck_interval: args.recheck_interval,
        users,
        backoff: Default::default(),
        kube: kube.clone(),
    });

    let stop = {
        let mut s = shutdown.clone();
        let mut l = leader.clone();
        async move {
            tokio::select! {
                _ = s.wait_for(|v| *v) => {}
                _ = l.wait_for(|v| !*v) => tracing::error!("lost the leader lease; stopping reconcilers"),
            }
        }
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let wait_stop = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    let idps = identity_provider_controller(&kube, ctx.clone(), wait_stop(stop_rx.clone()));
    let keys = scim_key_controller(&kube, ctx.clone(), wait_stop(stop_rx.clone()));
    let members = group_members_controller(&kube, user_events, ctx.clone(), wait_stop(stop_rx.clone()));
    let session_checks = session_controller(&kube, ctx.clone(), wait_stop(stop_rx.clone()));
    let key_policy = crate::kube_access::signing_keys::Policy {
        rotation_interval: args.signing_key_rotation_interval,
        token_lifetime: args.tokens.token_lifetime,
    };
    let signing_keys = signing_keys::run(kube.api(), key_policy, wait_stop(stop_rx.clone()));
    let grants = grant_controller(&kube, ctx.clone(), args.grant_allowed_roles.clone(), wait_stop(stop_rx.clone()));
    let device_logins = device_authorizations::run(kube.api(), wait_stop(stop_rx.clone()));
    let access = futures::future::join3(signing_keys, grants, device_logins);
    let reconcilers = futures::future::join5(idps, keys, members, session_checks, access);
    tokio::pin!(reconcilers);
    tokio::select! {
        _ = &mut reconcilers => {}
        _ = stop => {
            let _ = stop_tx.send(true);
            reconcilers.await;
        }
    }
    metrics.leader.set(0);
    let still_leader = *leader.borrow();
    drop(leader);
    if let Ok(Ok(manager)) = lease_task.await {
        // Hand over at once instead of making the next replica wait out the lease.
        if let Err(e) = manager.release().await {
            tracing::warn!(error = %e, "could not release the leader lease");
        }
    }
    if still_leader || *shutdown.borrow() { Ok(()) } else { anyhow::bail!("lost the leader lease") }
}

/// Spec changes (a new generation) and changes to client-secret Secrets trigger a reconcile; status
/// writes do not, so a status update never causes another round of network checks. Only Secrets of
/// the client-secret type are watched, and only their metadata: session and key Secrets, which
/// change often, never wake this controller, and no secret value is held in its cache.
async fn identity_provider_controller(kube: &Kube, ctx: Arc<Context>, stop: impl Future<Output = ()> + Send + Sync + 'static) {
    let (reader, writer) = reflector::store();
    let stream = watcher(kube.api::<IdentityProvider>(), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    let client_secrets =
        watcher(kube.api::<PartialObjectMeta<Secret>>(), watcher::Config::default().fields(&format!("type={CLIENT_SECRET_TYPE}")))
            .default_backoff()
            .touched_objects();
    let store = reader.clone();
    Controller::for_stream(stream, reader)
        .watches_stream(client_secrets, move |secret| {
            let name = secret.name_any();
            store
                .state()
                .into_iter()
                .filter(|idp| idp.spec.client_secret_ref.name == name)
                .map(|idp| ObjectRef::from_obj(idp.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(stop)
        .run(identity_provider::reconcile, identity_provider::error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

async fn scim_key_controller(kube: &Kube, ctx: Arc<Context>, stop: impl Future<Output = ()> + Send + Sync + 'static) {
    let (reader, writer) = reflector::store();
    let stream = watcher(kube.api::<ScimKey>(), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects()
        .predicate_filter(predicates::generation, Default::default());
    Controller::for_stream(stream, reader)
        .owns(kube.api::<Secret>(), watcher::Config::default().labels(labels::SCIM_KEY))
        .graceful_shutdown_on(stop)
        .run(scim_key::reconcile, scim_key::error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// Group membership follows the users that exist: Group changes and User deletions trigger a
/// check of the group's members.
async fn group_members_controller(
    kube: &Kube,
    user_events: impl futures::Stream<Item = Result<PartialObjectMeta<User>, watcher::Error>> + Send + 'static,
    ctx: Arc<Context>,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    let controller = Controller::new(kube.api::<Group>(), watcher::Config::default());
    let group_store = controller.store();
    controller
        .watches_stream(user_events, move |user| {
            let Some(id) = user.labels().get(labels::SCIM_ID).cloned() else { return vec![] };
            group_store
                .state()
                .into_iter()
                .filter(|g| g.spec.members.iter().any(|m| m.value == id))
                .map(|g| ObjectRef::from_obj(g.as_ref()))
                .collect::<Vec<_>>()
        })
        .graceful_shutdown_on(stop)
        .run(group_members::reconcile, group_members::error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
}

/// Login sessions, each re-checked on its own schedule. Every 15 seconds, sessions of earlier
/// versions (whole Secrets) are moved to Sessions, and refresh tokens of logins that never became
/// sessions are deleted.
async fn session_controller(kube: &Kube, ctx: Arc<Context>, stop: impl Future<Output = ()> + Send + Sync + 'static) {
    let controller = Controller::new(kube.api::<crate::api::Session>(), watcher::Config::default());
    let (store, metrics) = (controller.store(), ctx.metrics.clone());
    let gauge = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_secs(10));
        loop {
            tick.tick().await;
            metrics.sessions.set(store.state().len() as i64);
        }
    });
    let housekeeping = {
        let (ctx, secrets, sessions) = (ctx.clone(), kube.api::<Secret>(), kube.api::<crate::api::Session>());
        tokio::spawn(async move {
            loop {
                match crate::session::legacy::migrate(&secrets, &sessions, ctx.kube.manager).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(sessions = n, "moved sessions of an earlier version to Sessions"),
                    Err(e) => tracing::warn!(error = %e, "moving sessions of an earlier version failed; retrying"),
                }
                match ctx.refresh_tokens.sweep_orphans(&sessions, k8s_openapi::jiff::Timestamp::now()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(secrets = n, "deleted refresh tokens of logins that never became sessions"),
                    Err(e) => tracing::warn!(error = %e, "sweeping unclaimed refresh tokens failed"),
                }
                tokio::time::sleep(Duration::from_secs(15)).await;
            }
        })
    };
    controller
        .graceful_shutdown_on(stop)
        .run(sessions::reconcile, sessions::error_policy, ctx)
        .for_each(|_| futures::future::ready(()))
        .await;
    gauge.abort();
    housekeeping.abort();
}

/// Grants into bindings. Changes to the bindings (labelled by the controller) bring their Grants
/// back, so drift is repaired at once; a sweep every minute removes bindings no Grant wants.
async fn grant_controller(
    kube: &Kube,
    ctx: Arc<Context>,
    allowed_roles: Vec<String>,
    stop: impl Future<Output = ()> + Send + Sync + 'static,
) {
    use k8s_openapi::api::rbac::v1::{ClusterRoleBinding, RoleBinding};
    let client = kube.client.clone();
    let controller = Controller::new(kube.api::<crate::api::Grant>(), watcher::Config::default());
    let store = controller.store();
    let grants = Arc::new(grant::Grants { ctx, allowed_roles, store: store.clone() });
    let bindings = watcher::Config::default().labels(crate::kube_access::binding::BINDING_LABEL);
    let owners = move |store: kube::runtime::reflector::Store<crate::api::Grant>| {
        move |key: Option<String>| {
            store
                .state()
                .into_iter()
                .filter(|g| key.as_deref() == Some(crate::kube_access::binding::Target::of(&g.spec).key.as_str()))
                .map(|g| ObjectRef::from_obj(g.as_ref()))
                .collect::<Vec<_>>()
        }
    };
    let (for_rb, for_crb) = (owners(store.clone()), owners(store.clone()));
    let sweeper = {
        let (grants, store) = (grants.clone(), store.clone());
        tokio::spawn(async move {
            if store.wait_until_ready().await.is_err() {
                return;
            }
            loop {
                match grant::sweep_orphans(&grants).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(bindings = n, "removed bindings no Grant wants"),
                    Err(e) => tracing::warn!(error = %e, "sweeping orphaned grant bindings failed"),
                }
                tokio::time::sleep(Duration::from_secs(60)).await;
            }
        })
    };
    controller
        .watches(kube::Api::<RoleBinding>::all(client.clone()), bindings.clone(), move |rb: RoleBinding| {
            for_rb(rb.labels().get(crate::kube_access::binding::BINDING_LABEL).cloned())
        })
        .watches(kube::Api::<ClusterRoleBinding>::all(client), bindings, move |crb: ClusterRoleBinding| {
            for_crb(crb.labels().get(crate::kube_access::binding::BINDING_LABEL).cloned())
        })
        .graceful_shutdown_on(stop)
        .run(grant::reconcile, grant::error_policy, grants)
        .for_each(|_| futures::future::ready(()))
        .await;
    sweeper.abort();
}
