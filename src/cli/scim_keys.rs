//! `infra scim-keys create|list|revoke`.

use std::time::Duration;

use clap::Subcommand;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, PatchParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::kube_client::{Kube, KubeArgs, explain};
use super::output::{self, ListArgs, col, wide};
use super::{MANAGER, spinner};
use crate::api::scim_key::parse_duration;
use crate::api::{IdentityProvider, ScimKey, ScimKeySpec, annotations, labels};
use crate::sealed::Recipient;

#[derive(Subcommand)]
pub enum ScimKeysCommand {
    /// Generate a SCIM key for a provider and print it, once, with what to paste into the provider.
    #[command(
        after_help = "Examples:\n  infra scim-keys create --provider okta --expires-after 90d --description 'Okta production'\n  KEY=$(infra scim-keys create -q --provider okta)"
    )]
    Create {
        /// The provider whose users and groups the key may provision.
        #[arg(long)]
        provider: String,
        /// Name of the ScimKey object (default: `<provider>-<random>`).
        #[arg(long)]
        name: Option<String>,
        /// Expire the key after this long, such as `90d` or `720h` (default: never).
        #[arg(long, value_parser = check_duration)]
        expires_after: Option<String>,
        /// What the key is for.
        #[arg(long)]
        description: Option<String>,
        /// Print only the key, for scripts (`KEY=$(infra scim-keys create -q --provider okta)`).
        #[arg(short, long)]
        quiet: bool,
    },
    /// List SCIM keys (never their values).
    #[command(after_help = "Examples:\n  infra scim-keys list\n  infra scim-keys list --provider okta -o wide")]
    List {
        /// Only keys of this provider.
        #[arg(long)]
        provider: Option<String>,
        #[command(flatten)]
        list: ListArgs,
    },
    /// Revoke a key: deletes the ScimKey and its Secret; the server refuses the key at once.
    #[command(after_help = "Examples:\n  infra scim-keys revoke okta-x7k2p")]
    Revoke {
        /// Name of the ScimKey.
        name: String,
    },
}

fn check_duration(raw: &str) -> Result<String, String> {
    parse_duration(raw).map(|_| raw.to_string()).ok_or_else(|| format!("{raw:?} is not a duration such as 90d, 720h or 1w"))
}

pub async fn run(args: &KubeArgs, cmd: ScimKeysCommand) -> anyhow::Result<()> {
    let kube = args.connect().await?;
    match cmd {
        ScimKeysCommand::Create { provider, name, expires_after, description, quiet } => {
            create(&kube, provider, name, expires_after, description, quiet).await
        }
        ScimKeysCommand::List { provider, list: args } => list(&kube, provider, &args).await,
        ScimKeysCommand::Revoke { name } => revoke(&kube, &name).await,
    }
}

async fn create(
    kube: &Kube,
    provider: String,
    name: Option<String>,
    expires_after: Option<String>,
    description: Option<String>,
    quiet: bool,
) -> anyhow::Result<()> {
    let idps: Api<IdentityProvider> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let idp =
        idps.get_opt(&provider).await.map_err(|e| explain(e, "read identity providers"))?.ok_or_else(|| {
            anyhow::anyhow!("provider {provider:?} not found in namespace {:?}; see `infra providers list`", kube.namespace)
        })?;
    let name = match name {
        Some(n) => n,
        None => format!("{provider}-{}", crate::keys::name_suffix(5)?),
    };
    let keys: Api<ScimKey> = Api::namespaced(kube.client.clone(), &kube.namespace);
    if keys.get_opt(&name).await.map_err(|e| explain(e, "read SCIM keys"))?.is_some() {
        anyhow::bail!("a ScimKey named {name:?} already exists; choose another --name or revoke it first");
    }
    let spec = ScimKeySpec { provider_ref: crate::api::ProviderRef { name: provider.clone() }, expires_after, description };
    // A one-time key pair: the controller seals the generated key to its public half, and only
    // this process ever holds the private half. No access to Secrets is needed.
    let recipient = Recipient::new()?;
    let body = json!({
        "apiVersion": ScimKey::api_version(&()),
        "kind": ScimKey::kind(&()),
        "metadata": {
            "name": name,
            "labels": {labels::MANAGED_BY: MANAGER.name(), labels::PROVIDER: provider},
            "annotations": {annotations::KEY_RECIPIENT: recipient.public()},
        },
        "spec": spec,
    });
    keys.patch(&name, &PatchParams::apply(MANAGER.name()), &Patch::Apply(&body)).await.map_err(|e| explain(e, "create the ScimKey"))?;

    let spin = if quiet { indicatif::ProgressBar::hidden() } else { spinner::start("Generating the key") };
    let issued = |k: Option<&ScimKey>| k.and_then(|k| k.status.as_ref()).is_some_and(|s| s.sealed_key.is_some() && s.key_id.is_some());
    let waited = tokio::time::timeout(Duration::from_secs(60), await_condition(keys.clone(), &name, issued)).await;
    spin.finish_and_clear();
    let key = match waited {
        Ok(Ok(Some(k))) => k,
        Ok(Ok(None)) => anyhow::bail!("ScimKey {name:?} was deleted while waiting"),
        Ok(Err(e)) => anyhow::bail!("watching ScimKey {name:?} failed: {e}"),
        Err(_) => anyhow::bail!(
            "timed out waiting for the controller to generate key {name:?}; is the Infra controller running? See `kubectl describe scimkey {name}`"
        ),
    };
    let status = key.status.unwrap_or_default();
    let token = recipient.open(status.sealed_key.as_deref().unwrap_or_default()).map_err(|e| {
        anyhow::anyhow!("{e}: the key of ScimKey {name:?} cannot be shown; revoke it (`infra scim-keys revoke {name}`) and create another")
    })?;
    let scim_url = idp.status.and_then(|s| s.scim_url).unwrap_or_else(|| "<external URL>/api/scim/v2".into());
    if quiet {
        println!("{token}");
        return Ok(());
    }
    let expires = status.expires_at.map(|t| t.0.to_string()).unwrap_or_else(|| "never".into());
    println!("Created SCIM key {name:?} for provider {provider:?} (key id {}, expires {expires}).", status.key_id.unwrap_or_default());
    println!("The key is shown only now; Infra keeps only its hash.");
    println!();
    println!("In the provider's SCIM app (Okta: SCIM 2.0 Test App (Header Auth) > Provisioning > Configure API Integration):");
    println!("  Base URL:  {scim_url}");
    println!("  API Token: Bearer {token}");
    Ok(())
}

async fn list(kube: &Kube, provider: Option<String>, args: &ListArgs) -> anyhow::Result<()> {
    let keys: Api<ScimKey> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let mut items = keys.list(&args.params()).await.map_err(|e| explain(e, "list SCIM keys"))?.items;
    if let Some(p) = &provider {
        items.retain(|k| &k.spec.provider_ref.name == p);
    }
    let now = Timestamp::now();
    let columns =
        [col("NAME"), col("PROVIDER"), col("KEY ID"), col("PHASE"), col("AGE"), col("EXPIRES"), wide("SECRET"), col("DESCRIPTION")];
    let row = |k: &ScimKey| {
        let s = k.status.clone().unwrap_or_default();
        vec![
            k.name_any(),
            k.spec.provider_ref.name.clone(),
            s.key_id.unwrap_or_default(),
            s.phase.map_or("Pending", |p| p.as_str()).to_string(),
            output::age(k.metadata.creation_timestamp.as_ref().map(|t| t.0), now),
            s.expires_at.map(|t| t.0.to_string()).unwrap_or_else(|| "never".into()),
            s.secret_name.unwrap_or_default(),
            k.spec.description.clone().unwrap_or_default(),
        ]
    };
    let empty = format!("No SCIM keys in namespace {:?}. Create one with `infra scim-keys create --provider NAME`.", kube.namespace);
    output::print_list(args, items, &columns, row, &empty)
}

async fn revoke(kube: &Kube, name: &str) -> anyhow::Result<()> {
    let keys: Api<ScimKey> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let key = match keys.get_opt(name).await.map_err(|e| explain(e, "read SCIM keys"))? {
        Some(k) => k,
        None => anyhow::bail!("SCIM key {name:?} not found in namespace {:?}; see `infra scim-keys list`", kube.namespace),
    };
    keys.delete(name, &DeleteParams::default()).await.map_err(|e| explain(e, "delete the ScimKey"))?;
    // Delete the owned Secret now rather than waiting for the garbage collector.
    if let Some(secret_name) = key.status.as_ref().and_then(|s| s.secret_name.clone()) {
        let secrets: Api<Secret> = Api::namespaced(kube.client.clone(), &kube.namespace);
        match secrets.delete(&secret_name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => return Err(explain(e, "delete the key's Secret")),
        }
    }
    let id = key.status.and_then(|s| s.key_id).unwrap_or_default();
    println!("Revoked SCIM key {name:?} (key id {id}); the server refuses it from now on.");
    Ok(())
}
