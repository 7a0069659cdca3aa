//! Connecting to the cluster the way kubectl does, and turning API errors into advice.

use std::path::PathBuf;

use clap::Args;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

/// Where the operator lives when nothing else says so (the Helm chart's and kustomize's default).
pub const DEFAULT_NAMESPACE: &str = "infra-system";

#[derive(Args, Clone, Debug)]
pub struct KubeArgs {
    /// Path to the kubeconfig file (default: the files in $KUBECONFIG, merged as kubectl does,
    /// then ~/.kube/config, then the in-cluster ServiceAccount).
    #[arg(long, global = true)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context to use.
    #[arg(long, global = true)]
    pub context: Option<String>,
    /// The namespace Infra runs in. Defaults to $INFRA_NAMESPACE, then the context's namespace
    /// (unless it is `default`), then `infra-system`. (`-n/--namespace` is kept for what it
    /// means to kubectl users: the namespace a grant applies to.)
    #[arg(id = "infra_namespace", long = "infra-namespace", global = true, env = "INFRA_NAMESPACE")]
    pub namespace: Option<String>,
}

pub struct Kube {
    pub client: Client,
    pub namespace: String,
}

impl KubeArgs {
    pub async fn connect(&self) -> anyhow::Result<Kube> {
        let options = KubeConfigOptions { context: self.context.clone(), ..Default::default() };
        // Without --kubeconfig, kube's own loader reads $KUBECONFIG (several files merged as
        // kubectl merges them; empty means unset) or ~/.kube/config.
        let config = match (&self.kubeconfig, &self.context) {
            (Some(path), _) => {
                let kubeconfig = Kubeconfig::read_from(path).map_err(|e| anyhow::anyhow!("reading kubeconfig {}: {e}", path.display()))?;
                Config::from_custom_kubeconfig(kubeconfig, &options)
                    .await
                    .map_err(|e| anyhow::anyhow!("loading kubeconfig {}: {e}", path.display()))?
            }
            (None, Some(_)) => Config::from_kubeconfig(&options).await?,
            (None, None) => Config::infer()
                .await
                .map_err(|e| anyhow::anyhow!("no Kubernetes configuration found ({e}); pass --kubeconfig or set KUBECONFIG"))?,
        };
        let namespace = match &self.namespace {
            Some(ns) => ns.clone(),
            None if config.default_namespace != "default" => config.default_namespace.clone(),
            None => DEFAULT_NAMESPACE.to_string(),
        };
        let client = Client::try_from(config)?;
        Ok(Kube { client, namespace })
    }
}

/// Advice for an API error, in terms of what the person can do about it.
pub fn explain(err: kube::Error, what: &str) -> anyhow::Error {
    match &err {
        kube::Error::Api(s) if s.code == 403 => {
            anyhow::anyhow!("not allowed to {what}: {}; ask a cluster admin for access to Infra's resources in this namespace", s.message)
        }
        kube::Error::Api(s) if s.code == 404 && s.message.contains("the server could not find the requested resource") => {
            anyhow::anyhow!(
                "Infra's CustomResourceDefinitions are not installed in this cluster; install them with \
                 `kubectl apply -k config/crd` or the Helm chart"
            )
        }
        kube::Error::Api(s) if s.code == 422 || s.code == 400 => anyhow::anyhow!("the API server refused to {what}: {}", s.message),
        kube::Error::Api(s) if s.code == 401 => {
            anyhow::anyhow!("could not {what}: the API server did not accept your credentials ({}); check your kubeconfig", s.message)
        }
        kube::Error::Api(s) if crate::api_server::is_unavailable(&err) => {
            anyhow::anyhow!(
                "could not {what}: the Kubernetes API server is unavailable ({}, HTTP {}); try again in a few seconds",
                s.message,
                s.code
            )
        }
        kube::Error::Api(s) => anyhow::anyhow!("could not {what}: {} (HTTP {})", s.message, s.code),
        _ => anyhow::anyhow!("could not {what}: {err}; is the cluster reachable with this kubeconfig?"),
    }
}
