//! The SCIM 2.0 service (RFC 7643/7644) under `/api/scim/v2`.

pub mod auth;
mod discovery;
pub mod error;

use axum::extract::Request;
use axum::middleware;
use axum::routing::get;
use axum::Router;

use auth::AuthState;
use error::ScimError;

pub fn router(auth: AuthState, base_url: String) -> Router {
    Router::new()
        .route(
            "/ServiceProviderConfig",
            get(discovery::service_provider_config).fallback(|| async { discovery_read_only() }),
        )
        .fallback(|req: Request| async move { ScimError::not_found(format!("no SCIM endpoint at {}", req.uri().path())) })
        .with_state(discovery::DiscoveryState { base_url })
        .layer(middleware::from_fn_with_state(auth, auth::require_key))
}

fn discovery_read_only() -> ScimError {
    ScimError::method_not_allowed("discovery endpoints are read-only; only GET is allowed")
}
