//! The `infra` command line. Administrative commands talk to the Kubernetes API with the caller's
//! kubeconfig, like kubectl; `login`, `whoami` and `logout` talk to the Infra server.

mod authorize;
mod grants;
mod kube;
mod kube_client;
mod kube_credential;
mod kubeconfig;
mod login;
mod loopback;
mod server_api;
mod session_file;
mod output;
mod providers;
mod scim_keys;
mod spinner;
mod directory;

use clap::{Parser, Subcommand};

pub use kube_client::KubeArgs;

/// The field manager the CLI applies with, so `kubectl get --show-managed-fields` tells CLI edits
/// apart from GitOps and from the operator.
pub const FIELD_MANAGER: &str = "infra-cli";

#[derive(Parser)]
#[command(name = "infra", version, about = "Connect your identity provider to Kubernetes")]
pub struct Cli {
    #[command(flatten)]
    pub kube: KubeArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Add, list, edit and remove identity providers.
    #[command(subcommand)]
    Providers(providers::ProvidersCommand),
    /// Create, list and revoke the keys identity providers use for SCIM provisioning.
    #[command(subcommand, name = "scim-keys")]
    ScimKeys(scim_keys::ScimKeysCommand),
    /// List users provisioned by identity providers.
    #[command(subcommand)]
    Users(directory::UsersCommand),
    /// List groups provisioned by identity providers.
    #[command(subcommand)]
    Groups(directory::GroupsCommand),
    /// Log in to an Infra server through your identity provider, in the browser.
    Login(login::LoginArgs),
    /// Show who you are logged in as.
    Whoami(login::WhoamiArgs),
    /// End your session on the server and forget it on this computer.
    Logout(login::LogoutArgs),
    /// Give users and groups roles in Kubernetes, list and remove such grants.
    #[command(subcommand)]
    Grants(grants::GrantsCommand),
    /// Make the kubeconfig context `infra:<cluster>` current (`infra use prod/team-a`).
    Use(kube::UseArgs),
    /// Kubernetes access: the API server's configuration for Infra's tokens.
    #[command(subcommand)]
    Kube(kube::KubeCommand),
    /// kubectl's exec credential plugin for `infra:` contexts (written by `infra login`).
    #[command(name = "kube-credential", hide = true)]
    KubeCredential(kube_credential::KubeCredentialArgs),
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Providers(cmd) => providers::run(&cli.kube, cmd).await,
        Command::ScimKeys(cmd) => scim_keys::run(&cli.kube, cmd).await,
        Command::Users(cmd) => directory::run_users(&cli.kube, cmd).await,
        Command::Groups(cmd) => directory::run_groups(&cli.kube, cmd).await,
        Command::Login(args) => login::login(args).await,
        Command::Whoami(args) => login::whoami(args).await,
        Command::Logout(args) => login::logout(args).await,
        Command::Grants(cmd) => grants::run(&cli.kube, cmd).await,
        Command::Use(args) => kube::use_context(args),
        Command::Kube(cmd) => kube::run(cmd).await,
        Command::KubeCredential(args) => kube_credential::run(args).await,
    }
}
