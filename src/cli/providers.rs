//! `infra providers add|list|edit|remove`.

use std::io::Read;
use std::time::Duration;

use clap::{Args, Subcommand};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::jiff::Timestamp;
use kube::api::{DeleteParams, Patch, Preconditions};
use kube::runtime::wait::await_condition;
use kube::{Api, Resource, ResourceExt};
use serde_json::json;

use super::kube_client::{Kube, KubeArgs, explain};
use super::output::{self, ListArgs, col, wide};
use super::{MANAGER, spinner};
use crate::api::conditions::{self, FALSE, TRUE};
use crate::api::{
    CLIENT_SECRET_TYPE, ClaimMapping, DEFAULT_SECRET_KEY, IdentityProvider, IdentityProviderSpec, ProviderKind, SecretKeyRef, labels,
};
use crate::oidc::issuer;

#[derive(Subcommand)]
pub enum ProvidersCommand {
    /// Connect an identity provider: stores the client secret in a Secret, creates the
    /// IdentityProvider and waits until Infra has checked it.
    #[command(
        after_help = "Examples:\n  infra providers add okta --kind okta --url example.okta.com --client-id 0oa1b2c3 --client-secret-stdin < secret.txt\n  OKTA_SECRET=... infra providers add okta --url example.okta.com/oauth2/default --client-id 0oa1b2c3 --client-secret-env OKTA_SECRET"
    )]
    Add(AddArgs),
    /// List identity providers and whether they are ready.
    #[command(
        after_help = "Examples:\n  infra providers list\n  infra providers list -o wide\n  infra providers list -o json | jq '.items[].status.phase'"
    )]
    List(ListArgs),
    /// Change a provider's settings or client secret, then wait until it is checked again.
    #[command(
        after_help = "Examples:\n  infra providers edit okta --client-secret-stdin < new-secret.txt\n  infra providers edit okta --groups-filter 'eng-.*'"
    )]
    Edit(EditArgs),
    /// Remove a provider and the Secret `providers add` created for it.
    #[command(after_help = "Examples:\n  infra providers remove okta")]
    Remove {
        /// Name of the provider.
        name: String,
    },
}

#[derive(Args, Debug)]
pub struct SecretArgs {
    /// The OAuth client secret. Prefer --client-secret-env or --client-secret-stdin, which keep it
    /// out of your shell history.
    #[arg(long, group = "secret")]
    pub client_secret: Option<String>,
    /// Read the client secret from this environment variable.
    #[arg(long, value_name = "VAR", group = "secret")]
    pub client_secret_env: Option<String>,
    /// Read the client secret from standard input.
    #[arg(long, group = "secret")]
    pub client_secret_stdin: bool,
}

#[derive(Args, Debug)]
pub struct ProviderSettings {
    /// Extra or replacement OAuth scopes (repeat or comma-separate).
    #[arg(long, value_delimiter = ',')]
    pub scopes: Option<Vec<String>>,
    /// The ID token claim holding the username (default `email`, then `preferred_username`).
    #[arg(long)]
    pub username_claim: Option<String>,
    /// The ID token claim holding the groups (default `groups`).
    #[arg(long)]
    pub groups_claim: Option<String>,
    /// Only take groups whose name matches this regular expression (default `.*`).
    #[arg(long)]
    pub groups_filter: Option<String>,
    /// PEM file of CA certificates for a provider behind a private CA.
    #[arg(long)]
    pub ca_file: Option<std::path::PathBuf>,
    /// How long to wait for the provider to become ready.
    #[arg(long, default_value = "2m", value_parser = crate::config::parse_span)]
    pub timeout: Duration,
    /// Do not wait for the provider to be checked.
    #[arg(long)]
    pub no_wait: bool,
}

#[derive(Args, Debug)]
pub struct AddArgs {
    /// A name for the provider, such as `okta` (lowercase letters, digits and dashes).
    pub name: String,
    /// The provider's URL: for Okta, your Okta domain (`example.okta.com`), optionally with
    /// `/oauth2/<server>`.
    #[arg(long)]
    pub url: String,
    /// The OAuth client ID of the Infra application at the provider.
    #[arg(long)]
    pub client_id: String,
    #[command(flatten)]
    pub secret: SecretArgs,
    /// okta, azure, google or oidc.
    #[arg(long, value_enum, default_value_t = KindArg::Okta)]
    pub kind: KindArg,
    #[command(flatten)]
    pub settings: ProviderSettings,
}

#[derive(Args, Debug)]
pub struct EditArgs {
    /// Name of the provider.
    pub name: String,
    /// A new provider URL (the issuer is discovered again).
    #[arg(long)]
    pub url: Option<String>,
    /// A new OAuth client ID.
    #[arg(long)]
    pub client_id: Option<String>,
    /// A new kind: okta, azure, google or oidc.
    #[arg(long, value_enum)]
    pub kind: Option<KindArg>,
    #[command(flatten)]
    pub secret: SecretArgs,
    #[command(flatten)]
    pub settings: ProviderSettings,
}

#[derive(Clone, Copy, Debug, clap::ValueEnum)]
pub enum KindArg {
    Okta,
    Azure,
    Google,
    Oidc,
}

impl From<KindArg> for ProviderKind {
    fn from(k: KindArg) -> Self {
        match k {
            KindArg::Okta => ProviderKind::Okta,
            KindArg::Azure => ProviderKind::Azure,
            KindArg::Google => ProviderKind::Google,
            KindArg::Oidc => ProviderKind::Oidc,
        }
    }
}

pub async fn run(args: &KubeArgs, cmd: ProvidersCommand) -> anyhow::Result<()> {
    match cmd {
        ProvidersCommand::Add(add) => {
            // Everything a person typed is checked before anything is created.
            validate_name(&add.name)?;
            let kind = ProviderKind::from(add.kind);
            issuer::issuer_url(kind, &add.url).map_err(|e| anyhow::anyhow!("--url: {e}"))?;
            if add.client_id.trim().is_empty() {
                anyhow::bail!("--client-id is empty; copy the Client ID from the application's General tab");
            }
            let secret = read_secret(&add.secret)?.ok_or_else(|| {
                anyhow::anyhow!("a client secret is required: pass --client-secret, --client-secret-env VAR or --client-secret-stdin")
            })?;
            let ca_bundle = read_ca(&add.settings)?;
            let kube = args.connect().await?;
            add_provider(&kube, add, kind, secret, ca_bundle).await
        }
        ProvidersCommand::List(list_args) => list(&args.connect().await?, &list_args).await,
        ProvidersCommand::Edit(edit) => {
            let secret = read_secret(&edit.secret)?;
            let ca_bundle = read_ca(&edit.settings)?;
            edit_provider(&args.connect().await?, edit, secret, ca_bundle).await
        }
        ProvidersCommand::Remove { name } => remove(&args.connect().await?, &name).await,
    }
}

/// Provider names become parts of Secret names and URLs, so they follow DNS label rules.
pub fn validate_name(name: &str) -> anyhow::Result<()> {
    crate::api::check_provider_name(name).map_err(|e| anyhow::anyhow!(e))
}

fn read_secret(args: &SecretArgs) -> anyhow::Result<Option<String>> {
    let secret = if let Some(s) = &args.client_secret {
        Some(s.clone())
    } else if let Some(var) = &args.client_secret_env {
        Some(std::env::var(var).map_err(|_| anyhow::anyhow!("--client-secret-env: environment variable {var} is not set"))?)
    } else if args.client_secret_stdin {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        Some(s)
    } else {
        None
    };
    match secret.map(|s| s.trim().to_string()) {
        Some(s) if s.is_empty() => anyhow::bail!("the client secret is empty"),
        other => Ok(other),
    }
}

/// Checks the settings that need no cluster (today, that --groups-filter compiles) and reads the
/// CA file, before anything is written.
fn read_ca(settings: &ProviderSettings) -> anyhow::Result<Option<String>> {
    if let Some(filter) = &settings.groups_filter {
        crate::oidc::identity::groups_filter(Some(filter)).map_err(|e| anyhow::anyhow!("--groups-filter: {e}"))?;
    }
    let Some(path) = &settings.ca_file else { return Ok(None) };
    let pem = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("--ca-file {}: {e}", path.display()))?;
    if !pem.contains("-----BEGIN CERTIFICATE-----") {
        anyhow::bail!("--ca-file {} contains no PEM certificate", path.display());
    }
    Ok(Some(pem))
}

fn secret_name(provider: &str) -> String {
    crate::api::client_secret_name(provider)
}

async fn add_provider(kube: &Kube, add: AddArgs, kind: ProviderKind, secret: String, ca_bundle: Option<String>) -> anyhow::Result<()> {
    let idps: Api<IdentityProvider> = Api::namespaced(kube.client.clone(), &kube.namespace);
    if idps.get_opt(&add.name).await.map_err(|e| explain(e, "read identity providers"))?.is_some() {
        anyhow::bail!(
            "provider {:?} already exists in namespace {:?}; change it with `infra providers edit {}`",
            add.name,
            kube.namespace,
            add.name
        );
    }
    let s = &add.settings;
    let claims = (s.username_claim.is_some() || s.groups_claim.is_some())
        .then(|| ClaimMapping { username: s.username_claim.clone(), groups: s.groups_claim.clone() });
    let spec = IdentityProviderSpec {
        kind,
        url: add.url.trim().to_string(),
        client_id: add.client_id.trim().to_string(),
        client_secret_ref: SecretKeyRef { name: secret_name(&add.name), key: DEFAULT_SECRET_KEY.into() },
        scopes: s.scopes.clone(),
        claims,
        groups_filter: s.groups_filter.clone(),
        ca_bundle,
    };
    // The Secret goes first so the controller never sees the provider without its secret.
    apply_secret(kube, &add.name, &secret, None).await?;
    let idp = apply_provider(&idps, &add.name, &spec).await?;
    // Owned by the provider, so that deleting the provider (by any means) deletes the secret.
    apply_secret(kube, &add.name, &secret, Some(&idp)).await?;
    eprintln!("Created IdentityProvider {:?} and Secret {:?} in namespace {:?}", add.name, secret_name(&add.name), kube.namespace);
    if s.no_wait {
        return Ok(());
    }
    wait_and_report(&idps, &add.name, s.timeout).await
}

async fn apply_provider(idps: &Api<IdentityProvider>, name: &str, spec: &IdentityProviderSpec) -> anyhow::Result<IdentityProvider> {
    let body = json!({
        "apiVersion": IdentityProvider::api_version(&()),
        "kind": IdentityProvider::kind(&()),
        "metadata": {"name": name, "labels": {labels::MANAGED_BY: MANAGER.name()}},
        "spec": spec,
    });
    idps.patch(name, &MANAGER.apply(), &Patch::Apply(&body)).await.map_err(|e| explain(e, "create the IdentityProvider"))
}

async fn apply_secret(kube: &Kube, provider: &str, value: &str, owner: Option<&IdentityProvider>) -> anyhow::Result<()> {
    let secrets: Api<Secret> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let mut metadata = json!({
        "name": secret_name(provider),
        "labels": {labels::MANAGED_BY: MANAGER.name(), labels::PROVIDER: provider},
    });
    if let Some(owner) = owner {
        metadata["ownerReferences"] = json!([owner.controller_owner_ref(&()).expect("applied objects have a uid")]);
    }
    let body = json!({
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": metadata,
        "type": CLIENT_SECRET_TYPE,
        "stringData": {DEFAULT_SECRET_KEY: value},
    });
    retype_if_needed(&secrets, &secret_name(provider)).await?;
    secrets
        .patch(&secret_name(provider), &MANAGER.apply(), &Patch::Apply(&body))
        .await
        .map_err(|e| explain(e, "write the client secret's Secret"))?;
    Ok(())
}

/// Gives an existing Secret the type `infrahq.com/client-secret`, which providers require since
/// the type check (earlier versions of `providers add` created `Opaque` Secrets). A Secret's type
/// is immutable, so it is recreated with everything else kept: data, labels, annotations and
/// owners. The delete is conditional on the Secret's uid, so a concurrent change is not lost.
async fn retype_if_needed(secrets: &Api<Secret>, name: &str) -> anyhow::Result<()> {
    let Some(old) = secrets.get_opt(name).await.map_err(|e| explain(e, "read the client secret's Secret"))? else {
        return Ok(());
    };
    if old.type_.as_deref() == Some(CLIENT_SECRET_TYPE) {
        return Ok(());
    }
    let recreated = Secret {
        metadata: ObjectMeta {
            name: old.metadata.name.clone(),
            labels: old.metadata.labels.clone(),
            annotations: old.metadata.annotations.clone(),
            owner_references: old.metadata.owner_references.clone(),
            ..Default::default()
        },
        type_: Some(CLIENT_SECRET_TYPE.to_string()),
        data: old.data.clone(),
        ..Default::default()
    };
    let precondition = DeleteParams {
        preconditions: Some(Preconditions { uid: old.uid(), resource_version: old.resource_version() }),
        ..Default::default()
    };
    secrets
        .delete(name, &precondition)
        .await
        .map_err(|e| explain(e, "replace the client secret's Secret with one of the required type"))?;
    secrets
        .create(&MANAGER.post(), &recreated)
        .await
        .map_err(|e| explain(e, "recreate the client secret's Secret with the required type"))?;
    eprintln!("Recreated Secret {name:?} with type {CLIENT_SECRET_TYPE:?} (required since Infra 0.2)");
    Ok(())
}

/// Waits until the controller has checked the current generation, then prints either what to
/// paste into the provider or what failed.
async fn wait_and_report(idps: &Api<IdentityProvider>, name: &str, timeout: Duration) -> anyhow::Result<()> {
    let spin = spinner::start(format!("Checking provider {name:?}"));
    let checked = |obj: Option<&IdentityProvider>| {
        obj.and_then(|idp| {
            let status = idp.status.as_ref()?;
            let current = status.observed_generation == idp.metadata.generation;
            let ready = conditions::find(&status.conditions, "Ready")?;
            Some(current && (ready.status == TRUE || ready.status == FALSE))
        })
        .unwrap_or(false)
    };
    let result = tokio::time::timeout(timeout, await_condition(idps.clone(), name, checked)).await;
    spin.finish_and_clear();
    let idp = match result {
        Err(_) => anyhow::bail!(
            "timed out after {}s waiting for provider {name:?} to be checked; is the Infra controller running? \
             See `kubectl describe identityprovider {name}`",
            timeout.as_secs()
        ),
        Ok(Err(e)) => anyhow::bail!("watching provider {name:?} failed: {e}"),
        Ok(Ok(None)) => anyhow::bail!("provider {name:?} was deleted while waiting"),
        Ok(Ok(Some(idp))) => idp,
    };
    let status = idp.status.unwrap_or_default();
    if conditions::is_true(&status.conditions, "Ready") {
        println!("Provider {name:?} is ready (issuer {}).", status.issuer.as_deref().unwrap_or("?"));
        println!();
        println!("Add these sign-in redirect URIs to the application at the provider:");
        for uri in &status.redirect_uris {
            println!("  {uri}");
        }
        println!();
        println!("SCIM base URL for provisioning (Okta: SCIM 2.0 Test App (Header Auth) > Provisioning):");
        println!("  {}", status.scim_url.as_deref().unwrap_or("?"));
        println!();
        println!("Next: infra scim-keys create --provider {name}");
        Ok(())
    } else {
        let mut lines = vec![format!("provider {name:?} is not ready:")];
        for c in status.conditions.iter().filter(|c| c.status == FALSE && c.type_ != "Ready") {
            lines.push(format!("  {} ({}): {}", c.type_, c.reason, c.message));
        }
        lines.push(format!("Fix it and run `infra providers edit {name} ...`, or inspect `kubectl describe identityprovider {name}`."));
        anyhow::bail!(lines.join("\n"))
    }
}

async fn list(kube: &Kube, args: &ListArgs) -> anyhow::Result<()> {
    let idps: Api<IdentityProvider> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let items = idps.list(&args.params()).await.map_err(|e| explain(e, "list identity providers"))?.items;
    let now = Timestamp::now();
    let columns = [col("NAME"), col("KIND"), col("URL"), col("PHASE"), col("AGE"), wide("ISSUER"), col("MESSAGE")];
    let row = |idp: &IdentityProvider| {
        let status = idp.status.clone().unwrap_or_default();
        let message =
            conditions::find(&status.conditions, "Ready").filter(|c| c.status != TRUE).map(|c| c.message.clone()).unwrap_or_default();
        vec![
            idp.name_any(),
            idp.spec.kind.to_string(),
            idp.spec.url.clone(),
            status.phase.map_or("Pending", |p| p.as_str()).to_string(),
            output::age(idp.metadata.creation_timestamp.as_ref().map(|t| t.0), now),
            status.issuer.unwrap_or_default(),
            message,
        ]
    };
    let empty = format!("No identity providers in namespace {:?}. Add one with `infra providers add`.", kube.namespace);
    output::print_list(args, items, &columns, row, &empty)
}

async fn edit_provider(kube: &Kube, edit: EditArgs, secret: Option<String>, ca_bundle: Option<String>) -> anyhow::Result<()> {
    let idps: Api<IdentityProvider> = Api::namespaced(kube.client.clone(), &kube.namespace);
    let idp = idps.get_opt(&edit.name).await.map_err(|e| explain(e, "read the identity provider"))?.ok_or_else(|| {
        anyhow::anyhow!("provider {:?} not found in namespace {:?}; see `infra providers list`", edit.name, kube.namespace)
    })?;
    let mut spec = idp.spec.clone();
    if let Some(kind) = edit.kind {
        spec.kind = kind.into();
    }
    if let Some(url) = &edit.url {
        spec.url = url.trim().to_string();
    }
    issuer::issuer_url(spec.kind, &spec.url).map_err(|e| anyhow::anyhow!("--url: {e}"))?;
    if let Some(id) = &edit.client_id {
        if id.trim().is_empty() {
            anyhow::bail!("--client-id is empty");
        }
        spec.client_id = id.trim().to_string();
    }
    let s = &edit.settings;
    if s.scopes.is_some() {
        spec.scopes = s.scopes.clone();
    }
    if s.username_claim.is_some() || s.groups_claim.is_some() {
        let mut claims = spec.claims.clone().unwrap_or_default();
        claims.username = s.username_claim.clone().or(claims.username);
        claims.groups = s.groups_claim.clone().or(claims.groups);
        spec.claims = Some(claims);
    }
    if s.groups_filter.is_some() {
        spec.groups_filter = s.groups_filter.clone();
    }
    if ca_bundle.is_some() {
        spec.ca_bundle = ca_bundle;
    }
    let spec_changed = spec != idp.spec;
    if !spec_changed && secret.is_none() {
        anyhow::bail!("nothing to change: pass at least one of --url, --client-id, --client-secret…, --kind, --scopes, --groups-filter");
    }
    if let Some(value) = &secret {
        update_secret(kube, &spec.client_secret_ref, value).await?;
    }
    if spec_changed {
        apply_provider(&idps, &edit.name, &spec).await?;
    }
    eprintln!("Updated provider {:?}", edit.name);
    if s.no_wait {
        return Ok(());
    }
    // A secret-only change does not bump the generation; give the controller a moment to see the
    // Secret change before trusting a Ready that predates it.
    if !spec_changed {
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    wait_and_report(&idps, &edit.name, s.timeout).await
}

/// Writes the new secret into whatever Secret the provider references (which may be one that
/// GitOps manages; then only the one key changes), giving it the required type first.
async fn update_secret(kube: &Kube, r: &SecretKeyRef, value: &str) -> anyhow::Result<()> {
    let secrets: Api<Secret> = Api::namespaced(kube.client.clone(), &kube.namespace);
    retype_if_needed(&secrets, &r.name).await?;
    let body = json!({
        "apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": r.name},
        "type": CLIENT_SECRET_TYPE,
        "stringData": {r.key.clone(): value},
    });
    secrets.patch(&r.name, &MANAGER.apply(), &Patch::Apply(&body)).await.map_err(|e| explain(e, "update the client secret"))?;
    Ok(())
}

async fn remove(kube: &Kube, name: &str) -> anyhow::Result<()> {
    let idps: Api<IdentityProvider> = Api::namespaced(kube.client.clone(), &kube.namespace);
    match idps.delete(name, &DeleteParams::foreground()).await {
        Ok(deleted) => {
            // Foreground deletion: the provider disappears once the garbage collector has deleted
            // what it owns, so when this returns, nothing of it is left.
            if let Some(uid) = deleted.left().and_then(|idp| idp.uid()) {
                let spin = spinner::start(format!("Removing provider {name:?}"));
                let gone = await_condition(idps.clone(), name, kube::runtime::conditions::is_deleted(&uid));
                let waited = tokio::time::timeout(Duration::from_secs(60), gone).await;
                spin.finish_and_clear();
                if waited.is_err() {
                    anyhow::bail!(
                        "provider {name:?} is still being deleted after 60s; is kube-controller-manager (garbage collection) running?"
                    );
                }
            }
        }
        Err(kube::Error::Api(s)) if s.code == 404 => {
            anyhow::bail!("provider {name:?} not found in namespace {:?}; see `infra providers list`", kube.namespace)
        }
        Err(e) => return Err(explain(e, "delete the identity provider")),
    }
    // The garbage collector would delete it too; deleting it now means the secret is gone when
    // this command returns. Only the Secret `providers add` created is touched.
    let secrets: Api<Secret> = Api::namespaced(kube.client.clone(), &kube.namespace);
    if let Some(secret) = secrets.get_opt(&secret_name(name)).await.map_err(|e| explain(e, "read the client secret"))? {
        let ours = secret.labels().get(labels::MANAGED_BY).map(String::as_str) == Some(MANAGER.name())
            && secret.labels().get(labels::PROVIDER).map(String::as_str) == Some(name);
        if ours {
            match secrets.delete(&secret_name(name), &DeleteParams::default()).await {
                // The garbage collector got there first.
                Ok(_) => {}
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => return Err(explain(e, "delete the client secret")),
            }
        }
    }
    println!("Removed provider {name:?}");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names() {
        for good in ["okta", "okta-prod", "a", "x1"] {
            assert!(validate_name(good).is_ok(), "{good}");
        }
        for bad in ["", "Okta", "-okta", "okta-", "ok_ta", "ok.ta", &"a".repeat(49)] {
            assert!(validate_name(bad).is_err(), "{bad}");
        }
    }
}
