//! `sortBy` / `sortOrder` (RFC 7644 §3.4.2.3).
//!
//! Resources are ordered by the attribute's value, compared by its type (strings case-insensitively
//! unless `caseExact`, dateTimes chronologically). A multi-valued attribute sorts by its primary
//! value, else its first. Resources without a value come last when ascending and first when
//! descending ("they are sorted via the sortOrder parameter"). Ties are broken by `id`, so a query
//! pages consistently: Okta requires "the same ordering of results" across pages.

use std::cmp::Ordering;

use serde_json::Value;

use super::error::ScimError;
use super::schema::{ResolvedAttr, ResourceType, resolve};
use super::values::{self, field, is_empty};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SortOrder {
    Ascending,
    Descending,
}

/// A parsed `sortBy` / `sortOrder` pair.
#[derive(Debug, Clone, PartialEq)]
pub struct SortSpec {
    attr: ResolvedAttr,
    order: SortOrder,
}

impl SortSpec {
    /// `sort_order` defaults to ascending; its values are case-insensitive.
    pub fn parse(rt: ResourceType, sort_by: &str, sort_order: Option<&str>) -> Result<Self, ScimError> {
        let order = match sort_order.map(str::trim) {
            None | Some("") => SortOrder::Ascending,
            Some(o) if o.eq_ignore_ascii_case("ascending") => SortOrder::Ascending,
            Some(o) if o.eq_ignore_ascii_case("descending") => SortOrder::Descending,
            Some(o) => {
                return Err(ScimError::invalid_value(format!("sortOrder must be ascending or descending, got '{o}'")));
            }
        };
        let mut attr = resolve(rt, sort_by.trim()).map_err(|e| ScimError::invalid_value(format!("sortBy: {e}")))?;
        // A complex attribute sorts by its `value` (emails, manager); one without a `value` needs
        // its sub-attribute named, as the RFC's example `sortBy=name.givenName` does.
        if attr.sub.is_none() && attr.attr.is_complex() {
            attr.sub = Some(attr.attr.sub_attribute("value").ok_or_else(|| {
                ScimError::invalid_value(format!(
                    "sortBy: '{}' is complex; name one of its sub-attributes, e.g. {}.{}",
                    sort_by,
                    attr.attr.name,
                    attr.attr.sub_attributes.first().map_or("value", |s| s.name)
                ))
            })?);
        }
        Ok(Self { attr, order })
    }

    pub fn order(&self) -> SortOrder {
        self.order
    }

    /// The order of two resources.
    pub fn compare(&self, a: &Value, b: &Value) -> Ordering {
        let by_value = match (self.key(a), self.key(b)) {
            (Some(x), Some(y)) => compare_values(&self.attr, x, y),
            (Some(_), None) => Ordering::Less,
            (None, Some(_)) => Ordering::Greater,
            (None, None) => Ordering::Equal,
        };
        let by_value = if self.order == SortOrder::Descending { by_value.reverse() } else { by_value };
        by_value.then_with(|| by_id(a, b))
    }

    /// Sorts resources in place.
    pub fn sort(&self, resources: &mut [Value]) {
        resources.sort_by(|a, b| self.compare(a, b));
    }

    /// The value a resource sorts by: from the primary element of a multi-valued attribute, else
    /// the first.
    fn key<'a>(&self, resource: &'a Value) -> Option<&'a Value> {
        let raw = self.attr.raw(resource)?;
        let element = match raw {
            Value::Array(items) => {
                items.iter().find(|e| field(e, "primary") == Some(&Value::Bool(true))).or_else(|| items.iter().find(|e| !e.is_null()))?
            }
            single => single,
        };
        let leaf = match self.attr.sub {
            Some(sub) => field(element, sub.name)?,
            None => element,
        };
        (!is_empty(leaf)).then_some(leaf)
    }
}

/// Orders by the attribute's type; values stored with another type (which our own writes never
/// produce) still get a total order, so sorting stays deterministic.
fn compare_values(attr: &ResolvedAttr, a: &Value, b: &Value) -> Ordering {
    values::compare(attr.leaf(), a, b).unwrap_or_else(|| a.to_string().cmp(&b.to_string()))
}

/// The order of resources by `id`: the tie-break of [`SortSpec::compare`], and a stable order for
/// listings without `sortBy`.
pub fn by_id(a: &Value, b: &Value) -> Ordering {
    let id = |v: &Value| field(v, "id").and_then(Value::as_str).map(str::to_string);
    id(a).cmp(&id(b))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::ENTERPRISE_USER_SCHEMA;
    use serde_json::json;

    fn sorted(sort_by: &str, order: Option<&str>, mut resources: Vec<Value>) -> Vec<String> {
        SortSpec::parse(ResourceType::User, sort_by, order).unwrap().sort(&mut resources);
        resources.iter().map(|r| r["id"].as_str().unwrap().to_string()).collect()
    }

    #[test]
    fn strings_sort_case_insensitively_unless_case_exact() {
        let users = vec![
            json!({"id": "1", "userName": "bob", "externalId": "b"}),
            json!({"id": "2", "userName": "Alice", "externalId": "B"}),
            json!({"id": "3", "userName": "carol", "externalId": "a"}),
        ];
        assert_eq!(sorted("userName", None, users.clone()), ["2", "1", "3"]);
        assert_eq!(sorted("USERNAME", Some("Descending"), users.clone()), ["3", "1", "2"]);
        // externalId is caseExact: "B" < "a" < "b" in code point order.
        assert_eq!(sorted("externalId", Some("ascending"), users), ["2", "3", "1"]);
    }

    #[test]
    fn missing_values_sort_last_ascending_and_first_descending() {
        let users =
            vec![json!({"id": "1", "title": "b"}), json!({"id": "2"}), json!({"id": "3", "title": "a"}), json!({"id": "4", "title": ""})];
        assert_eq!(sorted("title", None, users.clone()), ["3", "1", "2", "4"]);
        assert_eq!(sorted("title", Some("descending"), users), ["2", "4", "1", "3"]);
    }

    #[test]
    fn multi_valued_attributes_sort_by_primary_or_first_value() {
        let users = vec![
            json!({"id": "1", "emails": [{"value": "z@example.com"}, {"value": "a@example.com", "primary": true}]}),
            json!({"id": "2", "emails": [{"value": "m@example.com"}, {"value": "b@example.com"}]}),
            json!({"id": "3", "emails": []}),
        ];
        assert_eq!(sorted("emails", None, users.clone()), ["1", "2", "3"]);
        assert_eq!(sorted("emails.value", None, users.clone()), ["1", "2", "3"]);
        assert_eq!(sorted("emails.value", Some("descending"), users), ["3", "2", "1"]);
    }

    #[test]
    fn datetimes_sort_chronologically() {
        let users = vec![
            json!({"id": "1", "meta": {"created": "2011-05-13T04:42:34Z"}}),
            json!({"id": "2", "meta": {"created": "2011-05-13T05:42:34+02:00"}}),
            json!({"id": "3", "meta": {"created": "2010-01-23T04:56:22Z"}}),
        ];
        assert_eq!(sorted("meta.created", None, users), ["3", "2", "1"]);
    }

    #[test]
    fn ties_break_by_id_in_both_orders() {
        let users = vec![json!({"id": "b", "title": "x"}), json!({"id": "a", "title": "X"}), json!({"id": "c"})];
        assert_eq!(sorted("title", None, users.clone()), ["a", "b", "c"]);
        assert_eq!(sorted("title", Some("descending"), users), ["c", "a", "b"]);
    }

    #[test]
    fn extension_attributes_and_booleans() {
        let users = vec![
            json!({"id": "1", ENTERPRISE_USER_SCHEMA: {"department": "Sales"}, "active": true}),
            json!({"id": "2", ENTERPRISE_USER_SCHEMA: {"department": "engineering"}, "active": false}),
        ];
        assert_eq!(sorted(&format!("{ENTERPRISE_USER_SCHEMA}:department"), None, users.clone()), ["2", "1"]);
        assert_eq!(sorted("department", None, users.clone()), ["2", "1"]);
        assert_eq!(sorted("active", None, users), ["2", "1"]);
    }

    #[test]
    fn groups_sort_by_display_name() {
        let mut groups = vec![json!({"id": "1", "displayName": "ops"}), json!({"id": "2", "displayName": "Admins"})];
        SortSpec::parse(ResourceType::Group, "displayName", None).unwrap().sort(&mut groups);
        assert_eq!(groups[0]["id"], "2");
    }

    #[test]
    fn invalid_parameters() {
        let e = SortSpec::parse(ResourceType::User, "userName", Some("up")).unwrap_err();
        assert_eq!(e.scim_type, Some("invalidValue"));
        assert!(e.detail.contains("ascending or descending"));
        assert!(SortSpec::parse(ResourceType::User, "nope", None).unwrap_err().detail.contains("sortBy"));
        assert!(SortSpec::parse(ResourceType::User, "name", None).unwrap_err().detail.contains("name.formatted"));
        assert_eq!(SortSpec::parse(ResourceType::User, "name.givenName", None).unwrap().order(), SortOrder::Ascending);
    }

    #[test]
    fn by_id_orders_resources_without_ids_first() {
        let mut v = [json!({"id": "b"}), json!({}), json!({"id": "a"})];
        v.sort_by(by_id);
        assert_eq!(v, [json!({}), json!({"id": "a"}), json!({"id": "b"})]);
    }
}
