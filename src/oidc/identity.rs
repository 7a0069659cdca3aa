//! Who a login says the person is: the username and groups taken from verified ID token claims
//! (and the userinfo response, for providers whose ID tokens leave the groups out). Pure.
//!
//! An `email` claim is a username only while the provider does not say it is unverified: with
//! `email_verified: false` (or `"false"`) the login is refused rather than letting anyone who can
//! type an address at the provider become the User of that address. An absent `email_verified`
//! counts as verified, because Okta (in some configurations) and Entra ID leave it out. There is no
//! fallback to `preferred_username` for an unverified email: OpenID Connect says it must not be
//! relied upon as unique, and some providers let people choose it. An administrator who trusts
//! another claim names it in `spec.claims.username`, and it is used as configured.

use regex::Regex;
use serde_json::{Map, Value};

use crate::api::ClaimMapping;

pub const DEFAULT_USERNAME_CLAIM: &str = "email";
/// Used when the provider names no username claim and the ID token has no `email`.
pub const FALLBACK_USERNAME_CLAIM: &str = "preferred_username";
pub const DEFAULT_GROUPS_CLAIM: &str = "groups";

pub type Claims = Map<String, Value>;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub user_name: String,
    /// Sorted, without duplicates, after the provider's groups filter.
    pub groups: Vec<String>,
    pub display_name: Option<String>,
    pub email: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum IdentityError {
    #[error(
        "the ID token has no {0:?} claim to take the username from; set spec.claims.username of the IdentityProvider to a claim the provider sends"
    )]
    NoUsername(String),
    #[error(
        "the identity provider says the email address {0:?} is not verified (email_verified is false), so it cannot be the username; verify the address at the identity provider, or an administrator can set spec.claims.username of the IdentityProvider to a claim the provider controls"
    )]
    EmailNotVerified(String),
    #[error("the {claim:?} claim is not a list of group names: {found}")]
    GroupsNotAList { claim: String, found: String },
    #[error("spec.groupsFilter is not a valid regular expression: {0}")]
    BadFilter(String),
}

/// The provider's groups filter, matched against whole group names (like Okta's "Matches regex"
/// filter, which is a full match): `eng.*` keeps `engineering`, not `platform-eng`.
pub fn groups_filter(raw: Option<&str>) -> Result<Regex, IdentityError> {
    let pattern = raw.unwrap_or(".*");
    Regex::new(&format!("^(?:{pattern})$")).map_err(|e| IdentityError::BadFilter(e.to_string()))
}

pub fn groups_claim(mapping: Option<&ClaimMapping>) -> &str {
    mapping.and_then(|m| m.groups.as_deref()).unwrap_or(DEFAULT_GROUPS_CLAIM)
}

/// Whether the groups must come from userinfo: Okta's ID tokens from the code flow are "thin" and
/// carry no groups claim unless the app's groups claim is configured for the ID token.
pub fn needs_userinfo(id_claims: &Claims, mapping: Option<&ClaimMapping>) -> bool {
    !id_claims.contains_key(groups_claim(mapping))
}

/// The identity in `id_claims`, with groups from `userinfo` when the ID token has none.
pub fn extract(
    id_claims: &Claims,
    userinfo: Option<&Claims>,
    mapping: Option<&ClaimMapping>,
    filter: &Regex,
) -> Result<Identity, IdentityError> {
    let email = string_claim(id_claims, "email");
    let unverified = email_unverified(id_claims);
    let user_name = match mapping.and_then(|m| m.username.as_deref()) {
        Some(claim) => string_claim(id_claims, claim).ok_or_else(|| IdentityError::NoUsername(claim.to_string()))?,
        None => match &email {
            Some(e) => e.clone(),
            None => string_claim(id_claims, FALLBACK_USERNAME_CLAIM)
                .ok_or_else(|| IdentityError::NoUsername(format!("{DEFAULT_USERNAME_CLAIM}\" or \"{FALLBACK_USERNAME_CLAIM}")))?,
        },
    };
    let username_is_email = mapping.and_then(|m| m.username.as_deref()).unwrap_or(DEFAULT_USERNAME_CLAIM) == DEFAULT_USERNAME_CLAIM;
    if unverified && username_is_email && email.is_some() {
        return Err(IdentityError::EmailNotVerified(user_name));
    }
    let claim = groups_claim(mapping);
    let source = id_claims.get(claim).or_else(|| userinfo.and_then(|u| u.get(claim)));
    let mut groups = match source {
        None | Some(Value::Null) => vec![],
        // Some providers send a single group as a plain string.
        Some(Value::String(one)) => vec![one.clone()],
        Some(Value::Array(items)) => items
            .iter()
            .map(|v| v.as_str().map(str::to_string))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| IdentityError::GroupsNotAList { claim: claim.to_string(), found: Value::Array(items.clone()).to_string() })?,
        Some(other) => return Err(IdentityError::GroupsNotAList { claim: claim.to_string(), found: other.to_string() }),
    };
    groups.retain(|g| !g.is_empty() && filter.is_match(g));
    groups.sort();
    groups.dedup();
    Ok(Identity {
        user_name,
        groups,
        display_name: string_claim(id_claims, "name"),
        // An unverified address is not recorded on the User either.
        email: email.filter(|_| !unverified),
    })
}

/// Whether the provider says the `email` claim is unverified. Some providers (older Cognito
/// pools among them) send the boolean as a string.
fn email_unverified(claims: &Claims) -> bool {
    match claims.get("email_verified") {
        Some(Value::Bool(b)) => !b,
        Some(Value::String(s)) => s.eq_ignore_ascii_case("false"),
        _ => false,
    }
}

fn string_claim(claims: &Claims, name: &str) -> Option<String> {
    claims.get(name).and_then(Value::as_str).map(str::trim).filter(|s| !s.is_empty()).map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn claims(v: Value) -> Claims {
        v.as_object().unwrap().clone()
    }

    fn mapping(username: Option<&str>, groups: Option<&str>) -> ClaimMapping {
        ClaimMapping { username: username.map(Into::into), groups: groups.map(Into::into) }
    }

    #[test]
    fn email_then_preferred_username() {
        let all = groups_filter(None).unwrap();
        let id = extract(&claims(json!({"sub": "00u1", "email": "alice@example.com", "preferred_username": "alice"})), None, None, &all)
            .unwrap();
        assert_eq!(id.user_name, "alice@example.com");
        let id = extract(&claims(json!({"sub": "00u1", "preferred_username": "alice"})), None, None, &all).unwrap();
        assert_eq!(id.user_name, "alice");
        let err = extract(&claims(json!({"sub": "00u1"})), None, None, &all).unwrap_err();
        assert!(err.to_string().contains("email") && err.to_string().contains("preferred_username"), "{err}");
    }

    #[test]
    fn an_unverified_email_is_not_a_username() {
        let all = groups_filter(None).unwrap();
        for flag in [json!(false), json!("false"), json!("FALSE")] {
            let c = claims(json!({"sub": "00u1", "email": "kate@x", "email_verified": flag, "preferred_username": "kate@x"}));
            assert_eq!(extract(&c, None, None, &all), Err(IdentityError::EmailNotVerified("kate@x".into())), "{flag}");
            // Naming `email` explicitly changes nothing.
            assert_eq!(extract(&c, None, Some(&mapping(Some("email"), None)), &all), Err(IdentityError::EmailNotVerified("kate@x".into())));
        }
        let err = extract(&claims(json!({"email": "kate@x", "email_verified": false})), None, None, &all).unwrap_err();
        assert!(err.to_string().contains("spec.claims.username"), "{err}");
        // Verified or silent (Okta in some configurations, Entra ID): the email is the username.
        for c in [
            json!({"email": "kate@x", "email_verified": true}),
            json!({"email": "kate@x"}),
            json!({"email": "kate@x", "email_verified": "true"}),
        ] {
            let id = extract(&claims(c.clone()), None, None, &all).unwrap();
            assert_eq!((id.user_name.as_str(), id.email.as_deref()), ("kate@x", Some("kate@x")), "{c}");
        }
        // A configured claim other than email is used as configured; the unverified address is
        // not recorded.
        let upn = mapping(Some("upn"), None);
        let id = extract(&claims(json!({"upn": "kate@corp", "email": "kate@x", "email_verified": false})), None, Some(&upn), &all).unwrap();
        assert_eq!((id.user_name.as_str(), id.email), ("kate@corp", None));
        // No email at all: preferred_username, as before.
        let id = extract(&claims(json!({"preferred_username": "kate", "email_verified": false})), None, None, &all).unwrap();
        assert_eq!(id.user_name, "kate");
    }

    #[test]
    fn configured_username_claim_has_no_fallback() {
        let all = groups_filter(None).unwrap();
        let m = mapping(Some("upn"), None);
        let id = extract(&claims(json!({"upn": "alice@corp.example", "email": "a@x"})), None, Some(&m), &all).unwrap();
        assert_eq!(id.user_name, "alice@corp.example");
        assert_eq!(extract(&claims(json!({"email": "a@x"})), None, Some(&m), &all), Err(IdentityError::NoUsername("upn".into())));
    }

    #[test]
    fn groups_from_the_id_token_or_else_userinfo() {
        let all = groups_filter(None).unwrap();
        let thin = claims(json!({"email": "a@x"}));
        assert!(needs_userinfo(&thin, None));
        let info = claims(json!({"sub": "00u1", "groups": ["engineering", "admins", "engineering"]}));
        assert_eq!(extract(&thin, Some(&info), None, &all).unwrap().groups, vec!["admins", "engineering"]);
        let fat = claims(json!({"email": "a@x", "groups": ["ops"]}));
        assert!(!needs_userinfo(&fat, None));
        assert_eq!(extract(&fat, Some(&info), None, &all).unwrap().groups, vec!["ops"]);
        let custom = mapping(None, Some("roles"));
        assert_eq!(extract(&claims(json!({"email": "a@x", "roles": "admin"})), None, Some(&custom), &all).unwrap().groups, vec!["admin"]);
        assert_eq!(extract(&thin, None, None, &all).unwrap().groups, Vec::<String>::new());
    }

    #[test]
    fn groups_must_be_strings() {
        let all = groups_filter(None).unwrap();
        let err = extract(&claims(json!({"email": "a@x", "groups": [1, 2]})), None, None, &all).unwrap_err();
        assert!(matches!(err, IdentityError::GroupsNotAList { .. }));
        assert!(extract(&claims(json!({"email": "a@x", "groups": {"a": 1}})), None, None, &all).is_err());
    }

    #[test]
    fn filter_matches_whole_names() {
        let eng = groups_filter(Some("eng.*|admins")).unwrap();
        let c = claims(json!({"email": "a@x", "groups": ["engineering", "platform-eng", "admins", "admins-readonly"]}));
        assert_eq!(extract(&c, None, None, &eng).unwrap().groups, vec!["admins", "engineering"]);
        assert!(matches!(groups_filter(Some("(")), Err(IdentityError::BadFilter(_))));
    }
}
