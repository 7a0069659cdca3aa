//! `/grants`: the Grant resources, adding one and removing one.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use kube::api::DeleteParams;
use kube::{Api, ResourceExt};

use super::authz::Ask;
use super::providers::{form, require, signed_in};
use super::views::{self, grant_row};
use super::{DashState, explain, page};
use crate::api::{Grant, GrantRole, GrantSpec, GrantSubject, RoleKind, labels};
use crate::api_server::FieldManager;

const SECTION: &str = "grants";

pub async fn list(State(s): State<Arc<DashState>>, headers: HeaderMap) -> Response {
    let ctx = signed_in!(s, headers);
    require!(s, ctx, s.infra("list", "grants"), SECTION);
    let api: Api<Grant> = s.kube.api();
    let mut grants = match api.list(&Default::default()).await {
        Ok(l) => l.items,
        Err(e) => return s.unavailable(&format!("Infra cannot read grants right now ({e}).")),
    };
    grants.sort_by_key(|g| g.name_any());
    let (can_create, can_delete) = futures::join!(s.may(&ctx, s.infra("create", "grants")), s.may(&ctx, s.infra("delete", "grants")));
    let mut providers: Vec<String> = s.login.providers.state().iter().map(|p| p.name_any()).collect();
    providers.sort();
    page(&views::Grants {
        chrome: s.chrome(&ctx, SECTION).await,
        grants: grants.iter().map(grant_row).collect(),
        providers,
        can_create,
        can_delete,
        csrf: s.csrf(&ctx),
    })
}

/// The Grant a form asks for, or what is wrong with it. Pure.
pub fn grant_from_form(form: &std::collections::HashMap<String, String>) -> Result<GrantSpec, String> {
    let get = |k: &str| form.get(k).map(|v| v.trim()).unwrap_or("");
    let (provider, subject, role, namespace) = (get("provider"), get("subject"), get("role"), get("namespace"));
    if provider.is_empty() || subject.is_empty() || role.is_empty() {
        return Err("provider, user or group, and role are required".into());
    }
    let (user, group) = match get("subject_kind") {
        "user" => (Some(subject.to_string()), None),
        "group" => (None, Some(subject.to_string())),
        other => return Err(format!("the subject kind must be user or group, not {other:?}")),
    };
    let kind = match get("role_kind") {
        "ClusterRole" => RoleKind::ClusterRole,
        "Role" => RoleKind::Role,
        other => return Err(format!("the role kind must be ClusterRole or Role, not {other:?}")),
    };
    if kind == RoleKind::Role && namespace.is_empty() {
        return Err("a Role exists in one namespace: give the namespace, or grant a ClusterRole".into());
    }
    Ok(GrantSpec {
        subject: GrantSubject { provider: provider.to_string(), user, group },
        role: GrantRole { kind, name: role.to_string() },
        namespace: (!namespace.is_empty()).then(|| namespace.to_string()),
        expires_after: None,
        expires_at: None,
    })
}

pub async fn add(State(s): State<Arc<DashState>>, headers: HeaderMap, body: Bytes) -> Response {
    let ctx = signed_in!(s, headers);
    let form = form!(s, headers, ctx, body);
    require!(s, ctx, s.infra("create", "grants"), SECTION);
    let spec = match grant_from_form(&form) {
        Ok(spec) => spec,
        Err(why) => return s.failed(&ctx, StatusCode::BAD_REQUEST, SECTION, why).await,
    };
    // What the Grant admission policy asks of the Grant's author: the dashboard writes it with
    // its own account, so it asks the person's question first.
    require!(s, ctx, Ask::bind(spec.role.kind == RoleKind::ClusterRole, &spec.role.name, spec.namespace.as_deref()), SECTION);
    let suffix = match crate::keys::name_suffix(5) {
        Ok(sfx) => sfx,
        Err(e) => return s.failed(&ctx, StatusCode::INTERNAL_SERVER_ERROR, SECTION, e.to_string()).await,
    };
    let mut grant =
        Grant::new(&format!("{}-{suffix}", spec.role.name.to_lowercase().replace(|c: char| !c.is_ascii_alphanumeric(), "-")), spec);
    grant.metadata.labels = Some([(labels::MANAGED_BY.to_string(), FieldManager::SERVER.name().to_string())].into());
    let api: Api<Grant> = s.kube.api();
    match api.create(&FieldManager::SERVER.post(), &grant).await {
        Ok(g) => {
            tracing::info!(grant = %g.name_any(), by = %ctx.person.username, "dashboard: added a grant");
            s.redirect("grants")
        }
        Err(e) => {
            let (status, why) = explain(&e, "add the grant");
            s.failed(&ctx, status, SECTION, why).await
        }
    }
}

pub async fn remove(State(s): State<Arc<DashState>>, headers: HeaderMap, Path(name): Path<String>, body: Bytes) -> Response {
    let ctx = signed_in!(s, headers);
    let _ = form!(s, headers, ctx, body);
    require!(s, ctx, s.infra("delete", "grants").named(&name), SECTION);
    let api: Api<Grant> = s.kube.api();
    match api.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {
            tracing::info!(grant = %name, by = %ctx.person.username, "dashboard: removed a grant");
            s.redirect("grants")
        }
        Err(e) => {
            let (status, why) = explain(&e, "remove the grant");
            s.failed(&ctx, status, SECTION, why).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> std::collections::HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn grant_forms_become_grants_or_say_whats_wrong() {
        let spec = grant_from_form(&form(&[
            ("provider", "okta"),
            ("subject_kind", "group"),
            ("subject", " SRE "),
            ("role_kind", "ClusterRole"),
            ("role", "view"),
            ("namespace", ""),
        ]))
        .unwrap();
        assert_eq!(spec.subject, GrantSubject { provider: "okta".into(), user: None, group: Some("SRE".into()) });
        assert_eq!((spec.role.kind, spec.namespace), (RoleKind::ClusterRole, None));
        let role_without_ns =
            form(&[("provider", "okta"), ("subject_kind", "user"), ("subject", "kate"), ("role_kind", "Role"), ("role", "deployer")]);
        assert!(grant_from_form(&role_without_ns).unwrap_err().contains("namespace"));
        assert!(grant_from_form(&form(&[("provider", "okta")])).unwrap_err().contains("required"));
        let odd =
            form(&[("provider", "okta"), ("subject_kind", "robot"), ("subject", "x"), ("role_kind", "ClusterRole"), ("role", "view")]);
        assert!(grant_from_form(&odd).is_err());
    }
}
