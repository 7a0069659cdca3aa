//! JSON object members by SCIM attribute name, which is case-insensitive (RFC 7643 §2.1).

use serde_json::{Map, Value};

/// The member `name` of a JSON object. Attribute names are case-insensitive (RFC 7643 §2.1), and
/// clients do not always use the canonical casing (Entra's docs map `emails[type eq "other"].Value`),
/// so an exact match is preferred and a case-insensitive one accepted.
pub(crate) fn field<'a>(obj: &'a Value, name: &str) -> Option<&'a Value> {
    let map = obj.as_object()?;
    map.get(name).or_else(|| map.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v))
}

/// Renames a member whose key matches `canonical` case-insensitively to exactly `canonical`, so a
/// write that follows lands on the one key instead of creating a second, differently cased one.
pub(crate) fn canonicalize_key(map: &mut Map<String, Value>, canonical: &str) {
    if map.contains_key(canonical) {
        return;
    }
    let other = map.keys().find(|k| k.eq_ignore_ascii_case(canonical)).cloned();
    if let Some(other) = other
        && let Some(v) = map.remove(&other)
    {
        map.insert(canonical.to_string(), v);
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn field_prefers_exact_and_accepts_other_casing() {
        let v = json!({"Value": 1, "value": 2, "Type": 3});
        assert_eq!(field(&v, "value"), Some(&json!(2)));
        assert_eq!(field(&v, "type"), Some(&json!(3)));
        assert_eq!(field(&v, "display"), None);
        assert_eq!(field(&json!("not an object"), "value"), None);
    }

    #[test]
    fn canonicalize_key_renames_other_casing() {
        let mut m = json!({"USERNAME": "a"}).as_object().unwrap().clone();
        canonicalize_key(&mut m, "userName");
        assert_eq!(Value::Object(m), json!({"userName": "a"}));
    }
}
