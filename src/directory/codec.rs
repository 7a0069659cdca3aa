//! Users and Groups as custom resources ⇄ their SCIM wire form (RFC 7643 §4).

use std::collections::HashSet;

use serde_json::{Map, Value, json};

use crate::api::{Group, GroupMember, GroupSpec, ProviderRef, User, UserSpec, annotations, labels};
use crate::scim::ScimError;
use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_SCHEMA};

/// Keys the server computes or never stores; everything else a client writes is kept.
const USER_SERVER_KEYS: &[&str] = &["id", "meta", "schemas", "groups", "password"];
const GROUP_SERVER_KEYS: &[&str] = &["id", "meta", "schemas"];

/// A group a user belongs to, for the user's read-only `groups` attribute.
pub struct Membership<'a> {
    pub id: &'a str,
    pub display_name: &'a str,
}

/// A member of a group as the index knows it, for the group's `members` attribute.
pub struct Member<'a> {
    pub id: &'a str,
    pub display: Option<&'a str>,
}

pub fn scim_id<K: kube::Resource>(obj: &K) -> Option<&str> {
    obj.meta().labels.as_ref()?.get(labels::SCIM_ID).map(String::as_str)
}

/// `W/"<resourceVersion>"`: the resource version changes on every write, so it is a faithful
/// weak ETag (RFC 7644 §3.14).
pub fn version<K: kube::Resource>(obj: &K) -> String {
    format!("W/\"{}\"", obj.meta().resource_version.as_deref().unwrap_or("0"))
}

fn meta<K: kube::Resource>(obj: &K, resource_type: &str, location: String) -> Value {
    let ann = obj.meta().annotations.as_ref();
    let created =
        ann.and_then(|a| a.get(annotations::CREATED).cloned()).or_else(|| obj.meta().creation_timestamp.as_ref().map(|t| t.0.to_string()));
    let modified = ann.and_then(|a| a.get(annotations::LAST_MODIFIED).cloned()).or_else(|| created.clone());
    json!({
        "resourceType": resource_type,
        "created": created,
        "lastModified": modified,
        "location": location,
        "version": version(obj),
    })
}

pub fn user_to_scim(user: &User, groups: &[Membership], base_url: &str) -> Value {
    let id = scim_id(user).unwrap_or_default();
    let mut out = Map::new();
    let mut schemas = vec![json!(USER_SCHEMA)];
    if let Some(attrs) = &user.spec.attributes {
        for (k, v) in attrs {
            out.insert(k.clone(), v.clone());
        }
        if attrs.contains_key(ENTERPRISE_USER_SCHEMA) {
            schemas.push(json!(ENTERPRISE_USER_SCHEMA));
        }
    }
    out.insert("schemas".into(), Value::Array(schemas));
    out.insert("id".into(), json!(id));
    if let Some(e) = &user.spec.external_id {
        out.insert("externalId".into(), json!(e));
    }
    out.insert("userName".into(), json!(user.spec.user_name));
    if let Some(d) = &user.spec.display_name {
        out.insert("displayName".into(), json!(d));
    }
    if let Some(active) = user.spec.active {
        out.insert("active".into(), json!(active));
    }
    if !groups.is_empty() {
        let groups: Vec<Value> = groups
            .iter()
            .map(|g| json!({"value": g.id, "display": g.display_name, "$ref": format!("{base_url}/Groups/{}", g.id), "type": "direct"}))
            .collect();
        out.insert("groups".into(), Value::Array(groups));
    }
    out.insert("meta".into(), meta(user, "User", format!("{base_url}/Users/{id}")));
    Value::Object(out)
}

/// The spec for a validated, canonical SCIM User (the output of `scim::patch`).
pub fn user_spec_from_scim(resource: &Value, provider: &str) -> Result<UserSpec, ScimError> {
    let obj = resource.as_object().ok_or_else(|| ScimError::invalid_syntax("a User must be a JSON object"))?;
    let user_name = match obj.get("userName") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        Some(Value::String(_)) | None | Some(Value::Null) => {
            return Err(ScimError::invalid_value("userName is required and must not be empty"));
        }
        Some(_) => return Err(ScimError::invalid_value("userName must be a string")),
    };
    // Unassigned stays unassigned (see `UserSpec::is_active` for what that means).
    let active = match obj.get("active") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(_) => return Err(ScimError::invalid_value("active must be a boolean")),
    };
    let string = |key: &str| -> Result<Option<String>, ScimError> {
        match obj.get(key) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::String(s)) => Ok(Some(s.clone())),
            Some(_) => Err(ScimError::invalid_value(format!("{key} must be a string"))),
        }
    };
    let mut attributes = Map::new();
    for (k, v) in obj {
        let typed = matches!(k.as_str(), "userName" | "externalId" | "displayName" | "active");
        if !typed && !USER_SERVER_KEYS.contains(&k.as_str()) && !v.is_null() {
            attributes.insert(k.clone(), v.clone());
        }
    }
    Ok(UserSpec {
        provider_ref: ProviderRef { name: provider.to_string() },
        user_name,
        external_id: string("externalId")?,
        display_name: string("displayName")?,
        active,
        attributes: (!attributes.is_empty()).then_some(attributes),
    })
}

pub fn group_to_scim(group: &Group, members: &[Member], base_url: &str) -> Value {
    let id = scim_id(group).unwrap_or_default();
    let mut out = Map::new();
    out.insert("schemas".into(), json!([GROUP_SCHEMA]));
    out.insert("id".into(), json!(id));
    if let Some(e) = &group.spec.external_id {
        out.insert("externalId".into(), json!(e));
    }
    out.insert("displayName".into(), json!(group.spec.display_name));
    let members: Vec<Value> = members
        .iter()
        .map(|m| {
            let mut v = json!({"value": m.id, "$ref": format!("{base_url}/Users/{}", m.id), "type": "User"});
            if let Some(d) = m.display {
                v["display"] = json!(d);
            }
            v
        })
        .collect();
    out.insert("members".into(), Value::Array(members));
    out.insert("meta".into(), meta(group, "Group", format!("{base_url}/Groups/{id}")));
    Value::Object(out)
}

/// The spec for a validated, canonical SCIM Group. Member ids are checked by the caller, which
/// knows which users exist.
pub fn group_spec_from_scim(resource: &Value, provider: &str) -> Result<GroupSpec, ScimError> {
    let obj = resource.as_object().ok_or_else(|| ScimError::invalid_syntax("a Group must be a JSON object"))?;
    let display_name = match obj.get("displayName") {
        Some(Value::String(s)) if !s.trim().is_empty() => s.clone(),
        _ => return Err(ScimError::invalid_value("displayName is required and must be a non-empty string")),
    };
    let external_id = match obj.get("externalId") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => return Err(ScimError::invalid_value("externalId must be a string")),
    };
    let mut members: Vec<GroupMember> = vec![];
    // A set, because large groups are re-read from their full member list on every change.
    let mut seen: HashSet<&str> = HashSet::new();
    if let Some(list) = obj.get("members").and_then(Value::as_array) {
        for m in list {
            let value = m
                .get("value")
                .and_then(Value::as_str)
                .ok_or_else(|| ScimError::invalid_value("every member needs a string value (the member's id)"))?;
            if let Some(t) = m.get("type").and_then(Value::as_str)
                && !t.eq_ignore_ascii_case("User")
            {
                return Err(ScimError::invalid_value(format!("member {value}: only User members are supported, not {t}")));
            }
            if seen.insert(value) {
                let display = m.get("display").and_then(Value::as_str).map(str::to_string);
                members.push(GroupMember { value: value.to_string(), display, type_: None });
            }
        }
    }
    for k in obj.keys() {
        let known = matches!(k.as_str(), "displayName" | "externalId" | "members") || GROUP_SERVER_KEYS.contains(&k.as_str());
        if !known {
            return Err(ScimError::invalid_path(format!("unknown Group attribute {k:?}")));
        }
    }
    Ok(GroupSpec { provider_ref: ProviderRef { name: provider.to_string() }, display_name, external_id, members })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user(spec: UserSpec, id: &str) -> User {
        let mut u = User::new("u-x", spec);
        u.metadata.labels = Some([(labels::SCIM_ID.to_string(), id.to_string())].into());
        u.metadata.resource_version = Some("42".into());
        u.metadata.annotations = Some([(annotations::CREATED.to_string(), "2026-01-01T00:00:00Z".to_string())].into());
        u
    }

    #[test]
    fn user_round_trip_keeps_every_attribute_but_server_ones() {
        let input = json!({
            "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
            "id": "ignored", "password": "t1meMa$heen", "groups": [{"value": "x"}],
            "userName": "alice@example.com", "externalId": "00u1", "displayName": "Alice", "active": false,
            "name": {"givenName": "Alice", "familyName": "Smith"},
            "emails": [{"value": "alice@example.com", "type": "work", "primary": true}],
            ENTERPRISE_USER_SCHEMA: {"department": "R&D"}
        });
        let spec = user_spec_from_scim(&input, "okta").unwrap();
        assert_eq!(spec.user_name, "alice@example.com");
        assert_eq!(spec.active, Some(false));
        let attrs = spec.attributes.clone().unwrap();
        assert!(!attrs.contains_key("password") && !attrs.contains_key("id") && !attrs.contains_key("groups"));
        let u = user(spec, "id-1");
        let out = user_to_scim(&u, &[Membership { id: "g1", display_name: "eng" }], "https://x/api/scim/v2");
        assert_eq!(out["id"], "id-1");
        assert_eq!(out["name"]["familyName"], "Smith");
        assert_eq!(out["schemas"], json!([USER_SCHEMA, ENTERPRISE_USER_SCHEMA]));
        assert_eq!(out[ENTERPRISE_USER_SCHEMA]["department"], "R&D");
        assert_eq!(out["groups"][0]["$ref"], "https://x/api/scim/v2/Groups/g1");
        assert_eq!(out["meta"]["version"], "W/\"42\"");
        assert_eq!(out["meta"]["location"], "https://x/api/scim/v2/Users/id-1");
        assert_eq!(out["meta"]["created"], "2026-01-01T00:00:00Z");
        assert!(out.get("password").is_none());
    }

    #[test]
    fn user_validation() {
        for bad in [json!({}), json!({"userName": ""}), json!({"userName": 5}), json!({"userName": "a", "active": "yes"})] {
            assert!(user_spec_from_scim(&bad, "okta").is_err(), "{bad}");
        }
    }

    #[test]
    fn an_unassigned_active_stays_unassigned_and_may_log_in() {
        for input in [json!({"userName": "a"}), json!({"userName": "a", "active": null})] {
            let spec = user_spec_from_scim(&input, "okta").unwrap();
            assert_eq!(spec.active, None, "{input}");
            assert!(spec.is_active(), "only active: false deactivates");
            let out = user_to_scim(&user(spec, "id-1"), &[], "https://x/api/scim/v2");
            assert!(out.get("active").is_none(), "read back unassigned, not invented: {out}");
        }
        for (active, may_log_in) in [(true, true), (false, false)] {
            let spec = user_spec_from_scim(&json!({"userName": "a", "active": active}), "okta").unwrap();
            assert_eq!((spec.active, spec.is_active()), (Some(active), may_log_in));
            assert_eq!(user_to_scim(&user(spec, "id-1"), &[], "https://x")["active"], active);
        }
    }

    #[test]
    fn groups_dedupe_members_and_refuse_non_users() {
        let spec = group_spec_from_scim(
            &json!({"displayName": "eng", "members": [{"value": "a"}, {"value": "a", "display": "A"}, {"value": "b", "type": "User"}]}),
            "okta",
        )
        .unwrap();
        assert_eq!(spec.members.iter().map(|m| m.value.as_str()).collect::<Vec<_>>(), vec!["a", "b"]);
        assert!(group_spec_from_scim(&json!({"displayName": "eng", "members": [{"value": "g", "type": "Group"}]}), "okta").is_err());
        assert!(group_spec_from_scim(&json!({"members": []}), "okta").is_err());
        assert!(group_spec_from_scim(&json!({"displayName": "x", "bogus": 1}), "okta").is_err());
    }

    #[test]
    fn members_read_back_as_written() {
        // RFC 7643 §2.4: a member's `display` is the client's (immutable), not the server's; the
        // server invents none for members written without one.
        let spec = group_spec_from_scim(
            &json!({"displayName": "eng", "members": [{"value": "a", "display": "alice@example.com", "type": "User"}, {"value": "b"}]}),
            "okta",
        )
        .unwrap();
        let mut g = Group::new("g-x", spec.clone());
        g.metadata.labels = Some([(labels::SCIM_ID.to_string(), "g1".to_string())].into());
        let members: Vec<Member> = spec.members.iter().map(|m| Member { id: &m.value, display: m.display.as_deref() }).collect();
        let out = group_to_scim(&g, &members, "https://x/api/scim/v2");
        assert_eq!(
            out["members"],
            json!([
                {"value": "a", "display": "alice@example.com", "$ref": "https://x/api/scim/v2/Users/a", "type": "User"},
                {"value": "b", "$ref": "https://x/api/scim/v2/Users/b", "type": "User"}
            ])
        );
    }
}
