//! The names a person has in Kubernetes. One convention for tokens, grants, the audit log and the
//! dashboard: `infra:<provider>:<userName>` (userName in its folded form, see
//! [`crate::scim::case::fold_case`]), groups `infra:<provider>:<displayName>`, and
//! `infra:authenticated` for everyone Infra vouches for.

use crate::scim::case::fold_case;

/// Every name Infra asserts starts with this; nothing it asserts starts with `system:`.
pub const PREFIX: &str = "infra:";
/// The group every person Infra vouches for is in.
pub const AUTHENTICATED: &str = "infra:authenticated";
/// The `extra` key the API server maps the session id to (audit log, webhook).
pub const SESSION_EXTRA: &str = "infrahq.com/session-id";

pub fn username(provider: &str, user_name: &str) -> String {
    format!("{PREFIX}{provider}:{}", fold_case(user_name))
}

pub fn group(provider: &str, display_name: &str) -> String {
    format!("{PREFIX}{provider}:{display_name}")
}

/// The groups of a person: each of `display_names` under the provider, plus
/// [`AUTHENTICATED`], sorted and without duplicates.
pub fn groups<'a>(provider: &str, display_names: impl IntoIterator<Item = &'a String>) -> Vec<String> {
    let mut out: Vec<String> = display_names.into_iter().map(|g| group(provider, g)).collect();
    out.push(AUTHENTICATED.to_string());
    out.sort();
    out.dedup();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_convention() {
        assert_eq!(username("okta", "Alice@Example.com"), "infra:okta:alice@example.com");
        assert_eq!(group("okta", "Site Reliability"), "infra:okta:Site Reliability");
        let g = groups("okta", &["b".to_string(), "a".to_string(), "a".to_string()]);
        assert_eq!(g, vec!["infra:authenticated", "infra:okta:a", "infra:okta:b"]);
        // A group named like a system group stays under the provider's prefix.
        assert_eq!(group("okta", "system:masters"), "infra:okta:system:masters");
    }
}
