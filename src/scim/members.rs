//! Group PATCHes that only add and remove members, recognized without the resource.
//!
//! Okta and Entra change memberships one PATCH at a time, often against groups of tens of
//! thousands (Okta's "Everyone"). Applied through [`super::patch`], every such PATCH would render
//! the whole member list and compare it with the result; recognized here, it costs in proportion
//! to the members it names. Only the forms whose effect is plain are recognized; anything else
//! (`replace`, a path-less operation, a `remove` of all members, an element with other
//! attributes, a request over the limits) returns `None` and goes through `patch`, which also
//! produces every error.
//!
//! - `add` with path `members` and a list of `{"value": id}` (Okta, Entra, RFC 7644 §3.5.2.1);
//! - `remove` with path `members[value eq "id"]` (Okta, RFC 7644 §3.5.2.2);
//! - `remove` with path `members` and a list of `{"value": id}` (Entra, see `patch`).

use serde_json::Value;

use super::filter::{AttrRef, CompareOp, Filter, Test, parse_path};
use super::patch::{MAX_MEMBERS_PER_REQUEST, OpKind, parse_request};
use super::schema::ResourceType;
use super::values::field;

/// One member added (with the `display` the client wrote, kept and returned as written, RFC 7643
/// §2.4) or removed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MemberChange {
    Add { id: String, display: Option<String> },
    Remove { id: String },
}

impl MemberChange {
    pub fn id(&self) -> &str {
        match self {
            MemberChange::Add { id, .. } | MemberChange::Remove { id } => id,
        }
    }
}

/// The member changes a PATCH request asks for, in request order (a later change of the same
/// member wins), or `None` when the request is not a members-only add/remove.
pub fn member_changes(body: &Value) -> Option<Vec<MemberChange>> {
    let ops = parse_request(body).ok()?;
    let mut changes = vec![];
    for op in &ops {
        let path = parse_path(op.path.as_deref()?, ResourceType::Group).ok()?;
        if path.attr.attr.name != "members" || path.attr.container.is_some() || path.attr.sub.is_some() {
            return None;
        }
        match (op.op, &path.filter, &op.value) {
            (OpKind::Add, None, Some(values)) => {
                changes.extend(listed(values)?.into_iter().map(|(id, display)| MemberChange::Add { id, display }))
            }
            (OpKind::Remove, None, Some(values)) => changes.extend(listed(values)?.into_iter().map(|(id, _)| MemberChange::Remove { id })),
            (OpKind::Remove, Some(filter), None) => changes.push(MemberChange::Remove { id: value_eq(filter)? }),
            _ => return None,
        }
        if changes.len() > MAX_MEMBERS_PER_REQUEST {
            return None;
        }
    }
    Some(changes)
}

/// The ids and displays of a non-empty list of plain member elements.
fn listed(values: &Value) -> Option<Vec<(String, Option<String>)>> {
    let list = values.as_array().filter(|l| !l.is_empty())?;
    list.iter()
        .map(|m| {
            let obj = m.as_object()?;
            let plain = obj.iter().all(|(k, v)| match k.to_ascii_lowercase().as_str() {
                "value" | "display" | "$ref" => v.is_string(),
                "type" => v.as_str().is_some_and(|t| t.eq_ignore_ascii_case("User")),
                _ => false,
            });
            let display = field(m, "display").and_then(Value::as_str).map(str::to_string);
            plain.then(|| field(m, "value")?.as_str().map(|id| (id.to_string(), display)))?
        })
        .collect()
}

/// `id` of a filter that is exactly `value eq "id"`.
fn value_eq(filter: &Filter) -> Option<String> {
    match filter {
        Filter::Attr { attr: AttrRef::Element(def), test: Test::Compare(CompareOp::Eq, Value::String(v)) } if def.name == "value" => {
            Some(v.clone())
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::patch::PATCH_OP_SCHEMA;
    use serde_json::json;

    fn ops(operations: Value) -> Value {
        json!({"schemas": [PATCH_OP_SCHEMA], "Operations": operations})
    }

    fn changes(v: &[(&str, bool)]) -> Option<Vec<(String, bool)>> {
        Some(v.iter().map(|(id, m)| (id.to_string(), *m)).collect())
    }

    /// The changes as (id, added), displays left out.
    fn plain(c: Option<Vec<MemberChange>>) -> Option<Vec<(String, bool)>> {
        c.map(|c| c.into_iter().map(|c| (c.id().to_string(), matches!(c, MemberChange::Add { .. }))).collect())
    }

    #[test]
    fn okta_and_entra_membership_dialects_are_recognized() {
        // Okta's group push: adds by list, removes by filter, in one request.
        let okta = ops(json!([
            {"op": "remove", "path": "members[value eq \"89bb1940-b905-4575-9e7f-6f887cfb368e\"]"},
            {"op": "add", "path": "members", "value": [{"value": "23a35c27-23d3-4c03-b4c5-6443c09e7173", "display": "test.user@okta.local"}]}
        ]));
        assert_eq!(
            plain(member_changes(&okta)),
            changes(&[("89bb1940-b905-4575-9e7f-6f887cfb368e", false), ("23a35c27-23d3-4c03-b4c5-6443c09e7173", true)])
        );
        // The display comes along, to be returned as written.
        assert_eq!(
            member_changes(&okta).unwrap()[1],
            MemberChange::Add { id: "23a35c27-23d3-4c03-b4c5-6443c09e7173".into(), display: Some("test.user@okta.local".into()) }
        );
        // Entra: capitalized ops, removal by value list.
        let entra = ops(json!([
            {"op": "Add", "path": "members", "value": [{"value": "a"}, {"value": "b", "type": "User"}]},
            {"op": "Remove", "path": "members", "value": [{"value": "c"}]}
        ]));
        assert_eq!(plain(member_changes(&entra)), changes(&[("a", true), ("b", true), ("c", false)]));
        assert_eq!(member_changes(&entra).unwrap()[0], MemberChange::Add { id: "a".into(), display: None });
    }

    #[test]
    fn anything_else_takes_the_general_path() {
        for body in [
            ops(json!([{"op": "replace", "path": "members", "value": [{"value": "a"}]}])),
            ops(json!([{"op": "remove", "path": "members"}])),
            ops(json!([{"op": "add", "path": "members", "value": []}])),
            ops(json!([{"op": "add", "path": "members", "value": [{"value": "g", "type": "Group"}]}])),
            ops(json!([{"op": "add", "path": "members", "value": [{"value": 5}]}])),
            ops(json!([{"op": "add", "path": "members", "value": [{"value": "a", "extra": 1}]}])),
            ops(
                json!([{"op": "add", "path": "members", "value": [{"value": "a"}]}, {"op": "replace", "path": "displayName", "value": "x"}]),
            ),
            ops(json!([{"op": "replace", "value": {"displayName": "x"}}])),
            ops(json!([{"op": "remove", "path": "members[value ne \"a\"]"}])),
            ops(json!([{"op": "remove", "path": "members[display eq \"a\"]"}])),
            ops(json!([{"op": "remove", "path": "members[value eq \"a\"].display"}])),
            json!({"schemas": ["urn:other"], "Operations": [{"op": "add", "path": "members", "value": [{"value": "a"}]}]}),
            ops(
                json!([{"op": "add", "path": "members", "value": (0..=MAX_MEMBERS_PER_REQUEST).map(|i| json!({"value": i.to_string()})).collect::<Vec<_>>()}]),
            ),
        ] {
            assert_eq!(member_changes(&body), None, "{body}");
        }
    }
}
