//! Object names and SCIM ids.
//!
//! A User's object name is derived from its provider and its case-folded userName (ASCII letters
//! only, see [`crate::scim::case`]), so the API server itself refuses a second user with the same
//! userName (in any ASCII case) in one provider: two
//! replicas racing to create it, or a client retrying a POST, get `AlreadyExists` rather than a
//! duplicate. A rename writes the user under its new name and deletes the old object; the SCIM id
//! lives in a label and moves with it, so it is stable for the user's whole life.

use sha2::{Digest, Sha256};

use crate::keys::{RandomError, random_string};
use crate::scim::case::fold_case;

/// The object name for a user: `u-` and 40 hex digits of SHA-256 over provider and folded userName.
///
/// Names that are pure ASCII hash exactly as they did when the fold was Unicode lower-casing, so
/// their objects keep their names. A userName with upper-case non-ASCII letters (`Ärger`) used to
/// hash its Unicode lower case; such a User is found through the directory's userName index, and
/// its next SCIM write moves it to the new name (a rename that keeps its id).
pub fn user_object_name(provider: &str, user_name: &str) -> String {
    let mut h = Sha256::new();
    h.update(provider.as_bytes());
    h.update([0u8]);
    h.update(fold_case(user_name).as_bytes());
    let digest = h.finalize();
    let hex: String = digest.iter().take(20).map(|b| format!("{b:02x}")).collect();
    format!("u-{hex}")
}

/// A new SCIM id: a random UUID (version 4 layout), which every SCIM client accepts.
pub fn new_id() -> Result<String, RandomError> {
    let hex = random_string(b"0123456789abcdef", 32)?;
    // Version 4 and the RFC 4122 variant, so it parses as a UUID where clients expect one.
    let variant = ["8", "9", "a", "b"][usize::from_str_radix(&hex[16..17], 16).unwrap_or(0) % 4];
    Ok(format!("{}-{}-4{}-{}{}-{}", &hex[0..8], &hex[8..12], &hex[13..16], variant, &hex[17..20], &hex[20..32]))
}

/// The object name for a group: groups have no unique attribute, so any unique name will do.
pub fn group_object_name(id: &str) -> String {
    format!("g-{id}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_names_ignore_case_and_bind_the_provider() {
        assert_eq!(user_object_name("okta", "Alice@Example.com"), user_object_name("okta", "alice@example.com"));
        assert_ne!(user_object_name("okta", "alice@example.com"), user_object_name("azure", "alice@example.com"));
        assert_ne!(user_object_name("okta", "alice"), user_object_name("okt", "aalice"));
        // Only ASCII letters fold: the Kelvin sign, ß and the Turkish İ/ı keep their own names.
        assert_ne!(user_object_name("okta", "\u{212A}ate@x"), user_object_name("okta", "kate@x"));
        assert_ne!(user_object_name("okta", "straße@x"), user_object_name("okta", "STRASSE@x"));
        assert_ne!(user_object_name("okta", "İnci@x"), user_object_name("okta", "inci@x"));
        assert_ne!(user_object_name("okta", "ınci@x"), user_object_name("okta", "INCI@x"));
    }

    #[test]
    fn ascii_user_names_keep_their_object_names() {
        // The name every existing ASCII userName was stored under (the old Unicode lower-casing).
        let old = |user_name: &str| {
            let mut h = Sha256::new();
            h.update(b"okta\0");
            h.update(user_name.to_lowercase().as_bytes());
            let hex: String = h.finalize().iter().take(20).map(|b| format!("{b:02x}")).collect();
            format!("u-{hex}")
        };
        for name in ["alice@example.com", "Bob.Smith@Example.COM", "x", "ALL-CAPS_1+tag@corp.example"] {
            assert_eq!(user_object_name("okta", name), old(name), "{name}");
        }
        let n = user_object_name("okta", "x");
        assert_eq!(n.len(), 42);
        assert!(n.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-'));
    }

    #[test]
    fn ids_are_uuid_shaped_and_unique() {
        let a = new_id().unwrap();
        let b = new_id().unwrap();
        assert_ne!(a, b);
        let parts: Vec<&str> = a.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), vec![8, 4, 4, 4, 12]);
        assert!(parts[2].starts_with('4'));
        assert!("89ab".contains(&parts[3][..1]));
    }
}
