//! Talking to OpenID Connect providers: the HTTP client, discovery and the client-credentials check.

pub mod authorize;
mod client_config;
pub mod identity;
pub mod issuer;
pub mod login;
mod provider_check;

pub use client_config::{provider_http, read_client_secret, SECRET_VALID};
pub use provider_check::{check_credentials, discover, secret_in_body, Discovered, CREDENTIALS, DISCOVERY, TRANSIENT_REASONS};

use std::time::Duration;

pub use openidconnect::reqwest;

pub const SECRET_BASIC: &str = "client_secret_basic";
pub const SECRET_POST: &str = "client_secret_post";

/// The redirect URI the CLI listens on during `infra login`.
pub const CLI_REDIRECT_URI: &str = "http://localhost:8301";

#[derive(Debug, thiserror::Error)]
pub enum HttpClientError {
    #[error("the CA bundle is not valid PEM: {0}")]
    CaBundle(String),
    #[error("could not build the HTTP client: {0}")]
    Build(String),
}

/// An HTTP client for talking to identity providers. It never follows redirects (a redirected
/// discovery or token request is a misconfiguration or an attack, not something to follow) and
/// trusts the public roots plus any CA bundles given.
pub fn http_client(ca_bundles: &[&[u8]]) -> Result<reqwest::Client, HttpClientError> {
    let mut builder = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(15))
        .user_agent(concat!("infra-operator/", env!("CARGO_PKG_VERSION")));
    for pem in ca_bundles {
        let certs = reqwest::Certificate::from_pem_bundle(pem).map_err(|e| HttpClientError::CaBundle(e.to_string()))?;
        if certs.is_empty() {
            return Err(HttpClientError::CaBundle("no certificates found".into()));
        }
        for cert in certs {
            builder = builder.add_root_certificate(cert);
        }
    }
    builder.build().map_err(|e| HttpClientError::Build(e.to_string()))
}

/// A one-line description of a request error, including its causes (reqwest's own Display says
/// only "error sending request", which tells an admin nothing).
pub fn describe_error(err: &(dyn std::error::Error + 'static)) -> String {
    let mut parts = vec![err.to_string()];
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !parts.iter().any(|p| p.contains(&text)) {
            parts.push(text);
        }
        source = s.source();
    }
    parts.join(": ")
}
