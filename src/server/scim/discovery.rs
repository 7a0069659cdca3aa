//! Discovery endpoints (RFC 7644 §4): they describe exactly what this server implements, from the
//! same schema definitions that validate requests.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use super::error::ScimError;
use super::resources::{MAX_RESULTS, ScimState, scim_json};
use crate::scim::schema;

pub async fn service_provider_config(State(s): State<ScimState>) -> Response {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://github.com/infrahq/infra",
        "patch": {"supported": true},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": true, "maxResults": MAX_RESULTS},
        "changePassword": {"supported": false},
        "sort": {"supported": true},
        "etag": {"supported": true},
        "authenticationSchemes": [{
            "type": "oauthbearertoken",
            "name": "Bearer key",
            "description": "A key from `infra scim-keys create`, sent as `Authorization: Bearer <key>`",
            "primary": true
        }],
        "meta": {
            "resourceType": "ServiceProviderConfig",
            "location": format!("{}/ServiceProviderConfig", s.base_url)
        }
    });
    scim_json(StatusCode::OK, &body)
}

pub async fn resource_types(State(s): State<ScimState>) -> Response {
    scim_json(StatusCode::OK, &schema::resource_types(&s.base_url))
}

pub async fn resource_type(State(s): State<ScimState>, Path(name): Path<String>) -> Response {
    match schema::resource_type_document(&s.base_url, &name) {
        Some(doc) => scim_json(StatusCode::OK, &doc),
        None => ScimError::not_found(format!("no resource type {name:?}")).into_response(),
    }
}

pub async fn schemas(State(s): State<ScimState>) -> Response {
    scim_json(StatusCode::OK, &schema::schemas_document(&s.base_url))
}

pub async fn schema(State(s): State<ScimState>, Path(id): Path<String>) -> Response {
    match schema::schema_document(&s.base_url, &id) {
        Some(doc) => scim_json(StatusCode::OK, &doc),
        None => ScimError::not_found(format!("no schema {id:?}")).into_response(),
    }
}
