//! What a failed call to the Kubernetes API server means for whoever Infra is answering. The API
//! server being down, restarting or overloaded is an outage: SCIM clients, browsers and the CLI get
//! `503 Service Unavailable` with `Retry-After` (which Okta and Entra ID treat as "retry later"),
//! never a `500` that looks like a bug or a `4xx` that says their request was wrong.
//!
//! It also says who is writing: every write carries its role's [`FieldManager`].

use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use kube::api::{PatchParams, PostParams};
use kube::client::ConfigExt;
use kube::client::retry::RetryPolicy;
use kube::{Api, Client, Config, Resource};
use tower::{BoxError, ServiceBuilder};

/// Idle connections to the API server kept for reuse. kube's default stack keeps every connection
/// a burst opened for 90 s: after a SCIM push (16 requests at a time, each writing up to 16
/// members at a time) that was about 140 connections, 10 MiB of TLS and HTTP buffers, a quarter
/// of a server's memory (heaptrack). Sixteen cover steady traffic; a burst beyond them opens more
/// and closes the surplus when it ends.
const IDLE_CONNECTIONS: usize = 16;
const IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// The operator's client of the API server (the kubeconfig or the in-cluster ServiceAccount, as
/// `Client::try_default`): kube's stack (base URI, authentication, extra headers, retries of
/// 429/503, connect and read timeouts) over a connection pool of bounded idle size.
pub async fn connect() -> anyhow::Result<Client> {
    let config = Config::infer().await?;
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    let mut connector = hyper_timeout::TimeoutConnector::new(config.rustls_https_connector_with_connector(http)?);
    connector.set_connect_timeout(config.connect_timeout);
    connector.set_read_timeout(config.read_timeout);
    connector.set_write_timeout(config.write_timeout);
    let pool = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(IDLE_CONNECTIONS)
        .pool_idle_timeout(IDLE_TIMEOUT)
        .build(connector);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.default_retry.then(|| tower::retry::RetryLayer::new(RetryPolicy::server_retry())))
        .option_layer(config.auth_layer()?)
        .layer(config.extra_headers_layer()?)
        .map_err(BoxError::from)
        .service(pool);
    Ok(Client::new(service, config.default_namespace))
}

/// What clients are told to wait before retrying during an outage, in seconds.
pub const RETRY_AFTER_SECS: u32 = 5;

/// Whether `err` means the API server could not be used right now, rather than that it judged the
/// request. Connection failures (refused, reset, timed out) are outages, and so are 5xx and 429
/// answers; so are 401 and 403 to the operator's own ServiceAccount, which a restarting API server
/// answers while its authenticator and authorizer warm up (a lasting one is an RBAC mistake that
/// the log names, which the person retrying cannot fix either).
pub fn is_unavailable(err: &kube::Error) -> bool {
    match err {
        kube::Error::Api(s) => s.code >= 500 || matches!(s.code, 401 | 403 | 429),
        kube::Error::HyperError(_) | kube::Error::Service(_) | kube::Error::ReadEvents(_) => true,
        _ => false,
    }
}

/// The field manager a role writes with. Every create, patch and replace names it, so
/// `kubectl get --show-managed-fields`, server-side apply conflicts and the audit log say which part
/// of Infra changed a field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FieldManager(&'static str);

impl FieldManager {
    pub const CONTROLLER: Self = Self("infra-controller");
    pub const SERVER: Self = Self("infra-server");
    pub const CLI: Self = Self("infra-cli");

    /// The manager's name, also the `app.kubernetes.io/managed-by` label of what the role creates.
    pub const fn name(self) -> &'static str {
        self.0
    }

    pub fn post(self) -> PostParams {
        PostParams { field_manager: Some(self.0.into()), ..Default::default() }
    }

    /// For merge and JSON patches.
    pub fn patch(self) -> PatchParams {
        PatchParams { field_manager: Some(self.0.into()), ..Default::default() }
    }

    /// Server-side apply, taking over fields another manager set (the role owns what it applies).
    pub fn apply(self) -> PatchParams {
        PatchParams::apply(self.0).force()
    }
}

/// A role's view of the API server: its client, the namespace it serves and the field manager it
/// writes with, handed to everything that talks to the API server.
#[derive(Clone)]
pub struct Kube {
    pub client: Client,
    pub namespace: String,
    pub manager: FieldManager,
}

impl Kube {
    pub fn new(client: Client, namespace: impl Into<String>, manager: FieldManager) -> Self {
        Self { client, namespace: namespace.into(), manager }
    }

    /// `K` in the role's namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope>,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::Status;

    fn api(code: u16, message: &str) -> kube::Error {
        kube::Error::Api(Box::new(Status { code, message: message.into(), ..Status::failure(message, "") }))
    }

    #[test]
    fn outages_and_verdicts() {
        for code in [500, 502, 503, 504, 429, 401, 403] {
            assert!(is_unavailable(&api(code, "x")), "{code}");
        }
        for code in [400, 404, 409, 413, 422] {
            assert!(!is_unavailable(&api(code, "x")), "{code}");
        }
        assert!(is_unavailable(&kube::Error::Service("connection refused".into())));
    }

    #[test]
    fn every_write_names_its_manager() {
        let m = FieldManager::SERVER;
        assert_eq!(m.post().field_manager.as_deref(), Some("infra-server"));
        assert_eq!(m.patch().field_manager.as_deref(), Some("infra-server"));
        let apply = m.apply();
        assert_eq!(apply.field_manager.as_deref(), Some("infra-server"));
        assert!(apply.force);
    }
}
