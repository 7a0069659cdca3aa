//! RFC 7644 §3.12 error responses over HTTP.

use axum::http::{HeaderValue, StatusCode, header};
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

/// What a failed directory write means for a SCIM client.
impl From<crate::directory::StoreError> for ScimError {
    fn from(e: crate::directory::StoreError) -> Self {
        use crate::directory::StoreError as E;
        match e {
            E::Conflict => unavailable("the resource kept changing while updating it; retry"),
            E::NotFound(d) => ScimError::not_found(d),
            E::AlreadyExists(d) => ScimError::uniqueness(d),
            E::Invalid(d) => ScimError::invalid_value(d),
            // Permanent: Okta and Entra retry a 503 forever.
            E::TooLarge(d) => ScimError::new(413, None, d),
            E::ProviderGone(d) => unauthorized(d),
            E::Unavailable(d) => unavailable(d),
            E::Internal(d) => internal(d),
        }
    }
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

    #[test]
    fn store_errors_map_to_scim_statuses() {
        use crate::directory::StoreError as E;
        let cases = [
            (E::Conflict, 503),
            (E::NotFound("x".into()), 404),
            (E::AlreadyExists("x".into()), 409),
            (E::Invalid("x".into()), 400),
            (E::TooLarge("x".into()), 413),
            (E::ProviderGone("x".into()), 401),
            (E::Unavailable("x".into()), 503),
            (E::Internal("x".into()), 500),
        ];
        for (e, status) in cases {
            assert_eq!(ScimError::from(e).status, status);
        }
    }
}
