//! Pagination (RFC 7644 §3.4.2.4) and the ListResponse body (§3.4.2). Okta pages with
//! `startIndex=1&count=100` and needs the three counters as integers, not strings.

use std::num::IntErrorKind;

use serde_json::{Value, json};

use super::error::ScimError;

pub const LIST_RESPONSE_SCHEMA: &str = "urn:ietf:params:scim:api:messages:2.0:ListResponse";

/// The page a query asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page {
    /// 1-based index of the first result.
    pub start_index: usize,
    /// Maximum number of results on the page.
    pub count: usize,
}

impl Page {
    /// Reads the `startIndex` and `count` query parameters; `max` is the server's page size limit,
    /// used when `count` is absent and as a cap when it is larger.
    pub fn from_query(start_index: Option<&str>, count: Option<&str>, max: usize) -> Result<Self, ScimError> {
        Ok(Self { start_index: parse_start_index(start_index)?, count: parse_count(count, max)? })
    }

    /// The slice of `items` (already filtered and sorted) that this page shows.
    pub fn slice<'a, T>(&self, items: &'a [T]) -> &'a [T] {
        // The fields are public, so a hand-built `Page { start_index: 0, .. }` must not underflow.
        let start = self.start_index.saturating_sub(1).min(items.len());
        let end = start.saturating_add(self.count).min(items.len());
        &items[start..end]
    }
}

/// `startIndex`: 1-based; "a value less than 1 SHALL be interpreted as 1"; default 1.
pub fn parse_start_index(raw: Option<&str>) -> Result<usize, ScimError> {
    match raw {
        None => Ok(1),
        Some(s) => Ok(usize::try_from(parse_integer("startIndex", s)?).unwrap_or(0).max(1)),
    }
}

/// `count`: "a negative value SHALL be interpreted as 0"; absent means the server's maximum, and a
/// larger one is capped to it (the RFC lets the server return fewer results than asked).
pub fn parse_count(raw: Option<&str>, max: usize) -> Result<usize, ScimError> {
    match raw {
        None => Ok(max),
        Some(s) => Ok(usize::try_from(parse_integer("count", s)?).unwrap_or(0).min(max)),
    }
}

/// An integer query parameter. Out-of-range values saturate instead of failing: `count=99999999999999999999`
/// means "as many as you will give me", not a malformed request.
fn parse_integer(name: &str, raw: &str) -> Result<i64, ScimError> {
    let s = raw.trim();
    s.parse::<i64>().or_else(|e| match e.kind() {
        IntErrorKind::PosOverflow => Ok(i64::MAX),
        IntErrorKind::NegOverflow => Ok(i64::MIN),
        _ => Err(ScimError::invalid_value(format!("{name} must be an integer, got '{raw}'"))),
    })
}

/// The ListResponse body. `Resources` is always present, even when empty: Entra's "Test
/// Connection" expects an empty ListResponse for a user that does not exist.
pub fn list_response(total_results: usize, start_index: usize, resources: Vec<Value>) -> Value {
    let mut body = json!({
        "schemas": [LIST_RESPONSE_SCHEMA],
        "totalResults": total_results,
        "startIndex": start_index,
        "itemsPerPage": resources.len(),
    });
    // Moved in rather than through `json!`, which would copy every resource.
    body["Resources"] = Value::Array(resources);
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_index_defaults_and_clamps_to_one() {
        assert_eq!(parse_start_index(None).unwrap(), 1);
        assert_eq!(parse_start_index(Some("0")).unwrap(), 1);
        assert_eq!(parse_start_index(Some("-5")).unwrap(), 1);
        assert_eq!(parse_start_index(Some("101")).unwrap(), 101);
        assert_eq!(parse_start_index(Some(" 3 ")).unwrap(), 3);
        assert_eq!(parse_start_index(Some("-99999999999999999999")).unwrap(), 1);
        assert!(parse_start_index(Some("99999999999999999999")).unwrap() > 1_000_000);
    }

    #[test]
    fn count_defaults_to_max_clamps_negative_and_caps() {
        assert_eq!(parse_count(None, 100).unwrap(), 100);
        assert_eq!(parse_count(Some("-1"), 100).unwrap(), 0);
        assert_eq!(parse_count(Some("0"), 100).unwrap(), 0);
        assert_eq!(parse_count(Some("20"), 100).unwrap(), 20);
        assert_eq!(parse_count(Some("500"), 100).unwrap(), 100);
        assert_eq!(parse_count(Some("99999999999999999999"), 100).unwrap(), 100);
    }

    #[test]
    fn non_integers_are_invalid_values() {
        for bad in ["abc", "1.5", "", "1e3", "0x10"] {
            let e = parse_count(Some(bad), 100).unwrap_err();
            assert_eq!(e.scim_type, Some("invalidValue"), "{bad}");
            assert!(e.detail.contains("count"));
            assert_eq!(parse_start_index(Some(bad)).unwrap_err().scim_type, Some("invalidValue"));
        }
    }

    #[test]
    fn okta_paging_request() {
        // GET /scim/v2/Users?startIndex=1&count=100 (Okta SCIM 2.0 reference, "Retrieve Users").
        let page = Page::from_query(Some("1"), Some("100"), 200).unwrap();
        assert_eq!(page, Page { start_index: 1, count: 100 });
        let items: Vec<u32> = (1..=250).collect();
        assert_eq!(page.slice(&items).len(), 100);
        let next = Page::from_query(Some("101"), Some("100"), 200).unwrap();
        assert_eq!(next.slice(&items)[0], 101);
        let last = Page::from_query(Some("201"), Some("100"), 200).unwrap();
        assert_eq!(last.slice(&items).len(), 50);
    }

    #[test]
    fn slice_edges() {
        let items = [1, 2, 3];
        assert_eq!(Page { start_index: 1, count: 0 }.slice(&items), &[] as &[i32]);
        assert_eq!(Page { start_index: 3, count: 10 }.slice(&items), &[3]);
        assert_eq!(Page { start_index: 4, count: 10 }.slice(&items), &[] as &[i32]);
        assert_eq!(Page { start_index: usize::MAX, count: usize::MAX }.slice(&items), &[] as &[i32]);
        assert_eq!(Page { start_index: 2, count: usize::MAX }.slice(&items), &[2, 3]);
        assert_eq!(Page { start_index: 0, count: 1 }.slice(&items), &[1]);
    }

    #[test]
    fn list_response_shape() {
        // Entra, "Get User by query - Zero results".
        assert_eq!(
            list_response(0, 1, vec![]),
            json!({"schemas": [LIST_RESPONSE_SCHEMA], "totalResults": 0, "startIndex": 1, "itemsPerPage": 0, "Resources": []})
        );
        let body = list_response(250, 101, vec![json!({"id": "a"}), json!({"id": "b"})]);
        assert_eq!(body["totalResults"], 250);
        assert_eq!(body["startIndex"], 101);
        assert_eq!(body["itemsPerPage"], 2);
        assert!(body["totalResults"].is_u64(), "counters are integers");
    }
}
