//! RFC 7644 §3.12 error responses over HTTP.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};

pub use crate::scim::ScimError;

pub const CONTENT_TYPE: &str = "application/scim+json";

pub fn unauthorized(detail: impl Into<String>) -> ScimError {
    ScimError::new(401, None, detail)
}

pub fn method_not_allowed(detail: impl Into<String>) -> ScimError {
    ScimError::new(405, None, detail)
}

pub fn precondition_failed(detail: impl Into<String>) -> ScimError {
    ScimError::new(412, None, detail)
}

pub fn internal(detail: impl Into<String>) -> ScimError {
    ScimError::new(500, None, detail)
}

pub fn unavailable(detail: impl Into<String>) -> ScimError {
    ScimError::new(503, None, detail)
}

impl IntoResponse for ScimError {
    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = (status, self.body().to_string()).into_response();
        resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static(CONTENT_TYPE));
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(r#"Bearer realm="infra-scim""#));
        }
        resp
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_carry_the_scim_content_type_and_challenge() {
        let resp = unauthorized("no").into_response();
        assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(resp.headers()[header::CONTENT_TYPE], CONTENT_TYPE);
        assert!(resp.headers().contains_key(header::WWW_AUTHENTICATE));
        let resp = ScimError::invalid_filter("bad").into_response();
        assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    }
}
