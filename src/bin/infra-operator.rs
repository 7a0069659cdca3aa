//! `infra-operator`: the controller and server roles, and the CRD printer.

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use infra::{controller, server, telemetry};

#[derive(Parser)]
#[command(name = "infra-operator", version, about = "Infra's Kubernetes operator")]
struct Cli {
    #[command(flatten)]
    log: telemetry::LogArgs,
    #[command(subcommand)]
    command: Command,
}

// The roles' flags are boxed: they are many times the size of the other commands'.
#[derive(Subcommand)]
enum Command {
    /// Run the leader-elected reconcilers for IdentityProviders and ScimKeys.
    Controller(Box<controller::ControllerArgs>),
    /// Serve SCIM, login and health endpoints.
    Server(Box<server::ServerArgs>),
    /// Print the CustomResourceDefinitions as YAML (or write one file per CRD with --dir).
    Crds {
        /// Write one file per CRD into this folder instead of printing them.
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Also write them as Helm chart templates into this folder (charts/infra/templates/crds).
        #[arg(long)]
        chart_dir: Option<PathBuf>,
    },
    /// Emergency rotation of the Kubernetes issuer's signing keys (for a leaked key): a new key
    /// signs at once and every other key is unpublished, so tokens signed before stop working
    /// (once the API server refreshes the key set; `infra kube-credential` then mints new ones).
    RotateSigningKeys {
        /// The namespace Infra runs in.
        #[arg(long, env = "INFRA_NAMESPACE", default_value = "infra-system")]
        namespace: String,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Crds { dir, chart_dir } => {
            for (file, yaml) in infra::api::crds_yaml()? {
                match &dir {
                    Some(dir) => std::fs::write(dir.join(&file), &yaml)?,
                    None => print!("---\n{yaml}"),
                }
            }
            if let Some(chart_dir) = chart_dir {
                for (file, template) in infra::api::crd_chart_templates()? {
                    std::fs::write(chart_dir.join(&file), template)?;
                }
            }
            Ok(())
        }
        Command::RotateSigningKeys { namespace } => {
            let client = infra::api_server::connect().await?;
            let kid = infra::controller::signing_keys::rotate_now(&kube::Api::namespaced(client, &namespace)).await?;
            println!(
                "Rotated the signing keys in {namespace}: key {kid} signs from now; tokens signed by earlier keys are no longer accepted"
            );
            Ok(())
        }
        Command::Controller(args) => {
            telemetry::init(&cli.log)?;
            controller::run(*args, infra::shutdown_signal()).await
        }
        Command::Server(args) => {
            telemetry::init(&cli.log)?;
            server::run(*args, infra::shutdown_signal()).await
        }
    }
}
