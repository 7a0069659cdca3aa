//! `infra kube apiserver-config`, `infra use`, and the kubeconfig side of `infra login` and
//! `infra logout`.

use std::path::{Path, PathBuf};

use clap::{Args, Subcommand};

use super::kubeconfig::{self, Entry};
use super::server_api::{self, ServerApi};
use super::session_file;
use crate::kube_access::apiserver_config::{self, Issuer};

#[derive(Subcommand, Debug)]
pub enum KubeCommand {
    /// Print the AuthenticationConfiguration (apiserver.config.k8s.io/v1) with which the API
    /// server trusts this Infra server's tokens (kube-apiserver --authentication-config).
    #[command(
        after_help = "Examples:\n  infra kube apiserver-config --server https://infra.example.com > /etc/kubernetes/infra-authn.yaml\n  infra kube apiserver-config --print authorization"
    )]
    ApiserverConfig(ApiserverConfigArgs),
}

#[derive(Args, Debug)]
pub struct ApiserverConfigArgs {
    /// The Infra server to ask for its issuer and cluster name (default: $INFRA_SERVER_URL, then
    /// the server of your login).
    #[arg(long, env = "INFRA_SERVER_URL")]
    pub server: Option<String>,
    /// The issuer URL, instead of asking the server (for a cluster set up before Infra runs).
    #[arg(long, requires = "audience")]
    pub issuer_url: Option<String>,
    /// The cluster name (the tokens' audience), with --issuer-url.
    #[arg(long, requires = "issuer_url")]
    pub audience: Option<String>,
    /// PEM file of the CA that signed the issuer's serving certificate, copied into the
    /// configuration (leave out for a publicly trusted certificate).
    #[arg(long)]
    pub issuer_ca_file: Option<PathBuf>,
    /// PEM file of CA certificates for a server behind a private CA.
    #[arg(long, env = "INFRA_CA_FILE")]
    pub ca_file: Option<PathBuf>,
    /// What to print: the AuthenticationConfiguration (--authentication-config), the
    /// AuthorizationConfiguration with Infra's revocation webhook (--authorization-config), or the
    /// kubeconfig with which the API server reaches that webhook.
    #[arg(long, value_enum, default_value_t = Print::Authentication)]
    pub print: Print,
    /// Where the webhook's kubeconfig is saved on the control plane (named in the
    /// AuthorizationConfiguration).
    #[arg(long, default_value = "/etc/kubernetes/infra-authorization-webhook.kubeconfig")]
    pub webhook_kubeconfig_path: String,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum Print {
    Authentication,
    Authorization,
    WebhookKubeconfig,
}

#[derive(Args, Debug)]
pub struct UseArgs {
    /// CLUSTER or CLUSTER/NAMESPACE: makes the context infra:CLUSTER current (with NAMESPACE).
    pub target: String,
}

pub async fn run(cmd: KubeCommand) -> anyhow::Result<()> {
    match cmd {
        KubeCommand::ApiserverConfig(args) => apiserver_config(args).await,
    }
}

async fn apiserver_config(args: ApiserverConfigArgs) -> anyhow::Result<()> {
    let (issuer, audience) = match (args.issuer_url, args.audience) {
        (Some(i), Some(a)) => (i, a),
        _ => {
            let raw = match args.server {
                Some(s) => s,
                None => session_file::load(&session_file::infra_home()?)?
                    .map(|s| s.server)
                    .ok_or_else(|| anyhow::anyhow!("which Infra server? Pass --server URL, or --issuer-url and --audience"))?,
            };
            let api = ServerApi::new(&server_api::normalize_server(&raw)?, args.ca_file.as_deref())?;
            let published = api.kube_config().await?;
            (published.issuer, published.cluster_name)
        }
    };
    if !issuer.starts_with("https://") {
        anyhow::bail!("the issuer {issuer} is not https: the API server fetches it over HTTPS only; set the server's --kube-issuer-url");
    }
    let ca = match &args.issuer_ca_file {
        Some(f) => Some(std::fs::read_to_string(f).map_err(|e| anyhow::anyhow!("--issuer-ca-file {}: {e}", f.display()))?),
        None => None,
    };
    let issuer = Issuer { url: &issuer, audience: &audience, certificate_authority: ca.as_deref() };
    let config = match args.print {
        Print::Authentication => apiserver_config::authentication(&issuer),
        Print::Authorization => apiserver_config::authorization(&args.webhook_kubeconfig_path),
        Print::WebhookKubeconfig => apiserver_config::webhook_kubeconfig(&issuer),
    };
    print!("{}", apiserver_config::to_yaml(&config));
    Ok(())
}

/// After a login: writes the context `infra:<cluster>` for the cluster the server publishes.
/// Returns a line for the person, or `None` when the server publishes no API server.
pub async fn write_kubeconfig(api: &ServerApi, server: &str, ca_file: Option<&Path>) -> anyhow::Result<Option<String>> {
    let published = api.kube_config().await?;
    let Some(api_server) = published.server.as_deref() else { return Ok(None) };
    let command = std::env::current_exe().map_err(|e| anyhow::anyhow!("finding the infra binary: {e}"))?;
    let mut env = Vec::new();
    // The plugin runs from kubectl's environment, which need not have these.
    if let Some(home) = std::env::var_os("INFRA_HOME").filter(|h| !h.is_empty()) {
        env.push(("INFRA_HOME".to_string(), std::path::absolute(PathBuf::from(home))?.display().to_string()));
    }
    if let Some(ca) = ca_file {
        env.push(("INFRA_CA_FILE".to_string(), std::path::absolute(ca)?.display().to_string()));
    }
    let path = kubeconfig::path()?;
    let mut config = kubeconfig::load(&path)?;
    kubeconfig::set_entry(
        &mut config,
        &Entry {
            cluster: &published.cluster_name,
            server: api_server,
            certificate_authority_data: published.certificate_authority_data.as_deref(),
            infra_server: server,
            command: &command.display().to_string(),
            env,
        },
    );
    kubeconfig::save(&path, &config)?;
    let name = kubeconfig::entry_name(&published.cluster_name);
    Ok(Some(format!(
        "Kubernetes: context {name} in {} (`kubectl --context {name}`, or `infra use {}`)",
        path.display(),
        published.cluster_name
    )))
}

/// At logout: removes the kubeconfig entries Infra wrote and the cached tokens.
pub fn forget(home: &Path) -> anyhow::Result<Vec<String>> {
    super::kube_credential::remove_cached(home);
    let path = kubeconfig::path()?;
    if !path.exists() {
        return Ok(vec![]);
    }
    let mut config = kubeconfig::load(&path)?;
    let removed = kubeconfig::remove_entries(&mut config);
    if !removed.is_empty() {
        kubeconfig::save(&path, &config)?;
    }
    Ok(removed)
}

pub fn use_context(args: UseArgs) -> anyhow::Result<()> {
    let (cluster, namespace) = match args.target.split_once('/') {
        Some((c, ns)) if !ns.is_empty() => (c, Some(ns)),
        Some(_) => anyhow::bail!("{:?}: give CLUSTER or CLUSTER/NAMESPACE", args.target),
        None => (args.target.as_str(), None),
    };
    let path = kubeconfig::path()?;
    let mut config = kubeconfig::load(&path)?;
    kubeconfig::use_context(&mut config, cluster, namespace)?;
    kubeconfig::save(&path, &config)?;
    let name = kubeconfig::entry_name(cluster);
    match namespace {
        Some(ns) => println!("Switched to context {name} (namespace {ns})"),
        None => println!("Switched to context {name}"),
    }
    Ok(())
}
