//! `GET /api/providers`: what a login page or `infra login` needs to know about each Ready
//! provider. Public by design, so it carries nothing secret.

use crate::server::cache::Cache;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use kube::ResourceExt;
use serde_json::{Value, json};

use crate::api::IdentityProvider;

/// Scopes every login asks for when a provider names none.
pub const BASE_SCOPES: &[&str] = &["openid", "email", "profile"];
/// Asked for too when the provider supports them: `groups` for the groups claim (Okta's org
/// authorization server), `offline_access` for a refresh token to re-check sessions with.
/// Providers that do not know a scope refuse the whole login (`invalid_scope`: Google, Entra ID,
/// Okta custom authorization servers without a `groups` scope, recent Keycloak), so these are
/// only added when the discovery document lists them or lists no scopes at all.
pub const OPTIONAL_SCOPES: &[&str] = &["groups", "offline_access"];

/// The scopes a login asks for: the provider's own list, or the defaults.
pub fn scopes(idp: &IdentityProvider) -> Vec<String> {
    if let Some(scopes) = &idp.spec.scopes {
        return scopes.clone();
    }
    let supported = idp.status.as_ref().and_then(|s| s.scopes_supported.as_ref());
    let optional = OPTIONAL_SCOPES.iter().filter(|s| supported.is_none_or(|list| list.iter().any(|l| l == *s)));
    BASE_SCOPES.iter().chain(optional).map(|s| s.to_string()).collect()
}

pub fn public_info(idp: &IdentityProvider) -> Option<Value> {
    if !idp.is_ready() {
        return None;
    }
    let status = idp.status.as_ref()?;
    let scopes = scopes(idp);
    Some(json!({
        "name": idp.name_any(),
        "kind": idp.spec.kind,
        "issuer": status.issuer,
        "authorizationEndpoint": status.endpoints.as_ref().and_then(|e| e.authorization.clone()),
        "clientID": idp.spec.client_id,
        "scopes": scopes,
    }))
}

pub async fn list(State(providers): State<Cache<IdentityProvider>>) -> impl IntoResponse {
    let mut items: Vec<Value> = providers.state().iter().filter_map(|p| public_info(p)).collect();
    items.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    ([(header::CONTENT_TYPE, "application/json")], json!({"items": items}).to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::conditions::{self, Check};
    use crate::api::{IdentityProviderSpec, IdentityProviderStatus, ProviderEndpoints, ProviderKind, SecretKeyRef};

    fn provider(ready: bool) -> IdentityProvider {
        let mut p = IdentityProvider::new(
            "okta",
            IdentityProviderSpec {
                kind: ProviderKind::Okta,
                url: "example.okta.com".into(),
                client_id: "0oa1".into(),
                client_secret_ref: SecretKeyRef { name: "okta-client-secret".into(), key: "clientSecret".into() },
                scopes: None,
                claims: None,
                groups_filter: None,
                ca_bundle: None,
            },
        );
        let mut status = IdentityProviderStatus {
            issuer: Some("https://example.okta.com".into()),
            endpoints: Some(ProviderEndpoints {
                authorization: Some("https://example.okta.com/oauth2/v1/authorize".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let check = if ready { Check::passed("Ready", "Ready", "") } else { Check::failed("Ready", "InvalidClient", "") };
        conditions::set(&mut status.conditions, &check, Some(1), k8s_openapi::jiff::Timestamp::now());
        p.status = Some(status);
        p
    }

    #[test]
    fn default_scopes_follow_what_the_provider_supports() {
        let mut google = provider(true);
        google.status.as_mut().unwrap().scopes_supported = Some(vec!["openid".into(), "email".into(), "profile".into()]);
        assert_eq!(scopes(&google), vec!["openid", "email", "profile"]);
        let mut entra = provider(true);
        entra.status.as_mut().unwrap().scopes_supported =
            Some(vec!["openid".into(), "profile".into(), "email".into(), "offline_access".into()]);
        assert_eq!(scopes(&entra), vec!["openid", "email", "profile", "offline_access"]);
        let mut explicit = provider(true);
        explicit.spec.scopes = Some(vec!["openid".into(), "custom".into()]);
        assert_eq!(scopes(&explicit), vec!["openid", "custom"]);
    }

    #[test]
    fn only_ready_providers_and_nothing_secret() {
        assert!(public_info(&provider(false)).is_none());
        let info = public_info(&provider(true)).unwrap();
        assert_eq!(info["clientID"], "0oa1");
        assert_eq!(info["kind"], "okta");
        assert_eq!(info["authorizationEndpoint"], "https://example.okta.com/oauth2/v1/authorize");
        assert_eq!(info["scopes"], json!(["openid", "email", "profile", "groups", "offline_access"]));
        let text = info.to_string();
        assert!(!text.contains("okta-client-secret") && !text.contains("clientSecret"));
    }
}
