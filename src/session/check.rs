//! Whether a presented session token still opens its session: the one decision behind every use
//! of a session, whether its facts come from the server's watch caches (token minting) or were
//! just read from the API server (whoami, logout, the dashboard). Pure: the caller reads the
//! facts, and acts on the answer (ends the session, moves its last-seen time).

use k8s_openapi::jiff::Timestamp;

use super::store::Session;
use super::{Policy, SessionRecord, Verdict};

/// What the session's IdentityProvider resolves to now.
#[derive(Clone, Copy, Debug)]
pub struct ProviderFacts<'a> {
    pub issuer: Option<&'a str>,
    pub token_endpoint: Option<&'a str>,
}

/// The session's User now.
#[derive(Clone, Copy, Debug)]
pub struct UserFacts<'a> {
    pub uid: &'a str,
    pub active: bool,
}

/// Everything the decision looks at. `None` for the provider or the user: it no longer exists.
#[derive(Clone, Copy, Debug)]
pub struct Facts<'a> {
    pub session: &'a Session,
    /// SHA-256 of the session's token, as stored.
    pub token_hash: &'a [u8; 32],
    /// UID of the User the session was started for (the Session's owner), when recorded.
    pub owner_uid: Option<&'a str>,
    pub provider: Option<ProviderFacts<'a>>,
    pub user: Option<UserFacts<'a>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// The session is good; `touch`: its last-seen time should move to now.
    Valid { touch: bool },
    /// The token opens no session (wrong secret): nothing to end.
    Unknown,
    /// The session is over and must be deleted.
    Ended(Ending),
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ending {
    /// Past its lifetime or idle for too long.
    Lapsed(Verdict),
    ProviderGone,
    /// The provider now resolves to another issuer or token endpoint.
    ProviderChanged,
    UserGone,
    /// A User of the same name exists, but not the one the session was started for.
    UserReplaced,
    UserInactive,
}

impl Ending {
    /// The `reason` label of `infra_sessions_ended_total`.
    pub fn reason(self) -> &'static str {
        match self {
            Ending::Lapsed(Verdict::Idle) => "idle",
            Ending::Lapsed(_) => "expired",
            Ending::ProviderGone => "provider_gone",
            Ending::ProviderChanged => "provider_changed",
            Ending::UserGone | Ending::UserReplaced => "user_gone",
            Ending::UserInactive => "user_inactive",
        }
    }

    /// What to tell the person.
    pub fn message(self, r: &SessionRecord) -> String {
        match self {
            Ending::Lapsed(v) => v.describe().to_string(),
            Ending::ProviderGone => format!("identity provider {:?} was removed; the session has ended", r.provider),
            Ending::ProviderChanged => format!(
                "identity provider {:?} now points at another issuer or token endpoint; the session has ended, log in again",
                r.provider
            ),
            Ending::UserGone | Ending::UserReplaced => {
                format!("user {} no longer exists in {:?}; the session has ended", r.user, r.provider)
            }
            Ending::UserInactive => format!("{} was deactivated in {:?}; the session has ended", r.user, r.provider),
        }
    }
}

/// The decision for token `presented` on the session `facts` describe, at `now`. The token is
/// compared with the stored hash in constant time first, so nothing about the session is
/// revealed to a wrong token.
pub fn check(policy: &Policy, presented: &str, facts: &Facts<'_>, now: Timestamp) -> Check {
    if !crate::keys::verify_hash_bytes(presented, facts.token_hash) {
        return Check::Unknown;
    }
    let s = facts.session;
    let verdict = policy.evaluate(&s.record, s.last_seen, now);
    if verdict != Verdict::Valid {
        return Check::Ended(Ending::Lapsed(verdict));
    }
    let Some(provider) = facts.provider else { return Check::Ended(Ending::ProviderGone) };
    if s.record.provider_changed(provider.issuer, provider.token_endpoint) {
        return Check::Ended(Ending::ProviderChanged);
    }
    let Some(user) = facts.user else { return Check::Ended(Ending::UserGone) };
    if facts.owner_uid.is_some_and(|owner| owner != user.uid) {
        return Check::Ended(Ending::UserReplaced);
    }
    if !user.active {
        return Check::Ended(Ending::UserInactive);
    }
    Check::Valid { touch: policy.should_touch(s.last_seen, now) }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::oidc::ProviderBinding;

    const TOKEN: &str = "ist_abcdefghijkl_secret";

    fn policy() -> Policy {
        Policy {
            lifetime: Duration::from_secs(12 * 3600),
            idle_timeout: Duration::from_secs(2 * 3600),
            recheck_interval: Duration::from_secs(3600),
        }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    fn session() -> Session {
        let binding = ProviderBinding { issuer: "https://okta.example".into(), token_endpoint: "https://okta.example/token".into() };
        Session { id: "abcdefghijkl".into(), record: policy().new_record("kate@x", "u-1", "okta", &binding, at(0)), last_seen: at(0) }
    }

    const OKTA: ProviderFacts<'static> =
        ProviderFacts { issuer: Some("https://okta.example"), token_endpoint: Some("https://okta.example/token") };
    const KATE: UserFacts<'static> = UserFacts { uid: "uid-1", active: true };

    fn decide(change: impl FnOnce(&mut Facts<'_>), presented: &str, now: Timestamp) -> Check {
        let (session, hash) = (session(), crate::keys::hash(TOKEN));
        let mut facts = Facts { session: &session, token_hash: &hash, owner_uid: Some("uid-1"), provider: Some(OKTA), user: Some(KATE) };
        change(&mut facts);
        check(&policy(), presented, &facts, now)
    }

    #[test]
    fn a_valid_session_touches_at_most_once_a_minute() {
        assert_eq!(decide(|_| {}, TOKEN, at(30)), Check::Valid { touch: false });
        assert_eq!(decide(|_| {}, TOKEN, at(61)), Check::Valid { touch: true });
        assert_eq!(decide(|f| f.owner_uid = None, TOKEN, at(30)), Check::Valid { touch: false }, "sessions without an owner uid");
    }

    #[test]
    fn a_wrong_token_learns_nothing_about_the_session() {
        // Even for a session that has ended: a wrong secret is just unknown, and ends nothing.
        assert_eq!(decide(|f| f.user = None, "ist_abcdefghijkl_secreT", at(30)), Check::Unknown);
        assert_eq!(decide(|_| {}, "ist_abcdefghijkl_secreT", at(99 * 3600)), Check::Unknown);
    }

    #[test]
    fn every_reason_to_end_a_session() {
        let ended = |e| Check::Ended(e);
        assert_eq!(decide(|_| {}, TOKEN, at(2 * 3600)), ended(Ending::Lapsed(Verdict::Idle)));
        // Used an hour before its end, so not idle: over at its lifetime.
        let (used, hash) = (Session { last_seen: at(11 * 3600), ..session() }, crate::keys::hash(TOKEN));
        let facts = Facts { session: &used, token_hash: &hash, owner_uid: None, provider: Some(OKTA), user: Some(KATE) };
        assert_eq!(check(&policy(), TOKEN, &facts, at(12 * 3600)), ended(Ending::Lapsed(Verdict::Expired)));
        assert_eq!(decide(|f| f.provider = None, TOKEN, at(30)), ended(Ending::ProviderGone));
        let moved = ProviderFacts { issuer: Some("https://evil.example"), ..OKTA };
        assert_eq!(decide(|f| f.provider = Some(moved), TOKEN, at(30)), ended(Ending::ProviderChanged));
        let failing = ProviderFacts { issuer: None, token_endpoint: None };
        assert_eq!(decide(|f| f.provider = Some(failing), TOKEN, at(30)), Check::Valid { touch: false }, "discovery failing ends nothing");
        assert_eq!(decide(|f| f.user = None, TOKEN, at(30)), ended(Ending::UserGone));
        assert_eq!(decide(|f| f.user = Some(UserFacts { uid: "uid-2", active: true }), TOKEN, at(30)), ended(Ending::UserReplaced));
        assert_eq!(decide(|f| f.user = Some(UserFacts { active: false, ..KATE }), TOKEN, at(30)), ended(Ending::UserInactive));
        // The session's own end is reported before anything else.
        assert_eq!(decide(|f| f.user = None, TOKEN, at(2 * 3600)), ended(Ending::Lapsed(Verdict::Idle)));
        let r = session().record;
        assert_eq!(Ending::UserReplaced.reason(), "user_gone");
        assert!(Ending::UserInactive.message(&r).contains("kate@x was deactivated"));
        assert_eq!(Ending::Lapsed(Verdict::Idle).message(&r), Verdict::Idle.describe());
    }
}
