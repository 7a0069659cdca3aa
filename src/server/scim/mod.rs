//! The SCIM 2.0 service (RFC 7643/7644) under `/api/scim/v2`.

pub mod auth;
mod discovery;
pub mod error;
mod kinds;
mod request;
pub mod resources;
mod search;
mod work;

use axum::Router;
use axum::extract::Request;
use axum::middleware;
use axum::routing::{MethodRouter, any, get, post};

use crate::api::{Group, User};
use auth::AuthState;
use error::{ScimError, method_not_allowed};
use resources::ScimState;

fn read_only(route: MethodRouter<ScimState>) -> MethodRouter<ScimState> {
    route.fallback(|| async { method_not_allowed("discovery endpoints are read-only; only GET is allowed") })
}

fn not_allowed(route: MethodRouter<ScimState>, allowed: &'static str) -> MethodRouter<ScimState> {
    route.fallback(move || async move { method_not_allowed(format!("allowed methods here: {allowed}")) })
}

pub fn router(auth: AuthState, state: ScimState) -> Router {
    use resources::{create_resource, delete_resource, get_resource, list_resources, patch_resource, replace_resource, search_resources};
    Router::new()
        .route("/ServiceProviderConfig", read_only(get(discovery::service_provider_config)))
        .route("/ResourceTypes", read_only(get(discovery::resource_types)))
        .route("/ResourceTypes/{name}", read_only(get(discovery::resource_type)))
        .route("/Schemas", read_only(get(discovery::schemas)))
        .route("/Schemas/{id}", read_only(get(discovery::schema)))
        .route("/.search", not_allowed(post(search::root_search), "POST"))
        .route("/Users", not_allowed(get(list_resources::<User>).post(create_resource::<User>), "GET, POST"))
        .route("/Users/.search", not_allowed(post(search_resources::<User>), "POST"))
        .route(
            "/Users/{id}",
            not_allowed(
                get(get_resource::<User>).put(replace_resource::<User>).patch(patch_resource::<User>).delete(delete_resource::<User>),
                "GET, PUT, PATCH, DELETE",
            ),
        )
        .route("/Groups", not_allowed(get(list_resources::<Group>).post(create_resource::<Group>), "GET, POST"))
        .route("/Groups/.search", not_allowed(post(search_resources::<Group>), "POST"))
        .route(
            "/Groups/{id}",
            not_allowed(
                get(get_resource::<Group>).put(replace_resource::<Group>).patch(patch_resource::<Group>).delete(delete_resource::<Group>),
                "GET, PUT, PATCH, DELETE",
            ),
        )
        // RFC 7644 §3.11 and §3.7: optional features this server does not offer (the
        // ServiceProviderConfig says so too) answer 501 rather than a puzzling 404.
        .route("/Me", any(|| async { ScimError::new(501, None, "/Me is not supported: SCIM keys authenticate a provider, not a user") }))
        .route("/Bulk", any(|| async { ScimError::new(501, None, "bulk operations are not supported (see /ServiceProviderConfig)") }))
        .fallback(|req: Request| async move { ScimError::not_found(format!("no SCIM endpoint at {}", req.uri().path())) })
        .with_state(state)
        .layer(middleware::from_fn_with_state(auth, auth::require_key))
}
