//! Turns the URL an admin pastes into the issuer URL the provider's discovery document must name.
//! Pure: unit-tested without network.

use url::Url;

use crate::api::ProviderKind;

const DISCOVERY_SUFFIX: &str = "/.well-known/openid-configuration";
const AZURE_HOSTS: &[&str] = &["login.microsoftonline.com", "login.microsoftonline.us", "login.partner.microsoftonline.cn"];
const AZURE_MULTI_TENANT: &[&str] = &["common", "organizations", "consumers"];

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IssuerError {
    #[error("URL is empty")]
    Empty,
    #[error("{0:?} is not a valid URL: {1}")]
    Invalid(String, String),
    #[error("URL must use https (http is only accepted for loopback addresses): {0}")]
    NotHttps(String),
    #[error("URL must not contain a query, a fragment or credentials: {0}")]
    Extra(String),
    #[error("an Okta URL is the Okta domain, optionally followed by /oauth2/<authorization server id>; got path {0:?}")]
    OktaPath(String),
    #[error("an Azure URL is login.microsoftonline.com/<tenant id>/v2.0; got {0}")]
    AzureShape(String),
    #[error("the multi-tenant Azure endpoint {0:?} has no fixed issuer; use your tenant ID (Entra ID > Overview > Tenant ID)")]
    AzureMultiTenant(String),
    #[error("a Google provider's URL is accounts.google.com; got {0}")]
    GoogleHost(String),
}

/// The issuer for `kind` given what the admin wrote in `spec.url`, as the exact string the
/// discovery document must name.
pub fn issuer_url(kind: ProviderKind, raw: &str) -> Result<String, IssuerError> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(IssuerError::Empty);
    }
    let with_scheme = if raw.contains("://") { raw.to_string() } else { format!("https://{raw}") };
    let mut url = Url::parse(&with_scheme).map_err(|e| IssuerError::Invalid(raw.to_string(), e.to_string()))?;
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        return Err(IssuerError::Extra(raw.to_string()));
    }
    let loopback = is_loopback(&url);
    if url.scheme() != "https" && !(url.scheme() == "http" && loopback) {
        return Err(IssuerError::NotHttps(raw.to_string()));
    }
    // Admins often paste the discovery document's URL rather than the issuer.
    if let Some(path) = url.path().strip_suffix(DISCOVERY_SUFFIX).map(str::to_string) {
        url.set_path(&path);
        return match kind {
            ProviderKind::Oidc => Ok(without_root_slash(&url)),
            _ => issuer_url(kind, url.as_str()),
        };
    }
    match kind {
        ProviderKind::Okta => okta(url).map(|u| without_root_slash(&u)),
        ProviderKind::Azure => azure(url).map(|u| u.to_string()),
        ProviderKind::Google => google(url).map(|u| without_root_slash(&u)),
        // Any other issuer is kept as written, trailing slash included: issuers are compared
        // exactly (OpenID Connect Discovery §4.3), and some (Auth0's) end in a slash.
        ProviderKind::Oidc => Ok(with_scheme),
    }
}

fn is_loopback(url: &Url) -> bool {
    match url.host() {
        Some(url::Host::Domain(d)) => d == "localhost",
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        None => false,
    }
}

fn okta(mut url: Url) -> Result<Url, IssuerError> {
    // `example-admin.okta.com` is the admin console of `example.okta.com`.
    if let Some(host) = url.host_str().map(str::to_string)
        && let Some((first, rest)) = host.split_once('.')
        && let Some(org) = first.strip_suffix("-admin")
    {
        url.set_host(Some(&format!("{org}.{rest}"))).expect("a shorter label of a valid host is valid");
    }
    let segments: Vec<&str> = url.path().split('/').filter(|s| !s.is_empty()).collect();
    let path = match segments.as_slice() {
        [] => String::new(),
        // `/oauth2/default/v1/authorize` and similar endpoint URLs name the same server.
        ["oauth2", server, rest @ ..] if !server.is_empty() && (rest.is_empty() || rest[0] == "v1") => {
            format!("/oauth2/{server}")
        }
        // Pasted straight from the admin console's address bar.
        ["admin", ..] => String::new(),
        _ => return Err(IssuerError::OktaPath(url.path().to_string())),
    };
    url.set_path(&path);
    Ok(url)
}

fn azure(mut url: Url) -> Result<Url, IssuerError> {
    let host = url.host_str().unwrap_or_default().to_string();
    if !AZURE_HOSTS.contains(&host.as_str()) {
        return Err(IssuerError::AzureShape(url.to_string()));
    }
    let segments: Vec<String> = url.path().split('/').filter(|s| !s.is_empty()).map(str::to_string).collect();
    let tenant = match segments.iter().map(String::as_str).collect::<Vec<_>>().as_slice() {
        [tenant] | [tenant, "v2.0"] => tenant.to_string(),
        _ => return Err(IssuerError::AzureShape(url.to_string())),
    };
    if AZURE_MULTI_TENANT.contains(&tenant.to_ascii_lowercase().as_str()) {
        return Err(IssuerError::AzureMultiTenant(tenant));
    }
    url.set_path(&format!("/{tenant}/v2.0"));
    Ok(url)
}

fn google(url: Url) -> Result<Url, IssuerError> {
    if url.host_str() != Some("accounts.google.com") || !matches!(url.path(), "" | "/") {
        return Err(IssuerError::GoogleHost(url.to_string()));
    }
    Ok(url)
}

/// `Url` renders an empty path as `/`, but Okta's and Google's issuers have no trailing slash.
fn without_root_slash(url: &Url) -> String {
    let s = url.as_str();
    if url.path() == "/" { s.trim_end_matches('/').to_string() } else { s.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ProviderKind::*;

    fn ok(kind: ProviderKind, raw: &str) -> String {
        issuer_url(kind, raw).unwrap_or_else(|e| panic!("{raw}: {e}"))
    }

    #[test]
    fn okta_forms_admins_paste() {
        for raw in [
            "example.okta.com",
            "https://example.okta.com",
            "https://example.okta.com/",
            "  example.okta.com/  ",
            "example-admin.okta.com",
            "https://example-admin.okta.com/admin/dashboard",
            "https://example.okta.com/.well-known/openid-configuration",
        ] {
            assert_eq!(ok(Okta, raw), "https://example.okta.com", "{raw}");
        }
        assert_eq!(ok(Okta, "dev-123.oktapreview.com"), "https://dev-123.oktapreview.com");
    }

    #[test]
    fn okta_custom_authorization_servers() {
        for raw in [
            "example.okta.com/oauth2/default",
            "https://example.okta.com/oauth2/default/",
            "https://example-admin.okta.com/oauth2/default",
            "https://example.okta.com/oauth2/default/.well-known/openid-configuration",
            "https://example.okta.com/oauth2/default/v1/authorize",
        ] {
            assert_eq!(ok(Okta, raw), "https://example.okta.com/oauth2/default", "{raw}");
        }
        assert_eq!(ok(Okta, "example.okta.com/oauth2/aus1a2b3c"), "https://example.okta.com/oauth2/aus1a2b3c");
    }

    #[test]
    fn okta_rejects_other_paths_and_schemes() {
        assert!(matches!(issuer_url(Okta, "example.okta.com/foo"), Err(IssuerError::OktaPath(_))));
        assert!(matches!(issuer_url(Okta, "http://example.okta.com"), Err(IssuerError::NotHttps(_))));
        assert!(matches!(issuer_url(Okta, "example.okta.com?x=1"), Err(IssuerError::Extra(_))));
        assert!(matches!(issuer_url(Okta, "https://u:p@example.okta.com"), Err(IssuerError::Extra(_))));
        assert_eq!(issuer_url(Okta, "   "), Err(IssuerError::Empty));
        assert!(matches!(issuer_url(Okta, "https://exa mple.okta.com"), Err(IssuerError::Invalid(..))));
    }

    #[test]
    fn loopback_may_use_http() {
        assert_eq!(ok(Oidc, "http://127.0.0.1:5556/dex"), "http://127.0.0.1:5556/dex");
        assert_eq!(ok(Oidc, "http://localhost:8080"), "http://localhost:8080");
        assert!(matches!(issuer_url(Oidc, "http://idp.example.com"), Err(IssuerError::NotHttps(_))));
    }

    #[test]
    fn oidc_keeps_the_issuer_as_written() {
        assert_eq!(ok(Oidc, "https://tenant.auth0.com/"), "https://tenant.auth0.com/");
        assert_eq!(ok(Oidc, "tenant.auth0.com"), "https://tenant.auth0.com");
        assert_eq!(ok(Oidc, "https://keycloak.example.com/realms/main"), "https://keycloak.example.com/realms/main");
        assert_eq!(ok(Oidc, "https://id.example.com/path/"), "https://id.example.com/path/");
        assert_eq!(ok(Oidc, "https://id.example.com/realms/x/.well-known/openid-configuration"), "https://id.example.com/realms/x");
    }

    #[test]
    fn azure_issuer_forms() {
        let tenant = "9188040d-6c67-4c5b-b112-36a304b66dad";
        let want = format!("https://login.microsoftonline.com/{tenant}/v2.0");
        assert_eq!(ok(Azure, &format!("login.microsoftonline.com/{tenant}")), want);
        assert_eq!(ok(Azure, &format!("https://login.microsoftonline.com/{tenant}/v2.0/")), want);
        assert_eq!(ok(Azure, &format!("https://login.microsoftonline.com/{tenant}/v2.0/.well-known/openid-configuration")), want);
        assert!(matches!(issuer_url(Azure, "login.microsoftonline.com/common/v2.0"), Err(IssuerError::AzureMultiTenant(_))));
        assert!(matches!(issuer_url(Azure, "example.okta.com"), Err(IssuerError::AzureShape(_))));
        assert!(matches!(issuer_url(Azure, "login.microsoftonline.com"), Err(IssuerError::AzureShape(_))));
    }

    #[test]
    fn google_issuer() {
        assert_eq!(ok(Google, "accounts.google.com"), "https://accounts.google.com");
        assert_eq!(ok(Google, "https://accounts.google.com/"), "https://accounts.google.com");
        assert!(matches!(issuer_url(Google, "google.com"), Err(IssuerError::GoogleHost(_))));
    }
}
