//! The one error type of the SCIM logic. It carries exactly what an RFC 7644 §3.12 error response
//! needs, so the HTTP layer only has to convert the status code and serialize [`ScimError::body`].

use serde_json::{Value, json};

pub const ERROR_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:Error";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct ScimError {
    /// The HTTP status code.
    pub status: u16,
    /// One of the `scimType` keywords of RFC 7644 Table 9, where one applies.
    pub scim_type: Option<&'static str>,
    /// Human-readable text. IdPs show it to their administrators (Okta in the task log, Entra in
    /// the provisioning logs), so it says what was wrong and, where possible, what would be right.
    pub detail: String,
}

impl ScimError {
    pub fn new(status: u16, scim_type: Option<&'static str>, detail: impl Into<String>) -> Self {
        Self { status, scim_type, detail: detail.into() }
    }

    fn bad_request(scim_type: &'static str, detail: impl Into<String>) -> Self {
        Self::new(400, Some(scim_type), detail)
    }

    /// The filter does not follow RFC 7644 Figure 1, or combines an attribute and an operator we
    /// do not support (e.g. `gt` on a boolean).
    pub fn invalid_filter(detail: impl Into<String>) -> Self {
        Self::bad_request("invalidFilter", detail)
    }
    /// The query would return more results than the server is willing to compute.
    pub fn too_many(detail: impl Into<String>) -> Self {
        Self::bad_request("tooMany", detail)
    }
    /// A value that must be unique (`userName`, a group's `displayName`) is already taken.
    pub fn uniqueness(detail: impl Into<String>) -> Self {
        Self::new(409, Some("uniqueness"), detail)
    }
    /// A write to a `readOnly` attribute, or a change to an `immutable` one.
    pub fn mutability(detail: impl Into<String>) -> Self {
        Self::bad_request("mutability", detail)
    }
    /// The request body is not the structure the endpoint expects.
    pub fn invalid_syntax(detail: impl Into<String>) -> Self {
        Self::bad_request("invalidSyntax", detail)
    }
    /// A PATCH `path` is malformed or names an attribute that does not exist.
    pub fn invalid_path(detail: impl Into<String>) -> Self {
        Self::bad_request("invalidPath", detail)
    }
    /// A PATCH `path` selects nothing (or is missing where it is required).
    pub fn no_target(detail: impl Into<String>) -> Self {
        Self::bad_request("noTarget", detail)
    }
    /// A value is missing, or does not fit the attribute's type.
    pub fn invalid_value(detail: impl Into<String>) -> Self {
        Self::bad_request("invalidValue", detail)
    }
    /// The request names a SCIM protocol version we do not implement.
    pub fn invalid_vers(detail: impl Into<String>) -> Self {
        Self::bad_request("invalidVers", detail)
    }
    /// The request put sensitive data (a password, say) in the URL.
    pub fn sensitive(detail: impl Into<String>) -> Self {
        Self::new(403, Some("sensitive"), detail)
    }
    pub fn not_found(detail: impl Into<String>) -> Self {
        Self::new(404, None, detail)
    }

    /// Prefixes the detail, e.g. with the index of the PATCH operation that failed, so an
    /// administrator can tell which part of a long request was refused.
    pub(crate) fn context(mut self, prefix: impl std::fmt::Display) -> Self {
        self.detail = format!("{prefix}: {}", self.detail);
        self
    }

    /// The RFC 7644 §3.12 response body.
    pub fn body(&self) -> Value {
        let mut body = json!({
            "schemas": [ERROR_SCHEMA],
            // RFC 7644 §3.12: the HTTP status code, as a string.
            "status": self.status.to_string(),
            "detail": self.detail,
        });
        if let Some(t) = self.scim_type {
            body["scimType"] = json!(t);
        }
        body
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_has_status_as_string_and_scim_type() {
        let e = ScimError::invalid_filter("bad filter");
        assert_eq!(e.body(), json!({"schemas": [ERROR_SCHEMA], "status": "400", "scimType": "invalidFilter", "detail": "bad filter"}));
    }

    #[test]
    fn body_omits_scim_type_when_unset() {
        let e = ScimError::not_found("Resource 2819c223 not found");
        assert_eq!(e.body(), json!({"schemas": [ERROR_SCHEMA], "status": "404", "detail": "Resource 2819c223 not found"}));
    }

    #[test]
    fn constructors_use_rfc_7644_table_9() {
        let cases = [
            (ScimError::invalid_filter(""), 400, "invalidFilter"),
            (ScimError::too_many(""), 400, "tooMany"),
            (ScimError::uniqueness(""), 409, "uniqueness"),
            (ScimError::mutability(""), 400, "mutability"),
            (ScimError::invalid_syntax(""), 400, "invalidSyntax"),
            (ScimError::invalid_path(""), 400, "invalidPath"),
            (ScimError::no_target(""), 400, "noTarget"),
            (ScimError::invalid_value(""), 400, "invalidValue"),
            (ScimError::invalid_vers(""), 400, "invalidVers"),
            (ScimError::sensitive(""), 403, "sensitive"),
        ];
        for (e, status, scim_type) in cases {
            assert_eq!((e.status, e.scim_type), (status, Some(scim_type)));
        }
    }

    #[test]
    fn context_prefixes_detail_and_display_shows_detail() {
        let e = ScimError::no_target("nothing matched").context("Operations[1]");
        assert_eq!(e.detail, "Operations[1]: nothing matched");
        assert_eq!(e.to_string(), "Operations[1]: nothing matched");
    }
}
