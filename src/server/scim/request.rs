//! What handlers read from a request: the JSON body, query parameters and preconditions.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::http::HeaderMap;
use serde_json::Value;

use super::error::{ScimError, precondition_failed};

/// Parses a request body as JSON. Content types are not policed: Okta sends
/// `application/scim+json`, others `application/json`, some nothing, and all mean JSON.
pub fn json_body(body: &Bytes) -> Result<Value, ScimError> {
    if body.is_empty() {
        return Err(ScimError::invalid_syntax("the request body is empty; send a JSON object"));
    }
    let value: Value =
        serde_json::from_slice(body).map_err(|e| ScimError::invalid_syntax(format!("the request body is not valid JSON: {e}")))?;
    if !value.is_object() {
        return Err(ScimError::invalid_syntax("the request body must be a JSON object"));
    }
    Ok(value)
}

/// Query parameters, looked up case-insensitively (RFC 7644 leaves their case to clients, and
/// clients differ).
pub struct Params(HashMap<String, String>);

impl Params {
    pub fn new(raw: HashMap<String, String>) -> Self {
        Self(raw.into_iter().map(|(k, v)| (k.to_ascii_lowercase(), v)).collect())
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.0.get(&name.to_ascii_lowercase()).map(String::as_str)
    }

    /// The same parameters from a `/.search` body (RFC 7644 §3.4.3), where they are JSON fields and
    /// `attributes` may be an array.
    pub fn from_search_body(body: &Value) -> Result<Self, ScimError> {
        let mut out = HashMap::new();
        let obj = body.as_object().ok_or_else(|| ScimError::invalid_syntax("a search request is a JSON object"))?;
        for (k, v) in obj {
            let text = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                Value::Array(items) => items.iter().filter_map(Value::as_str).collect::<Vec<_>>().join(","),
                Value::Null => continue,
                _ if k == "schemas" => continue,
                _ => return Err(ScimError::invalid_value(format!("search parameter {k} has the wrong type"))),
            };
            out.insert(k.to_ascii_lowercase(), text);
        }
        Ok(Self(out))
    }
}

/// RFC 7232 `If-Match` against the resource's current version (`*` matches anything).
pub fn check_if_match(headers: &HeaderMap, current: &str) -> Result<(), ScimError> {
    let Some(value) = headers.get("if-match").and_then(|v| v.to_str().ok()) else { return Ok(()) };
    let matches = value.split(',').map(str::trim).any(|tag| tag == "*" || weak_eq(tag, current));
    if matches { Ok(()) } else { Err(precondition_failed(format!("the resource has changed: its version is {current}, not {value}"))) }
}

/// Weak comparison: `W/"1"` and `"1"` name the same version.
fn weak_eq(a: &str, b: &str) -> bool {
    a.trim_start_matches("W/") == b.trim_start_matches("W/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bodies() {
        assert_eq!(json_body(&Bytes::from_static(b"")).unwrap_err().scim_type, Some("invalidSyntax"));
        assert_eq!(json_body(&Bytes::from_static(b"{")).unwrap_err().scim_type, Some("invalidSyntax"));
        assert_eq!(json_body(&Bytes::from_static(b"[]")).unwrap_err().scim_type, Some("invalidSyntax"));
        assert!(json_body(&Bytes::from_static(b"{\"a\":1}")).is_ok());
    }

    #[test]
    fn params_are_case_insensitive_and_search_bodies_flatten() {
        let p = Params::new([("startIndex".to_string(), "3".to_string())].into());
        assert_eq!(p.get("startindex"), Some("3"));
        let s =
            Params::from_search_body(&serde_json::json!({"attributes": ["userName", "emails"], "count": 10, "filter": "x pr"})).unwrap();
        assert_eq!(s.get("attributes"), Some("userName,emails"));
        assert_eq!(s.get("count"), Some("10"));
    }

    #[test]
    fn if_match() {
        let mut h = HeaderMap::new();
        assert!(check_if_match(&h, "W/\"5\"").is_ok());
        h.insert("if-match", "W/\"5\"".parse().unwrap());
        assert!(check_if_match(&h, "W/\"5\"").is_ok());
        assert_eq!(check_if_match(&h, "W/\"6\"").unwrap_err().status, 412);
        h.insert("if-match", "\"6\", \"7\"".parse().unwrap());
        assert!(check_if_match(&h, "W/\"7\"").is_ok());
        h.insert("if-match", "*".parse().unwrap());
        assert!(check_if_match(&h, "W/\"9\"").is_ok());
    }
}
