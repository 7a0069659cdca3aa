//! How attribute values in the JSON wire form are read and compared. Filtering, sorting and PATCH
//! all compare values the same way (RFC 7644 §3.4.2.2 and §3.4.2.3: by the attribute's type, and
//! case-insensitively unless it is `caseExact`), so that logic lives here once.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::hash::{Hash, Hasher};

use serde_json::Value;

use super::schema::{AttrDef, AttrType};

// The case-insensitive member helpers are used throughout the SCIM core; they live in `json`
// so that `schema` can use them without depending on this module.
pub(crate) use super::json::{canonicalize_key, field};

/// RFC 7643 §2.5: null, an empty array and (for our purposes, as RFC 7644's `pr` says "non-empty")
/// an empty string or an object with only empty members all mean "no value".
pub(crate) fn is_empty(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Array(items) => items.iter().all(is_empty),
        Value::Object(members) => members.values().all(is_empty),
        Value::Bool(_) | Value::Number(_) => false,
    }
}

/// Parses an `xsd:dateTime` (RFC 7643 §2.3.5). Clients usually send an offset
/// (`2011-05-13T04:42:34Z`), but xsd:dateTime makes it optional; a time without one is taken as UTC.
pub(crate) fn parse_datetime(s: &str) -> Option<jiff::Timestamp> {
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Some(ts);
    }
    let civil = s.parse::<jiff::civil::DateTime>().ok()?;
    civil.to_zoned(jiff::tz::TimeZone::UTC).ok().map(|z| z.timestamp())
}

/// Whether strings of this attribute compare exactly. Binary values are base64, where case matters.
pub(crate) fn is_case_exact(def: &AttrDef) -> bool {
    def.case_exact || def.ty == AttrType::Binary
}

/// A string as it should be compared for this attribute: exactly if caseExact, else by the one
/// case-insensitive rule of [`super::case`] (ASCII letters only).
pub(crate) fn fold<'a>(def: &AttrDef, s: &'a str) -> Cow<'a, str> {
    if is_case_exact(def) { Cow::Borrowed(s) } else { super::case::fold_case(s) }
}

/// Orders two values of the attribute `def` by its type: strings lexicographically (folded unless
/// caseExact), dateTimes chronologically, numbers numerically, `false < true`. `None` when the
/// values are not both of the attribute's type (or the type has no order, like complex).
pub(crate) fn compare(def: &AttrDef, a: &Value, b: &Value) -> Option<Ordering> {
    match def.ty {
        AttrType::String | AttrType::Reference | AttrType::Binary => Some(fold(def, a.as_str()?).cmp(&fold(def, b.as_str()?))),
        AttrType::Boolean => Some(a.as_bool()?.cmp(&b.as_bool()?)),
        AttrType::Integer | AttrType::Decimal => a.as_f64()?.partial_cmp(&b.as_f64()?),
        AttrType::DateTime => Some(parse_datetime(a.as_str()?)?.cmp(&parse_datetime(b.as_str()?)?)),
        AttrType::Complex => None,
    }
}

/// Whether two values of the attribute `def` are the same value.
pub(crate) fn equal(def: &AttrDef, a: &Value, b: &Value) -> bool {
    match compare(def, a, b) {
        Some(o) => o == Ordering::Equal,
        None => a == b,
    }
}

/// Feeds `v` to `h` so that values that are `==` hash alike: object members in key order (so the
/// map's own order never matters) and numbers by their `f64` value (`1` and `1.0` are not `==`, but
/// hashing them alike only costs a comparison). Used to index elements for linear-time merging.
pub(crate) fn hash_json<H: Hasher>(v: &Value, h: &mut H) {
    match v {
        Value::Null => 0u8.hash(h),
        Value::Bool(b) => (1u8, b).hash(h),
        Value::Number(n) => (2u8, number_bits(n.as_f64())).hash(h),
        Value::String(s) => (3u8, s).hash(h),
        Value::Array(items) => {
            (4u8, items.len()).hash(h);
            items.iter().for_each(|i| hash_json(i, h));
        }
        Value::Object(members) => {
            (5u8, members.len()).hash(h);
            let mut keys: Vec<&String> = members.keys().collect();
            keys.sort_unstable();
            for k in keys {
                k.hash(h);
                hash_json(&members[k], h);
            }
        }
    }
}

/// `-0.0 == 0.0`, so both hash as `0.0`. JSON has no NaN.
fn number_bits(n: Option<f64>) -> u64 {
    match n {
        // A float pattern compares with `==`, so it matches -0.0 as well.
        Some(0.0) => 0f64.to_bits(),
        Some(f) => f.to_bits(),
        None => u64::MAX,
    }
}

/// Feeds `v`, a value of the attribute `def`, to `h` so that values [`equal`] for `def` hash alike:
/// strings folded unless caseExact, numbers by value, dateTimes by the instant they name. Values
/// `compare` cannot order (the wrong type for `def`) fall back to [`hash_json`], matching `equal`'s
/// fallback to `==`.
pub(crate) fn hash_value<H: Hasher>(def: &AttrDef, v: &Value, h: &mut H) {
    match (def.ty, v) {
        (AttrType::String | AttrType::Reference | AttrType::Binary, Value::String(s)) => (10u8, fold(def, s)).hash(h),
        (AttrType::Integer | AttrType::Decimal, Value::Number(n)) => (11u8, number_bits(n.as_f64())).hash(h),
        (AttrType::DateTime, Value::String(s)) => match parse_datetime(s) {
            Some(ts) => (12u8, ts.as_nanosecond()).hash(h),
            None => hash_json(v, h),
        },
        _ => hash_json(v, h),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scim::schema::{ResourceType, common_attribute};
    use serde_json::json;

    fn def(path: &str) -> &'static AttrDef {
        crate::scim::schema::resolve(ResourceType::User, path).unwrap().leaf()
    }

    #[test]
    fn emptiness() {
        for v in [json!(null), json!(""), json!([]), json!({}), json!([null, ""]), json!({"givenName": ""})] {
            assert!(is_empty(&v), "{v}");
        }
        for v in [json!(false), json!(0), json!("x"), json!([{"value": "x"}]), json!({"givenName": "B"})] {
            assert!(!is_empty(&v), "{v}");
        }
    }

    #[test]
    fn datetimes_with_and_without_offset() {
        let z = parse_datetime("2011-05-13T04:42:34Z").unwrap();
        assert_eq!(parse_datetime("2011-05-13T04:42:34").unwrap(), z);
        assert_eq!(parse_datetime("2011-05-13T06:42:34+02:00").unwrap(), z);
        assert!(parse_datetime("2011-05-13T04:42:34.882Z").unwrap() > z);
        assert!(parse_datetime("yesterday").is_none());
    }

    #[test]
    fn compare_by_type_and_case_exactness() {
        assert_eq!(compare(def("userName"), &json!("Bob"), &json!("bob")), Some(Ordering::Equal));
        assert_eq!(compare(def("externalId"), &json!("Bob"), &json!("bob")), Some(Ordering::Less));
        assert_eq!(compare(def("x509Certificates.value"), &json!("QQ=="), &json!("qq==")), Some(Ordering::Less));
        assert_eq!(compare(def("active"), &json!(false), &json!(true)), Some(Ordering::Less));
        assert_eq!(
            compare(def("meta.created"), &json!("2011-05-13T04:42:34Z"), &json!("2011-05-13T05:00:00+01:00")),
            Some(Ordering::Greater)
        );
        assert_eq!(compare(def("userName"), &json!(1), &json!("1")), None);
        assert_eq!(compare(common_attribute("meta").unwrap(), &json!({}), &json!({})), None);
        assert!(equal(def("emails.value"), &json!("A@example.com"), &json!("a@EXAMPLE.com")));
        assert!(!equal(def("id"), &json!("A1"), &json!("a1")));
        // The Kelvin sign is not `k`: only ASCII letters fold.
        assert!(!equal(def("userName"), &json!("\u{212A}ate@x"), &json!("KATE@x")));
        assert!(equal(def("userName"), &json!("kate@x"), &json!("KATE@x")));
    }

    fn hash_of(f: impl FnOnce(&mut std::collections::hash_map::DefaultHasher)) -> u64 {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        f(&mut h);
        h.finish()
    }

    #[test]
    fn equal_values_hash_alike() {
        let pairs = [
            ("emails.value", json!("A@example.com"), json!("a@EXAMPLE.com")),
            ("meta.created", json!("2011-05-13T04:42:34Z"), json!("2011-05-13T06:42:34+02:00")),
            ("meta.created", json!("2011-05-13T04:42:34Z"), json!("2011-05-13T04:42:34")),
            ("active", json!(true), json!(true)),
            ("userName", json!(1), json!(1)),
        ];
        for (path, a, b) in pairs {
            let d = def(path);
            assert!(equal(d, &a, &b), "{path}: {a} {b}");
            assert_eq!(hash_of(|h| hash_value(d, &a, h)), hash_of(|h| hash_value(d, &b, h)), "{path}: {a} {b}");
        }
        // Case matters for caseExact attributes, and the hash says so.
        let id = def("id");
        assert_ne!(hash_of(|h| hash_value(id, &json!("A1"), h)), hash_of(|h| hash_value(id, &json!("a1"), h)));
        // Object member order never matters, -0.0 is 0.0.
        let (a, b) = (json!({"a": 1, "b": [0.0]}), json!({"b": [-0.0], "a": 1}));
        assert_eq!(a, b);
        assert_eq!(hash_of(|h| hash_json(&a, h)), hash_of(|h| hash_json(&b, h)));
    }
}
