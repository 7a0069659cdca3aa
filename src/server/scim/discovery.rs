//! Discovery endpoints (RFC 7644 §4): they describe exactly what this server implements.

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde_json::json;

use super::error::CONTENT_TYPE;

#[derive(Clone)]
pub struct DiscoveryState {
    /// `<external URL>/api/scim/v2`, for `meta.location`.
    pub base_url: String,
}

pub async fn service_provider_config(State(s): State<DiscoveryState>) -> impl IntoResponse {
    let body = json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig"],
        "documentationUri": "https://github.com/infrahq/infra",
        "patch": {"supported": false},
        "bulk": {"supported": false, "maxOperations": 0, "maxPayloadSize": 0},
        "filter": {"supported": false, "maxResults": 0},
        "changePassword": {"supported": false},
        "sort": {"supported": false},
        "etag": {"supported": false},
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
    ([(header::CONTENT_TYPE, CONTENT_TYPE)], body.to_string())
}
