//! The `infra` command line. Administrative commands talk to the Kubernetes API with the caller's
//! kubeconfig, like kubectl; `login`, `whoami` and `logout` talk to the Infra server.

mod authorize;
mod device;
mod directory;
mod grants;
mod kube;
mod kube_client;
mod kube_credential;
mod kubeconfig;
mod login;
mod loopback;
mod output;
mod providers;
mod scim_keys;
mod server_api;
mod session_file;
mod spinner;

use clap::{CommandFactory, Parser, Subcommand};

pub use kube_client::KubeArgs;

/// The field manager the CLI applies with, so `kubectl get --show-managed-fields` tells CLI edits
/// apart from GitOps and from the operator.
pub const MANAGER: crate::api_server::FieldManager = crate::api_server::FieldManager::CLI;

#[derive(Parser)]
#[command(name = "infra", version, about = "Connect your identity provider to Kubernetes")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

/// The administrative commands talk to the Kubernetes API and take kubectl's connection flags;
/// `login`, `whoami` and `logout` talk to the Infra server and do not list flags they ignore.
#[derive(Subcommand)]
pub enum Command {
    /// Add, list, edit and remove identity providers.
    #[command(
        after_help = "Examples:\n  infra providers add okta --kind okta --url example.okta.com --client-id 0oa1b2c3 --client-secret-stdin\n  infra providers list -o wide\n  infra providers edit okta --groups-filter 'eng-.*'\n  infra providers remove okta"
    )]
    Providers {
        #[command(flatten)]
        kube: KubeArgs,
        #[command(subcommand)]
        command: providers::ProvidersCommand,
    },
    /// Create, list and revoke the keys identity providers use for SCIM provisioning.
    #[command(
        name = "scim-keys",
        after_help = "Examples:\n  infra scim-keys create --provider okta --expires-after 90d --description 'Okta production'\n  KEY=$(infra scim-keys create -q --provider okta)\n  infra scim-keys list --provider okta\n  infra scim-keys revoke okta-x7k2p"
    )]
    ScimKeys {
        #[command(flatten)]
        kube: KubeArgs,
        #[command(subcommand)]
        command: scim_keys::ScimKeysCommand,
    },
    /// List users provisioned by identity providers.
    #[command(
        after_help = "Examples:\n  infra users list\n  infra users list --provider okta -o wide\n  infra users list -o json | jq '.items[].spec.userName'"
    )]
    Users {
        #[command(flatten)]
        kube: KubeArgs,
        #[command(subcommand)]
        command: directory::UsersCommand,
    },
    /// List groups provisioned by identity providers.
    #[command(after_help = "Examples:\n  infra groups list\n  infra groups list -l infrahq.com/provider=okta -o name")]
    Groups {
        #[command(flatten)]
        kube: KubeArgs,
        #[command(subcommand)]
        command: directory::GroupsCommand,
    },
    /// Log in to an Infra server through your identity provider, in the browser (or, on a machine
    /// without one, by approving a code on the server's /device page from any device).
    #[command(
        after_help = "Examples:\n  infra login --server https://infra.example.com\n  infra login --provider okta --no-browser\n  infra login --device   # over SSH: approve the printed code on another device"
    )]
    Login(login::LoginArgs),
    /// Show who you are logged in as.
    #[command(after_help = "Examples:\n  infra whoami\n  infra whoami -o json")]
    Whoami(login::WhoamiArgs),
    /// End your session on the server and forget it on this computer.
    #[command(after_help = "Examples:\n  infra logout\n  infra logout --force")]
    Logout(login::LogoutArgs),
    /// Give users and groups roles in Kubernetes, list and remove such grants.
    #[command(
        after_help = "Examples:\n  infra grants add alice@example.com view --namespace default\n  infra grants add --group Engineering edit --namespace team-a --for 8h\n  infra grants list -o wide\n  infra grants remove alice@example.com view --namespace default"
    )]
    Grants {
        #[command(flatten)]
        kube: KubeArgs,
        #[command(subcommand)]
        command: grants::GrantsCommand,
    },
    /// Make the kubeconfig context `infra:<cluster>` current (`infra use prod/team-a`).
    #[command(after_help = "Examples:\n  infra use prod\n  infra use prod/team-a")]
    Use(kube::UseArgs),
    /// Kubernetes access: the API server's configuration for Infra's tokens.
    #[command(
        subcommand,
        after_help = "Examples:\n  infra kube apiserver-config --server https://infra.example.com --print authentication"
    )]
    Kube(kube::KubeCommand),
    /// kubectl's exec credential plugin for `infra:` contexts (written by `infra login`).
    #[command(
        name = "kube-credential",
        hide = true,
        after_help = "Examples:\n  kubectl --context infra:prod get pods   # runs `infra kube-credential` itself"
    )]
    KubeCredential(kube_credential::KubeCredentialArgs),
    /// Print a shell completion script.
    #[command(
        after_help = "Examples:\n  source <(infra completion bash)\n  infra completion zsh > \"${fpath[1]}/_infra\"\n  infra completion fish > ~/.config/fish/completions/infra.fish\n  infra completion powershell | Out-String | Invoke-Expression"
    )]
    Completion {
        /// The shell to complete in.
        shell: clap_complete::Shell,
    },
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Providers { kube, command } => providers::run(&kube, command).await,
        Command::ScimKeys { kube, command } => scim_keys::run(&kube, command).await,
        Command::Users { kube, command } => directory::run_users(&kube, command).await,
        Command::Groups { kube, command } => directory::run_groups(&kube, command).await,
        Command::Login(args) => login::login(args).await,
        Command::Whoami(args) => login::whoami(args).await,
        Command::Logout(args) => login::logout(args).await,
        Command::Grants { kube, command } => grants::run(&kube, command).await,
        Command::Use(args) => kube::use_context(args),
        Command::Kube(cmd) => kube::run(cmd).await,
        Command::KubeCredential(args) => kube_credential::run(args).await,
        Command::Completion { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "infra", &mut std::io::stdout());
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every command has examples and every flag and argument says what it is for; the session
    /// commands do not offer kubectl flags they would ignore.
    #[test]
    fn every_command_documents_itself() {
        fn walk(cmd: &clap::Command, path: &str, missing: &mut Vec<String>) {
            for arg in cmd.get_arguments() {
                if arg.get_help().is_none() && !matches!(arg.get_id().as_str(), "help" | "version") {
                    missing.push(format!("{path} {}", arg.get_id()));
                }
            }
            for sub in cmd.get_subcommands() {
                walk(sub, &format!("{path} {}", sub.get_name()), missing);
            }
        }
        let cli = Cli::command();
        cli.clone().debug_assert();
        let mut missing = vec![];
        walk(&cli, "infra", &mut missing);
        assert!(missing.is_empty(), "flags without help: {missing:?}");
        // Every command, at every level.
        fn examples(cmd: &clap::Command, path: &str) {
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                let path = format!("{path} {}", sub.get_name());
                let text = sub.get_after_help().map(|h| h.to_string()).unwrap_or_default();
                assert!(text.starts_with("Examples:"), "`{path}` has no examples");
                examples(sub, &path);
            }
        }
        examples(&cli, "infra");
        for session in ["login", "whoami", "logout"] {
            let sub = cli.find_subcommand(session).unwrap();
            for flag in ["kubeconfig", "context", "namespace"] {
                assert!(sub.get_arguments().all(|a| a.get_id() != flag), "`infra {session}` lists --{flag}");
            }
        }
    }

    #[test]
    fn completion_scripts_are_generated() {
        let mut out = Vec::new();
        clap_complete::generate(clap_complete::Shell::Bash, &mut Cli::command(), "infra", &mut out);
        let script = String::from_utf8(out).unwrap();
        assert!(script.contains("scim-keys") && script.contains("--provider"), "{script}");
    }
}
