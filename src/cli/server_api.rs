//! The HTTP calls `infra login`, `whoami` and `logout` make to the Infra server.

use std::path::Path;
use std::time::Duration;

use reqwest::StatusCode;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use url::Url;

/// A provider as `GET /api/providers` describes it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProviderInfo {
    pub name: String,
    #[serde(default)]
    pub kind: Option<String>,
    #[serde(default)]
    pub issuer: Option<String>,
    #[serde(default)]
    pub authorization_endpoint: Option<String>,
    #[serde(rename = "clientID")]
    pub client_id: String,
    #[serde(default)]
    pub scopes: Vec<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoginRequest<'a> {
    pub provider: &'a str,
    pub code: &'a str,
    #[serde(rename = "redirectURI")]
    pub redirect_uri: &'a str,
    pub code_verifier: &'a str,
    pub nonce: &'a str,
}

impl std::fmt::Debug for LoginRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginRequest").field("provider", &self.provider).field("redirect_uri", &self.redirect_uri).finish_non_exhaustive()
    }
}

/// `POST /api/login`'s answer (and the device token endpoint's). `Debug` leaves the token out.
#[derive(Clone, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct LoginResponse {
    pub token: String,
    pub user: String,
    pub provider: String,
    #[serde(default)]
    pub groups: Vec<String>,
    pub expires_at: String,
}

impl std::fmt::Debug for LoginResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginResponse")
            .field("token", &"<redacted>")
            .field("user", &self.user)
            .field("provider", &self.provider)
            .field("groups", &self.groups)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// `POST /api/device/authorize`'s answer (RFC 8628 §3.2). `Debug` leaves the device code out.
#[derive(Deserialize)]
pub struct DeviceStart {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    #[serde(default)]
    pub verification_uri_complete: Option<String>,
    pub expires_in: u64,
    #[serde(default = "default_interval")]
    pub interval: u64,
}

fn default_interval() -> u64 {
    crate::device::POLL_INTERVAL_SECS
}

impl std::fmt::Debug for DeviceStart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeviceStart")
            .field("user_code", &self.user_code)
            .field("verification_uri", &self.verification_uri)
            .finish_non_exhaustive()
    }
}

/// A failed call, in terms a person can act on.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server answered with its JSON error body.
    #[error("{message} ({error}, HTTP {status})")]
    Server { status: u16, error: String, message: String },
    /// The server answered, but not with an error body we understand.
    #[error("{0}")]
    Unexpected(String),
    /// No answer: DNS, connection, TLS or timeout.
    #[error("could not reach the Infra server at {server}: {detail}")]
    Unreachable { server: String, detail: String },
}

impl ApiError {
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Server { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// The server's own sentence when it sent one.
    pub fn message(&self) -> String {
        match self {
            Self::Server { message, .. } => message.clone(),
            other => other.to_string(),
        }
    }
}

/// The server's base URL without a trailing slash. `infra.example.com` means
/// `https://infra.example.com`.
pub fn normalize_server(raw: &str) -> anyhow::Result<String> {
    let raw = raw.trim();
    if raw.is_empty() {
        anyhow::bail!("the server URL is empty");
    }
    let with_scheme = if raw.contains("://") { raw.to_string() } else { format!("https://{raw}") };
    let url = Url::parse(&with_scheme).map_err(|e| anyhow::anyhow!("{raw:?} is not a server URL: {e}"))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        anyhow::bail!("{raw:?} is not an http(s) URL");
    }
    if url.host_str().is_none_or(str::is_empty) {
        anyhow::bail!("{raw:?} has no host");
    }
    if url.query().is_some() || url.fragment().is_some() || !url.username().is_empty() || url.password().is_some() {
        anyhow::bail!("the server URL {raw:?} must be just scheme, host, port and path");
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

/// Whether tokens to this server would travel unencrypted over a network (plain http to
/// anything but loopback).
pub fn is_cleartext_remote(server: &str) -> bool {
    let Ok(url) = Url::parse(server) else { return false };
    if url.scheme() != "http" {
        return false;
    }
    match url.host() {
        Some(url::Host::Domain(d)) => d != "localhost",
        Some(url::Host::Ipv4(ip)) => !ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => !ip.is_loopback(),
        None => false,
    }
}

pub struct ServerApi {
    pub base: String,
    http: reqwest::Client,
}

impl ServerApi {
    /// A client for `server` (already normalized), trusting the public roots plus the PEM
    /// certificates in `ca_file`. Redirects are never followed: a redirected request would
    /// carry the token or the code somewhere the person did not choose.
    pub fn new(server: &str, ca_file: Option<&Path>) -> anyhow::Result<Self> {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(60))
            .user_agent(concat!("infra-cli/", env!("CARGO_PKG_VERSION")));
        if let Some(path) = ca_file {
            let pem = std::fs::read(path).map_err(|e| anyhow::anyhow!("--ca-file {}: {e}", path.display()))?;
            let certs = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| anyhow::anyhow!("--ca-file {}: not PEM certificates: {e}", path.display()))?;
            if certs.is_empty() {
                anyhow::bail!("--ca-file {} contains no PEM certificate", path.display());
            }
            for cert in certs {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| anyhow::anyhow!("could not build the HTTP client: {e}"))?;
        Ok(Self { base: server.to_string(), http })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn unreachable(&self, err: reqwest::Error) -> ApiError {
        ApiError::Unreachable { server: self.base.clone(), detail: crate::oidc::describe_error(&err) }
    }

    /// Turns a non-success answer into an `ApiError`.
    async fn failure(&self, path: &str, resp: reqwest::Response) -> ApiError {
        let status = resp.status();
        if status.is_redirection() {
            let to = resp.headers().get(reqwest::header::LOCATION).and_then(|v| v.to_str().ok()).unwrap_or("?").to_string();
            return ApiError::Unexpected(format!(
                "the server at {} answered {path} with a redirect (HTTP {}) to {to}; pass the server's final URL with --server",
                self.base,
                status.as_u16()
            ));
        }
        let text = resp.text().await.unwrap_or_default();
        match serde_json::from_str::<Value>(&text) {
            Ok(v) if v["message"].is_string() || v["error"].is_string() => ApiError::Server {
                status: status.as_u16(),
                error: v["error"].as_str().unwrap_or("error").to_string(),
                message: v["message"].as_str().map(String::from).unwrap_or_else(|| format!("HTTP {}", status.as_u16())),
            },
            _ if status == StatusCode::NOT_FOUND => ApiError::Unexpected(format!(
                "the server at {} has no {path} (HTTP 404); is it an Infra server, and recent enough for `infra login`?",
                self.base
            )),
            _ => ApiError::Unexpected(format!(
                "the server at {} answered {path} with HTTP {}: {}",
                self.base,
                status.as_u16(),
                snippet(&text)
            )),
        }
    }

    async fn json<T: serde::de::DeserializeOwned>(&self, path: &str, resp: reqwest::Response) -> Result<T, ApiError> {
        let text = resp.text().await.map_err(|e| self.unreachable(e))?;
        serde_json::from_str(&text).map_err(|e| {
            ApiError::Unexpected(format!("the server at {} answered {path} with unexpected JSON ({e}): {}", self.base, snippet(&text)))
        })
    }

    /// `GET /api/providers`: the Ready providers.
    pub async fn providers(&self) -> Result<Vec<ProviderInfo>, ApiError> {
        #[derive(Deserialize)]
        struct List {
            items: Vec<ProviderInfo>,
        }
        let path = "/api/providers";
        let resp = self.http.get(self.url(path)).send().await.map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            return Err(self.failure(path, resp).await);
        }
        Ok(self.json::<List>(path, resp).await?.items)
    }

    /// `POST /api/login`: exchanges the authorization code for an Infra session.
    pub async fn login(&self, req: &LoginRequest<'_>) -> Result<LoginResponse, ApiError> {
        let path = "/api/login";
        let resp = self.http.post(self.url(path)).json(req).send().await.map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            return Err(self.failure(path, resp).await);
        }
        self.json(path, resp).await
    }

    /// `POST /api/device/authorize`: starts a device login; `hostname` is shown on the approval
    /// page.
    pub async fn device_authorize(&self, hostname: Option<&str>) -> Result<DeviceStart, ApiError> {
        let path = crate::device::AUTHORIZE_PATH;
        let mut form = vec![("client_id", "infra-cli")];
        if let Some(h) = hostname {
            form.push(("hostname", h));
        }
        let resp = self.http.post(self.url(path)).form(&form).send().await.map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            return Err(self.failure(path, resp).await);
        }
        self.json(path, resp).await
    }

    /// `POST /api/device/token`: one poll; an RFC 8628 error comes back as `ApiError::Server`.
    pub async fn device_token(&self, device_code: &str) -> Result<LoginResponse, ApiError> {
        let path = crate::device::TOKEN_PATH;
        let form = [("grant_type", crate::device::GRANT_TYPE), ("device_code", device_code), ("client_id", "infra-cli")];
        let resp = self.http.post(self.url(path)).form(&form).send().await.map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            return Err(self.failure(path, resp).await);
        }
        self.json(path, resp).await
    }

    /// `GET /api/whoami` with the session token, as the server's JSON.
    pub async fn whoami(&self, token: &str) -> Result<Value, ApiError> {
        let path = "/api/whoami";
        let resp = self.http.get(self.url(path)).bearer_auth(token).send().await.map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            return Err(self.failure(path, resp).await);
        }
        self.json(path, resp).await
    }

    /// `GET /api/kube/config`: the cluster the server issues tokens for.
    pub async fn kube_config(&self) -> Result<KubeConfig, ApiError> {
        let path = crate::kube_access::paths::CONFIG;
        let resp = self.http.get(self.url(path)).send().await.map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            return Err(self.failure(path, resp).await);
        }
        self.json(path, resp).await
    }

    /// `POST /api/kube/token`: a token for the API server, for this session.
    pub async fn kube_token(&self, token: &str) -> Result<KubeToken, ApiError> {
        let path = crate::kube_access::paths::TOKEN;
        let resp = self.http.post(self.url(path)).bearer_auth(token).send().await.map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            return Err(self.failure(path, resp).await);
        }
        self.json(path, resp).await
    }

    /// `POST /api/logout`: ends the session on the server.
    pub async fn logout(&self, token: &str) -> Result<(), ApiError> {
        let path = "/api/logout";
        let resp = self.http.post(self.url(path)).bearer_auth(token).send().await.map_err(|e| self.unreachable(e))?;
        if !resp.status().is_success() {
            return Err(self.failure(path, resp).await);
        }
        Ok(())
    }
}

/// What `GET /api/kube/config` says.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeConfig {
    pub cluster_name: String,
    /// The API server's public URL; absent when the server was not told it.
    pub server: Option<String>,
    pub certificate_authority_data: Option<String>,
    pub issuer: String,
}

/// What `POST /api/kube/token` answers. `Debug` leaves the token out.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct KubeToken {
    pub token: String,
    pub expiration_timestamp: k8s_openapi::jiff::Timestamp,
}

/// The start of a body, on one line, for error messages.
fn snippet(text: &str) -> String {
    let one_line: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match one_line.char_indices().nth(200) {
        Some((i, _)) => format!("{}…", &one_line[..i]),
        None if one_line.is_empty() => "(empty body)".into(),
        None => one_line,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls() {
        assert_eq!(normalize_server("http://127.0.0.1:18080/").unwrap(), "http://127.0.0.1:18080");
        assert_eq!(normalize_server("infra.example.com").unwrap(), "https://infra.example.com");
        assert_eq!(normalize_server(" https://example.com/infra/ ").unwrap(), "https://example.com/infra");
        for bad in ["", "ftp://x", "https://", "https://a/?x=1", "https://u:p@a"] {
            assert!(normalize_server(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn cleartext_only_matters_off_loopback() {
        assert!(!is_cleartext_remote("http://127.0.0.1:18080"));
        assert!(!is_cleartext_remote("http://localhost:18080"));
        assert!(!is_cleartext_remote("http://[::1]:18080"));
        assert!(!is_cleartext_remote("https://infra.example.com"));
        assert!(is_cleartext_remote("http://infra.example.com"));
        assert!(is_cleartext_remote("http://10.0.0.1"));
    }

    #[test]
    fn provider_list_shape() {
        let v: ProviderInfo = serde_json::from_value(serde_json::json!({
            "name": "okta", "kind": "okta", "issuer": "https://x", "authorizationEndpoint": "https://x/authorize",
            "clientID": "0oa1", "scopes": ["openid", "email"]
        }))
        .unwrap();
        assert_eq!(v.client_id, "0oa1");
        assert_eq!(v.authorization_endpoint.as_deref(), Some("https://x/authorize"));
        assert_eq!(v.scopes, vec!["openid", "email"]);
    }

    #[test]
    fn login_request_shape_and_secrets_kept_out_of_debug() {
        let req = LoginRequest {
            provider: "okta",
            code: "the-code",
            redirect_uri: "http://localhost:8301",
            code_verifier: "the-verifier",
            nonce: "n",
        };
        let v = serde_json::to_value(&req).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"provider": "okta", "code": "the-code", "redirectURI": "http://localhost:8301", "codeVerifier": "the-verifier", "nonce": "n"})
        );
        let d = format!("{req:?}");
        assert!(!d.contains("the-code") && !d.contains("the-verifier"), "{d}");
        let resp: LoginResponse = serde_json::from_value(serde_json::json!({
            "token": "ist_aaaaaaaaaaaa_secretsecret", "user": "alice@example.com", "provider": "okta",
            "groups": ["admins"], "expiresAt": "2026-11-29T14:00:00Z"
        }))
        .unwrap();
        assert!(!format!("{resp:?}").contains("secretsecret"));
    }

    #[test]
    fn snippets_are_short_and_single_line() {
        assert_eq!(snippet(""), "(empty body)");
        assert_eq!(snippet("a\n b"), "a b");
        assert!(snippet(&"x".repeat(500)).chars().count() <= 201);
    }
}
