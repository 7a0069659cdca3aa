//! Logging people in through their identity provider: the dashboard's `/login` and
//! `/login/callback`, the CLI's `POST /api/login`, and `whoami`/`logout` for both.

mod api;
pub mod csrf;
pub(crate) mod dashboard;
mod flow;
pub(crate) mod pages;
pub mod state;

use std::sync::Arc;

use crate::server::cache::Cache;
use axum::Router;
use axum::routing::{get, post};
use k8s_openapi::api::core::v1::Secret;
use kube::Api;

use crate::api::{IdentityProvider, User};
use crate::broker::client::BrokerClient;
use crate::config::OperatorArgs;
use crate::directory::DirectoryStore;
use crate::metrics::Metrics;
use crate::session::SessionStore;
use crate::session::cache::SessionCache;
use state::{KEY_LEN, StateKey};

pub use flow::{Completed, FlowError, Identified, WhoAmI};

/// Names of the cookies the dashboard sets.
pub const SESSION_COOKIE: &str = "infra_session";
pub const LOGIN_COOKIE: &str = "infra_login";
/// The Secret with the key every replica signs login state with.
pub const STATE_KEY_SECRET: &str = crate::state_key::SECRET_NAME;

pub struct LoginState {
    /// Redeems login codes at the controller, which alone reads client secrets.
    pub broker: BrokerClient,
    pub providers: Cache<IdentityProvider>,
    pub users: Api<User>,
    pub directory_store: DirectoryStore,
    pub sessions: SessionStore,
    /// The server's watch cache of Sessions (token minting, the webhook, the dashboard).
    pub session_cache: Arc<SessionCache>,
    pub metrics: Arc<Metrics>,
    pub state_key: StateKey,
    pub args: OperatorArgs,
}

pub fn router(state: Arc<LoginState>) -> Router {
    Router::new()
        .route("/login", get(dashboard::start))
        .route("/login/callback", get(dashboard::callback))
        .route("/logout", post(dashboard::logout))
        .route("/api/login", post(api::login))
        .route("/api/whoami", get(api::whoami))
        .route("/api/logout", post(api::logout))
        .with_state(state)
}

/// The shared state-signing key, from the Secret the controller creates.
pub async fn load_state_key(secrets: &Api<Secret>) -> anyhow::Result<StateKey> {
    let bytes = crate::state_key::read(secrets, std::time::Duration::from_secs(300)).await?;
    StateKey::from_bytes(&bytes).ok_or_else(|| {
        anyhow::anyhow!(
            "Secret {STATE_KEY_SECRET} has no {KEY_LEN}-byte key; delete it and the controller generates a new one when it restarts"
        )
    })
}

/// The session token of a request: `Authorization: Bearer` (the CLI) or the session cookie (a
/// browser).
pub fn presented_token(headers: &axum::http::HeaderMap) -> Option<String> {
    if let Some(h) = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok()) {
        return crate::keys::bearer_token(h).map(str::to_string);
    }
    cookie(headers, SESSION_COOKIE)
}

/// The value of cookie `name`, from any `Cookie` header.
pub fn cookie(headers: &axum::http::HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(axum::http::header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim_matches('"').to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::{HeaderMap, HeaderValue};

    #[test]
    fn tokens_from_bearer_or_cookie() {
        let mut h = HeaderMap::new();
        h.append("cookie", HeaderValue::from_static("a=1; infra_session=ist_x_y"));
        assert_eq!(presented_token(&h).as_deref(), Some("ist_x_y"));
        h.insert("authorization", HeaderValue::from_static("Bearer ist_z"));
        assert_eq!(presented_token(&h).as_deref(), Some("ist_z"));
        assert_eq!(cookie(&h, "a").as_deref(), Some("1"));
        assert_eq!(cookie(&h, "missing"), None);
    }
}
