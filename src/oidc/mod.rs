//! Talking to OpenID Connect providers: the bounded HTTP client, discovery and the client-credentials check.

pub mod authorize;
mod client_config;
pub mod identity;
pub mod issuer;
pub mod login;
pub mod outbound;
mod provider_check;

pub use client_config::{provider_http, read_client_secret};
pub use login::ProviderBinding;
pub use outbound::{AddressPolicy, OutboundError, ProviderHttp};
pub use provider_check::{Discovered, check_credentials, discover, secret_in_body};

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
