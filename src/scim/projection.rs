//! `attributes` and `excludedAttributes` (RFC 7644 §3.4.2.5 and §3.9) together with each
//! attribute's `returned` characteristic (RFC 7643 §2.4 / §7):
//! - `always` (`id`, `schemas`) is returned even when excluded or not asked for;
//! - `never` (`password`) is never returned, even when asked for;
//! - `default` (everything else, `userName` and `meta` included) is returned unless excluded, or,
//!   when `attributes` is given, only if named there;
//! - `request` is returned only when named in `attributes`.
//!
//! Names are comma-separated, case-insensitive, may be URN-qualified, and may name a
//! sub-attribute (`name.givenName`, `emails.value`) or a whole schema (the enterprise URN). Names
//! that do not resolve are ignored rather than refused: RFC 7644 gives no error for them, and a
//! client asking for an attribute we do not have should still get the rest. When both parameters
//! are given, `attributes` selects and `excludedAttributes` then removes.

use serde_json::{Map, Value};

use super::schema::{AttrDef, ResolvedAttr, ResourceType, Returned, Schema, resolve};

/// One name from `attributes` or `excludedAttributes`.
#[derive(Debug, Clone, PartialEq)]
enum Selector {
    /// A schema URN: every attribute of that schema.
    Schema(&'static str),
    Attr(ResolvedAttr),
}

/// A parsed `attributes` / `excludedAttributes` pair for one resource type.
#[derive(Debug, Clone, PartialEq)]
pub struct Projection {
    rt: ResourceType,
    /// `None` when `attributes` was not given: the default set.
    include: Option<Vec<Selector>>,
    exclude: Vec<Selector>,
}

impl Projection {
    /// From the raw query parameters; absent or empty parameters mean "no restriction".
    pub fn new(rt: ResourceType, attributes: Option<&str>, excluded_attributes: Option<&str>) -> Self {
        let include = selectors(rt, attributes.unwrap_or(""));
        Self { rt, include: (!include.is_empty()).then_some(include), exclude: selectors(rt, excluded_attributes.unwrap_or("")) }
    }

    /// The resource as it should be returned. Extension containers left empty are dropped, along
    /// with their URN in `schemas` (which names the schemas whose attributes are present).
    pub fn apply(&self, resource: &Value) -> Value {
        let Some(members) = resource.as_object() else { return resource.clone() };
        let mut out = Map::new();
        let mut dropped_schemas: Vec<&str> = Vec::new();
        for (key, value) in members {
            if let Some(ext) = self.rt.extension_by_urn(key) {
                let projected = value.as_object().map(|c| self.container(ext, c)).unwrap_or_default();
                if projected.is_empty() {
                    dropped_schemas.push(ext.id);
                } else {
                    out.insert(key.clone(), Value::Object(projected));
                }
                continue;
            }
            let kept = match self.rt.top_level_attribute(key) {
                Some(def) => self.attribute(None, def, value),
                // Not in our schemas: part of the default set only.
                None => self.include.is_none().then(|| value.clone()),
            };
            if let Some(v) = kept {
                out.insert(key.clone(), v);
            }
        }
        if let Some(Value::Array(schemas)) = out.get_mut("schemas") {
            schemas.retain(|s| !s.as_str().is_some_and(|s| dropped_schemas.iter().any(|d| d.eq_ignore_ascii_case(s))));
        }
        Value::Object(out)
    }

    fn container(&self, ext: &'static Schema, members: &Map<String, Value>) -> Map<String, Value> {
        let mut out = Map::new();
        for (key, value) in members {
            let kept = match ext.attribute(key) {
                Some(def) => self.attribute(Some(ext.id), def, value),
                None => self.include.is_none().then(|| value.clone()),
            };
            if let Some(v) = kept {
                out.insert(key.clone(), v);
            }
        }
        out
    }

    /// The attribute `def` (top-level or in extension `container`) as returned, if at all.
    fn attribute(&self, container: Option<&'static str>, def: &AttrDef, value: &Value) -> Option<Value> {
        if value.is_null() {
            return None;
        }
        let schema_id = container.unwrap_or(self.rt.schema().id);
        let names_whole = |list: &[Selector]| {
            list.iter().any(|s| match s {
                Selector::Schema(id) => *id == schema_id,
                Selector::Attr(r) => r.container == container && r.attr.name == def.name && r.sub.is_none(),
            })
        };
        let named_subs: Vec<&AttrDef> = match &self.include {
            None => Vec::new(),
            Some(list) => list.iter().filter_map(|s| sub_of(s, container, def)).collect(),
        };
        let excluded_subs: Vec<&AttrDef> = self.exclude.iter().filter_map(|s| sub_of(s, container, def)).collect();
        match def.returned {
            Returned::Never => None,
            Returned::Always => Some(value.clone()),
            Returned::Default | Returned::Request => {
                if names_whole(&self.exclude) {
                    return None;
                }
                let whole = match &self.include {
                    None => def.returned == Returned::Default,
                    Some(list) => names_whole(list),
                };
                let only = if whole {
                    None
                } else if !named_subs.is_empty() {
                    Some(named_subs.as_slice())
                } else {
                    return None;
                };
                sub_attributes(def, value, only, &excluded_subs)
            }
        }
    }
}

/// The sub-attribute of `def` (in `container`) that selector `s` names, if it names one.
fn sub_of(s: &Selector, container: Option<&'static str>, def: &AttrDef) -> Option<&'static AttrDef> {
    match s {
        Selector::Attr(r) if r.container == container && r.attr.name == def.name => r.sub,
        _ => None,
    }
}

fn selectors(rt: ResourceType, list: &str) -> Vec<Selector> {
    list.split(',')
        .map(str::trim)
        .filter(|name| !name.is_empty())
        .filter_map(|name| match rt.schema_by_urn(name) {
            Some(schema) => Some(Selector::Schema(schema.id)),
            None => resolve(rt, name).ok().map(Selector::Attr),
        })
        .collect()
}

/// Keeps the sub-attributes of a complex value (each element of a multi-valued one) that are
/// returned: those in `only` if given (plus `always` ones), minus `excluded` and `never` ones,
/// and `request` ones only if named. Elements left empty are dropped, and so is the attribute if
/// nothing is left.
fn sub_attributes(def: &AttrDef, value: &Value, only: Option<&[&AttrDef]>, excluded: &[&AttrDef]) -> Option<Value> {
    if !def.is_complex() {
        return Some(value.clone());
    }
    let named = |sub: &AttrDef, list: &[&AttrDef]| list.iter().any(|s| s.name == sub.name);
    let project = |element: &Value| -> Option<Value> {
        let Some(members) = element.as_object() else { return Some(element.clone()) };
        let kept: Map<String, Value> = members
            .iter()
            .filter(|(key, v)| {
                if v.is_null() {
                    return false;
                }
                let Some(sub) = def.sub_attribute(key) else { return only.is_none() };
                match sub.returned {
                    Returned::Never => false,
                    Returned::Always => true,
                    Returned::Request => only.is_some_and(|o| named(sub, o)) && !named(sub, excluded),
                    Returned::Default => only.is_none_or(|o| named(sub, o)) && !named(sub, excluded),
                }
            })
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        (!kept.is_empty()).then_some(Value::Object(kept))
    };
    match value {
        Value::Array(items) => {
            let kept: Vec<Value> = items.iter().filter_map(project).collect();
            (!kept.is_empty()).then_some(Value::Array(kept))
        }
        other => project(other),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::{ENTERPRISE_USER_SCHEMA, GROUP_SCHEMA, USER_SCHEMA};
    use serde_json::json;

    fn user() -> Value {
        json!({
            "schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA],
            "id": "2819c223",
            "externalId": "bjensen",
            "userName": "bjensen",
            "password": "t1meMa$heen",
            "name": {"givenName": "Barbara", "familyName": "Jensen"},
            "emails": [{"value": "bjensen@example.com", "type": "work", "primary": true}, {"value": "babs@jensen.org", "type": "home"}],
            "meta": {"resourceType": "User", "created": "2010-01-23T04:56:22Z"},
            ENTERPRISE_USER_SCHEMA: {"department": "Tour Operations", "manager": {"value": "m1", "displayName": "John Smith"}}
        })
    }

    fn project(attributes: Option<&str>, excluded: Option<&str>) -> Value {
        Projection::new(ResourceType::User, attributes, excluded).apply(&user())
    }

    #[test]
    fn default_set_drops_never_returned_attributes() {
        let mut expected = user();
        expected.as_object_mut().unwrap().remove("password");
        assert_eq!(project(None, None), expected);
        assert_eq!(project(Some(""), Some(" ")), expected);
    }

    #[test]
    fn attributes_selects_plus_always_returned() {
        assert_eq!(project(Some("userName"), None), json!({"schemas": [USER_SCHEMA], "id": "2819c223", "userName": "bjensen"}));
        assert_eq!(project(Some("USERNAME, DisplayName"), None)["userName"], "bjensen");
        assert_eq!(project(Some("password"), None).get("password"), None);
        assert_eq!(project(Some("meta"), None)["meta"]["created"], "2010-01-23T04:56:22Z");
        // Unknown names are ignored.
        assert_eq!(project(Some("userName,nope,emails[type eq \"work\"]"), None)["userName"], "bjensen");
    }

    #[test]
    fn attributes_with_sub_attributes() {
        let p = project(Some("name.givenName,emails.value"), None);
        assert_eq!(p["name"], json!({"givenName": "Barbara"}));
        assert_eq!(p["emails"], json!([{"value": "bjensen@example.com"}, {"value": "babs@jensen.org"}]));
        let p = project(Some("urn:ietf:params:scim:schemas:core:2.0:User:name.familyName"), None);
        assert_eq!(p["name"], json!({"familyName": "Jensen"}));
        // Both the whole attribute and one of its sub-attributes: the whole wins.
        assert_eq!(project(Some("name,name.givenName"), None)["name"], user()["name"]);
    }

    #[test]
    fn attributes_with_extension_names() {
        let p = project(Some(&format!("{ENTERPRISE_USER_SCHEMA}:department")), None);
        assert_eq!(
            p,
            json!({"schemas": [USER_SCHEMA, ENTERPRISE_USER_SCHEMA], "id": "2819c223", ENTERPRISE_USER_SCHEMA: {"department": "Tour Operations"}})
        );
        let p = project(Some(&format!("{ENTERPRISE_USER_SCHEMA}:manager.value")), None);
        assert_eq!(p[ENTERPRISE_USER_SCHEMA], json!({"manager": {"value": "m1"}}));
        let p = project(Some(ENTERPRISE_USER_SCHEMA), None);
        assert_eq!(p[ENTERPRISE_USER_SCHEMA], user()[ENTERPRISE_USER_SCHEMA]);
        assert!(p.get("userName").is_none());
        let p = project(Some(USER_SCHEMA), None);
        assert_eq!(p["userName"], "bjensen");
        assert!(p.get(ENTERPRISE_USER_SCHEMA).is_none());
    }

    #[test]
    fn empty_extension_containers_are_dropped_with_their_urn() {
        let p = project(Some("userName"), None);
        assert!(p.get(ENTERPRISE_USER_SCHEMA).is_none());
        assert_eq!(p["schemas"], json!([USER_SCHEMA]));
        let p = project(None, Some(ENTERPRISE_USER_SCHEMA));
        assert!(p.get(ENTERPRISE_USER_SCHEMA).is_none());
        assert_eq!(p["schemas"], json!([USER_SCHEMA]));
        let p = project(None, Some(&format!("{ENTERPRISE_USER_SCHEMA}:department,manager")));
        assert!(p.get(ENTERPRISE_USER_SCHEMA).is_none());
    }

    #[test]
    fn excluded_attributes() {
        let p = project(None, Some("emails,name.givenName,meta"));
        assert!(p.get("emails").is_none());
        assert!(p.get("meta").is_none());
        assert_eq!(p["name"], json!({"familyName": "Jensen"}));
        assert_eq!(p["userName"], "bjensen");
        let p = project(None, Some("emails.type,emails.primary"));
        assert_eq!(p["emails"], json!([{"value": "bjensen@example.com"}, {"value": "babs@jensen.org"}]));
        // `always` attributes cannot be excluded.
        let p = project(None, Some("id,schemas"));
        assert_eq!(p["id"], "2819c223");
        assert!(p.get("schemas").is_some());
        // attributes, then excludedAttributes.
        let p = project(Some("name,userName"), Some("name.familyName"));
        assert_eq!(p, json!({"schemas": [USER_SCHEMA], "id": "2819c223", "userName": "bjensen", "name": {"givenName": "Barbara"}}));
    }

    #[test]
    fn entra_get_group_excluding_members() {
        // Entra, "Get Group": GET /Groups/{id}?excludedAttributes=members
        let group = json!({
            "schemas": [GROUP_SCHEMA], "id": "40734ae655284ad3abcc", "externalId": "60f1bb27-2e1e-402d-bcc4-ec999564a194",
            "meta": {"resourceType": "Group", "created": "2018-03-27T19:59:26.000Z", "lastModified": "2018-03-27T19:59:26.000Z"},
            "displayName": "displayName", "members": [{"value": "u1"}]
        });
        let p = Projection::new(ResourceType::Group, None, Some("members")).apply(&group);
        let mut expected = group.clone();
        expected.as_object_mut().unwrap().remove("members");
        assert_eq!(p, expected);
    }

    #[test]
    fn nulls_and_emptied_values_are_not_returned() {
        // Entra's schema discovery guidance: "If a value isn't present, don't send null values."
        let u = json!({"schemas": [USER_SCHEMA], "id": "1", "userName": "u", "title": null, "emails": [{"value": null, "type": "work"}]});
        let p = Projection::new(ResourceType::User, None, Some("emails.type")).apply(&u);
        assert_eq!(p, json!({"schemas": [USER_SCHEMA], "id": "1", "userName": "u"}));
    }

    #[test]
    fn unknown_members_stay_in_the_default_set_only() {
        let u = json!({"schemas": [USER_SCHEMA], "id": "1", "userName": "u", "x-custom": 1, "name": {"nick": "n"}});
        assert_eq!(Projection::new(ResourceType::User, None, None).apply(&u), u);
        assert_eq!(
            Projection::new(ResourceType::User, Some("userName,name.givenName"), None).apply(&u),
            json!({"schemas": [USER_SCHEMA], "id": "1", "userName": "u"})
        );
    }
}
