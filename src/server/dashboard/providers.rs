//! `/providers`: the identity providers, adding, editing and removing one (what `infra providers
//! add|edit|remove` do), and each provider's SCIM access keys (what `infra scim-keys
//! create|revoke` do).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{DeleteParams, Patch, PostParams};
use kube::runtime::wait::await_condition;
use kube::{Api, Resource};
use serde_json::json;

use super::authz::Ask;
use super::views::{self, key_row, provider_row};
use super::{Ctx, DashState, explain, page};
use crate::api::{
    CLIENT_SECRET_TYPE, DEFAULT_SECRET_KEY, IdentityProvider, IdentityProviderSpec, ProviderKind, ScimKey, ScimKeySpec, SecretKeyRef,
    annotations, check_provider_name, client_secret_name, labels,
};
use crate::api_server::FieldManager;
use crate::sealed::Recipient;

const SECTION: &str = "providers";
const KINDS: [&str; 4] = ["okta", "azure", "google", "oidc"];
/// How long the page waits for the controller to generate a key before saying so.
const KEY_WAIT: Duration = Duration::from_secs(30);

macro_rules! signed_in {
    ($s:expr, $headers:expr) => {
        match $s.signed_in(&$headers).await {
            Ok(c) => c,
            Err(resp) => return resp,
        }
    };
}
pub(super) use signed_in;

macro_rules! require {
    ($s:expr, $ctx:expr, $ask:expr, $section:expr) => {
        if let Err(resp) = $s.require(&$ctx, &$ask, $section).await {
            return resp;
        }
    };
}
pub(super) use require;

macro_rules! form {
    ($s:expr, $headers:expr, $ctx:expr, $body:expr) => {
        match $s.form(&$headers, &$ctx, &$body) {
            Ok(f) => f,
            Err(resp) => return *resp,
        }
    };
}
pub(super) use form;

fn field<'a>(form: &'a HashMap<String, String>, name: &str) -> &'a str {
    form.get(name).map(|v| v.trim()).unwrap_or("")
}

/// A provider's client secret is a Secret of type `infrahq.com/client-secret`, whose creation is
/// meant to be the act of someone allowed to create Secrets (see [`CLIENT_SECRET_TYPE`]): adding a
/// provider here asks that too, as `infra providers add` needs it.
fn create_secrets(s: &DashState) -> Ask {
    Ask { verb: "create", group: "", resource: "secrets", namespace: Some(s.namespace().to_string()), name: None }
}

fn parse_kind(raw: &str) -> Option<ProviderKind> {
    serde_json::from_value(json!(raw)).ok()
}

pub async fn list(State(s): State<Arc<DashState>>, headers: HeaderMap) -> Response {
    let ctx = signed_in!(s, headers);
    require!(s, ctx, s.infra("list", "identityproviders"), SECTION);
    let mut providers: Vec<_> = s.login.providers.state().iter().map(|p| provider_row(p)).collect();
    providers.sort_by(|a, b| a.name.cmp(&b.name));
    let (providers_ok, secrets_ok) = futures::join!(s.may(&ctx, s.infra("create", "identityproviders")), s.may(&ctx, create_secrets(&s)));
    let can_create = providers_ok && secrets_ok;
    page(&views::Providers { chrome: s.chrome(&ctx, SECTION).await, providers, can_create, csrf: s.csrf(&ctx), kinds: KINDS })
}

/// Checks what a person typed into the add or edit form, before anything is written.
fn check_settings(kind: ProviderKind, url: &str, client_id: &str) -> Result<(), String> {
    crate::oidc::issuer::issuer_url(kind, url).map_err(|e| format!("URL: {e}"))?;
    if client_id.is_empty() {
        return Err("the client ID is empty; copy it from the application's General tab".into());
    }
    Ok(())
}

async fn refuse(s: &DashState, ctx: &Ctx, status: StatusCode, reason: String) -> Response {
    s.failed(ctx, status, SECTION, reason).await
}

/// `POST /providers`: the provider, then its Secret of type `infrahq.com/client-secret`, owned by
/// it (so removing the provider by any means deletes the secret). The server may create Secrets but
/// never read or change one (README "Permissions"), so the Secret is created with its owner
/// instead of patched afterwards; the controller checks the provider again when it appears.
pub async fn add(State(s): State<Arc<DashState>>, headers: HeaderMap, body: Bytes) -> Response {
    let ctx = signed_in!(s, headers);
    let form = form!(s, headers, ctx, body);
    require!(s, ctx, s.infra("create", "identityproviders"), SECTION);
    require!(s, ctx, create_secrets(&s), SECTION);
    let (name, url, client_id, secret) =
        (field(&form, "name"), field(&form, "url"), field(&form, "client_id"), field(&form, "client_secret"));
    if let Err(e) = check_provider_name(name) {
        return refuse(&s, &ctx, StatusCode::BAD_REQUEST, e).await;
    }
    let Some(kind) = parse_kind(field(&form, "kind")) else {
        return refuse(&s, &ctx, StatusCode::BAD_REQUEST, format!("the kind must be one of {}", KINDS.join(", "))).await;
    };
    if let Err(e) = check_settings(kind, url, client_id) {
        return refuse(&s, &ctx, StatusCode::BAD_REQUEST, e).await;
    }
    if secret.is_empty() {
        return refuse(&s, &ctx, StatusCode::BAD_REQUEST, "the client secret is empty".into()).await;
    }
    let idps: Api<IdentityProvider> = s.kube.api();
    match idps.get_opt(name).await {
        Ok(None) => {}
        Ok(Some(_)) => return refuse(&s, &ctx, StatusCode::CONFLICT, format!("provider {name:?} already exists; edit it instead")).await,
        Err(e) => {
            let (status, why) = explain(&e, "read the providers");
            return refuse(&s, &ctx, status, why).await;
        }
    }
    let spec = IdentityProviderSpec {
        kind,
        url: url.to_string(),
        client_id: client_id.to_string(),
        client_secret_ref: SecretKeyRef { name: client_secret_name(name), key: DEFAULT_SECRET_KEY.into() },
        scopes: None,
        claims: None,
        groups_filter: None,
        ca_bundle: None,
    };
    let mut provider = IdentityProvider::new(name, spec);
    provider.metadata.labels = Some([(labels::MANAGED_BY.to_string(), FieldManager::SERVER.name().to_string())].into());
    let created = match idps.create(&FieldManager::SERVER.post(), &provider).await {
        Ok(p) => p,
        Err(e) => {
            let (status, why) = explain(&e, "create the provider");
            return refuse(&s, &ctx, status, why).await;
        }
    };
    // Created, not applied: an existing Secret of that name (another's) is never overwritten.
    if let Err(e) = create_secret(&s, &created, &client_secret_name(name), secret).await {
        let _ = idps.delete(name, &DeleteParams::default()).await;
        let (status, why) = explain(&e, "create the client secret's Secret");
        return refuse(&s, &ctx, status, why).await;
    }
    tracing::info!(provider = name, by = %ctx.person.username, "dashboard: added an identity provider");
    s.redirect(&format!("providers/{name}?added=1"))
}

/// A new client-secret Secret `name` for `provider`, owned by it.
async fn create_secret(s: &DashState, provider: &IdentityProvider, name: &str, value: &str) -> Result<Secret, kube::Error> {
    let secret = Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(
                [
                    (labels::MANAGED_BY.to_string(), FieldManager::SERVER.name().to_string()),
                    (labels::PROVIDER.to_string(), kube::ResourceExt::name_any(provider)),
                ]
                .into(),
            ),
            owner_references: provider.controller_owner_ref(&()).map(|o| vec![o]),
            ..Default::default()
        },
        type_: Some(CLIENT_SECRET_TYPE.to_string()),
        string_data: Some([(DEFAULT_SECRET_KEY.to_string(), value.to_string())].into()),
        ..Default::default()
    };
    s.kube.api::<Secret>().create(&FieldManager::SERVER.post(), &secret).await
}

pub async fn show(
    State(s): State<Arc<DashState>>,
    headers: HeaderMap,
    Path(name): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let ctx = signed_in!(s, headers);
    require!(s, ctx, s.infra("get", "identityproviders").named(&name), SECTION);
    let Some(idp) = s.login.providers.get(&name) else {
        return refuse(&s, &ctx, StatusCode::NOT_FOUND, format!("There is no provider {name:?}.")).await;
    };
    let (list_keys, can_generate, can_revoke, can_update, can_delete) = futures::join!(
        s.may(&ctx, s.infra("list", "scimkeys")),
        s.may(&ctx, s.infra("create", "scimkeys")),
        s.may(&ctx, s.infra("delete", "scimkeys")),
        s.may(&ctx, s.infra("update", "identityproviders").named(&name)),
        s.may(&ctx, s.infra("delete", "identityproviders").named(&name)),
    );
    let keys = list_keys.then(|| {
        let mut keys: Vec<_> = s.keys.state().into_iter().filter(|k| k.spec.provider_ref.name == name).collect();
        keys.sort_by_key(|k| std::cmp::Reverse(k.metadata.creation_timestamp.clone()));
        keys.iter().map(|k| key_row(k)).collect()
    });
    let status = idp.status.clone().unwrap_or_default();
    let redirect_uris = if status.redirect_uris.is_empty() {
        std::iter::once(s.login.args.login_callback_url()).chain(s.login.args.cli_redirect_uris.iter().cloned()).collect()
    } else {
        status.redirect_uris.clone()
    };
    page(&views::Provider {
        chrome: s.chrome(&ctx, SECTION).await,
        p: provider_row(&idp),
        added: q.contains_key("added"),
        redirect_uris,
        scim_url: status.scim_url.clone().unwrap_or_else(|| s.login.args.scim_url()),
        conditions: status.conditions,
        keys,
        can_generate,
        can_revoke,
        can_update,
        can_delete,
        csrf: s.csrf(&ctx),
    })
}

/// `POST /providers/<name>`: URL, client ID and, when given, a new client secret.
pub async fn edit(State(s): State<Arc<DashState>>, headers: HeaderMap, Path(name): Path<String>, body: Bytes) -> Response {
    let ctx = signed_in!(s, headers);
    let form = form!(s, headers, ctx, body);
    require!(s, ctx, s.infra("update", "identityproviders").named(&name), SECTION);
    let Some(idp) = s.login.providers.get(&name) else {
        return refuse(&s, &ctx, StatusCode::NOT_FOUND, format!("There is no provider {name:?}.")).await;
    };
    let (url, client_id, secret) = (field(&form, "url"), field(&form, "client_id"), field(&form, "client_secret"));
    if let Err(e) = check_settings(idp.spec.kind, url, client_id) {
        return refuse(&s, &ctx, StatusCode::BAD_REQUEST, e).await;
    }
    // A new client secret is a new Secret, owned by the provider, which the provider then names:
    // the server may create Secrets but never change one (a patch would answer with the whole
    // Secret). The previous Secret stays, owned by the provider, until the provider is removed.
    let mut spec = json!({"url": url, "clientId": client_id});
    if !secret.is_empty() {
        require!(s, ctx, create_secrets(&s), SECTION);
        let new_name = match crate::keys::name_suffix(6) {
            Ok(suffix) => format!("{}-{suffix}", client_secret_name(&name)),
            Err(e) => return refuse(&s, &ctx, StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).await,
        };
        if let Err(e) = create_secret(&s, &idp, &new_name, secret).await {
            let (status, why) = explain(&e, "create the new client secret's Secret");
            return refuse(&s, &ctx, status, why).await;
        }
        spec["clientSecretRef"] = json!({"name": new_name, "key": DEFAULT_SECRET_KEY});
    }
    let idps: Api<IdentityProvider> = s.kube.api();
    if let Err(e) = idps.patch(&name, &FieldManager::SERVER.patch(), &Patch::Merge(&json!({"spec": spec}))).await {
        let (status, why) = explain(&e, "change the provider");
        return refuse(&s, &ctx, status, why).await;
    }
    tracing::info!(provider = %name, by = %ctx.person.username, secret_changed = !secret.is_empty(), "dashboard: edited an identity provider");
    s.redirect(&format!("providers/{name}"))
}

pub async fn confirm_remove(State(s): State<Arc<DashState>>, headers: HeaderMap, Path(name): Path<String>) -> Response {
    let ctx = signed_in!(s, headers);
    require!(s, ctx, s.infra("delete", "identityproviders").named(&name), SECTION);
    let base = s.base();
    page(&views::Confirm {
        chrome: s.chrome(&ctx, SECTION).await,
        heading: format!("Remove provider {name}?"),
        consequence: format!(
            "Its users and groups, its SCIM keys and its client secret are deleted, and everyone signed in through {name} is signed out."
        ),
        action: format!("{base}providers/{name}/remove"),
        button: "Remove provider",
        cancel: format!("{base}providers/{name}"),
        csrf: s.csrf(&ctx),
    })
}

pub async fn remove(State(s): State<Arc<DashState>>, headers: HeaderMap, Path(name): Path<String>, body: Bytes) -> Response {
    let ctx = signed_in!(s, headers);
    let _ = form!(s, headers, ctx, body);
    require!(s, ctx, s.infra("delete", "identityproviders").named(&name), SECTION);
    let idps: Api<IdentityProvider> = s.kube.api();
    match idps.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {
            tracing::info!(provider = %name, by = %ctx.person.username, "dashboard: removed an identity provider");
            s.redirect("providers")
        }
        Err(e) => {
            let (status, why) = explain(&e, "remove the provider");
            refuse(&s, &ctx, status, why).await
        }
    }
}

/// `POST /providers/<name>/keys`: Generate SCIM Access Key. As `infra scim-keys create`: a
/// one-time key pair, the ScimKey carrying its public half, and the controller's sealed key
/// opened here and shown once. Only this request ever holds the private half.
pub async fn generate_key(State(s): State<Arc<DashState>>, headers: HeaderMap, Path(provider): Path<String>, body: Bytes) -> Response {
    let ctx = signed_in!(s, headers);
    let form = form!(s, headers, ctx, body);
    require!(s, ctx, s.infra("create", "scimkeys"), SECTION);
    let Some(idp) = s.login.providers.get(&provider) else {
        return refuse(&s, &ctx, StatusCode::NOT_FOUND, format!("There is no provider {provider:?}.")).await;
    };
    let expires_after = Some(field(&form, "expires_after").to_string()).filter(|e| !e.is_empty());
    if let Some(e) = &expires_after
        && crate::api::scim_key::parse_duration(e).is_none()
    {
        return refuse(&s, &ctx, StatusCode::BAD_REQUEST, format!("expires after {e:?} is not a duration such as 90d or 12h")).await;
    }
    let description = Some(field(&form, "description").to_string()).filter(|d| !d.is_empty());
    let (recipient, suffix) = match (Recipient::new(), crate::keys::name_suffix(5)) {
        (Ok(r), Ok(sfx)) => (r, sfx),
        _ => return refuse(&s, &ctx, StatusCode::INTERNAL_SERVER_ERROR, "the random source failed".into()).await,
    };
    let name = format!("{provider}-{suffix}");
    let spec = ScimKeySpec { provider_ref: crate::api::ProviderRef { name: provider.clone() }, expires_after, description };
    let mut key = ScimKey::new(&name, spec);
    key.metadata.labels =
        Some([(labels::MANAGED_BY.into(), FieldManager::SERVER.name().into()), (labels::PROVIDER.into(), provider.clone())].into());
    key.metadata.annotations = Some([(annotations::KEY_RECIPIENT.into(), recipient.public())].into());
    let keys: Api<ScimKey> = s.kube.api();
    if let Err(e) = keys.create(&PostParams { field_manager: Some(FieldManager::SERVER.name().into()), ..Default::default() }, &key).await {
        let (status, why) = explain(&e, "create the SCIM key");
        return refuse(&s, &ctx, status, why).await;
    }
    tracing::info!(key = %name, provider = %provider, by = %ctx.person.username, "dashboard: generating a SCIM key");
    let issued = |k: Option<&ScimKey>| k.and_then(|k| k.status.as_ref()).is_some_and(|st| st.sealed_key.is_some() && st.key_id.is_some());
    let key = match tokio::time::timeout(KEY_WAIT, await_condition(keys, &name, issued)).await {
        Ok(Ok(Some(k))) => k,
        Ok(Ok(None)) => {
            return refuse(&s, &ctx, StatusCode::CONFLICT, format!("SCIM key {name:?} was deleted while it was generated.")).await;
        }
        Ok(Err(e)) => return refuse(&s, &ctx, StatusCode::SERVICE_UNAVAILABLE, format!("watching SCIM key {name:?} failed: {e}")).await,
        Err(_) => {
            return refuse(
                &s,
                &ctx,
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "The controller did not generate key {name:?} within {} seconds; is it running? Revoke the key and try again.",
                    KEY_WAIT.as_secs()
                ),
            )
            .await;
        }
    };
    let status = key.status.unwrap_or_default();
    let token = match recipient.open(status.sealed_key.as_deref().unwrap_or_default()) {
        Ok(t) => t,
        Err(e) => {
            return refuse(
                &s,
                &ctx,
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("{e}: the key cannot be shown; revoke {name:?} and generate another."),
            )
            .await;
        }
    };
    page(&views::KeyCreated {
        chrome: s.chrome(&ctx, SECTION).await,
        provider,
        scim_url: idp.status.as_ref().and_then(|st| st.scim_url.clone()).unwrap_or_else(|| s.login.args.scim_url()),
        token,
        key_name: name,
        key_id: status.key_id.unwrap_or_default(),
        expires: status.expires_at.map_or_else(|| "never".into(), |t| t.0.to_string()),
    })
}

/// `POST /providers/<name>/keys/<key>/revoke`: deletes the ScimKey and its Secret; the server
/// refuses the key at once.
pub async fn revoke_key(
    State(s): State<Arc<DashState>>,
    headers: HeaderMap,
    Path((provider, name)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let ctx = signed_in!(s, headers);
    let _ = form!(s, headers, ctx, body);
    require!(s, ctx, s.infra("delete", "scimkeys").named(&name), SECTION);
    let keys: Api<ScimKey> = s.kube.api();
    match keys.get_opt(&name).await {
        Ok(Some(k)) if k.spec.provider_ref.name == provider => {}
        Ok(_) => return refuse(&s, &ctx, StatusCode::NOT_FOUND, format!("Provider {provider:?} has no SCIM key {name:?}.")).await,
        Err(e) => {
            let (status, why) = explain(&e, "read the SCIM key");
            return refuse(&s, &ctx, status, why).await;
        }
    };
    if let Err(e) = keys.delete(&name, &DeleteParams::default()).await {
        let (status, why) = explain(&e, "revoke the SCIM key");
        return refuse(&s, &ctx, status, why).await;
    }
    // The key's Secret is owned by the ScimKey: the garbage collector deletes it. The key stops
    // working at once anyway, since the server authenticates from the ScimKeys it watches.
    tracing::info!(key = %name, provider = %provider, by = %ctx.person.username, "dashboard: revoked a SCIM key");
    s.redirect(&format!("providers/{provider}"))
}
