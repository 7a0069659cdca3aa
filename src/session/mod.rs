//! Login sessions: what a session records and when it ends. The rules here are pure; `store`
//! reads and writes Sessions, `refresh` the Secrets with their refresh tokens, `legacy` moves
//! sessions of earlier versions over.
//!
//! `check` is the one decision whether a token still opens its session; `cache` the server's
//! compact watch cache of Sessions, which token minting and the authorization webhook read.
//!
//! A session is a `Session` (infrahq.com/v1alpha1) named by its id in the operator's namespace,
//! owned by its User (so deleting the user, or its IdentityProvider, deletes it). It holds the
//! SHA-256 of the token, never the token. The provider's refresh token, when one was granted, is
//! in the Secret `infra-session-<id>` owned by the Session: the controller writes and reads it,
//! the internet-facing server never can (it has no access to Secrets by name pattern or type,
//! see README "Permissions").

pub mod cache;
pub mod check;
pub mod legacy;
pub mod refresh;
pub mod store;

use std::time::Duration;

use crate::oidc::ProviderBinding;
use k8s_openapi::jiff::{SignedDuration, Timestamp};

pub use crate::api::SessionRecord;

pub use store::{SessionError, SessionStore};

/// Type of the Secret that holds a session's refresh token (earlier versions kept the whole
/// session in a Secret of this type).
pub const SECRET_TYPE: &str = "infrahq.com/session";
pub const NAME_PREFIX: &str = "infra-session-";
/// Data key of the refresh token in a session's Secret.
pub const REFRESH_TOKEN_KEY: &str = "refreshToken";

/// The Secret with the refresh token of session `id`.
pub fn secret_name(id: &str) -> String {
    format!("{NAME_PREFIX}{id}")
}

impl SessionRecord {
    /// Whether the provider now resolves to another issuer or token endpoint than the one that
    /// started the session: then the session must end, since its refresh token belongs to the old
    /// issuer and must never be sent to the new one. A provider that resolves to nothing right now
    /// (discovery failing) changes nothing. A session from before the binding counts as changed,
    /// since where its token came from cannot be known.
    pub fn provider_changed(&self, issuer: Option<&str>, token_endpoint: Option<&str>) -> bool {
        let moved = |recorded: &Option<String>, now: Option<&str>| now.is_some_and(|now| recorded.as_deref() != Some(now));
        moved(&self.issuer, issuer) || moved(&self.token_endpoint, token_endpoint)
    }
}

/// Lifetimes, from the operator's flags.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    pub lifetime: Duration,
    pub idle_timeout: Duration,
    pub recheck_interval: Duration,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Valid,
    /// Past its absolute lifetime.
    Expired,
    /// Not used for longer than the idle timeout.
    Idle,
}

impl Verdict {
    pub fn describe(self) -> &'static str {
        match self {
            Verdict::Valid => "the session is valid",
            Verdict::Expired => "the session has expired",
            Verdict::Idle => "the session ended after a period of inactivity",
        }
    }
}

fn span(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(span(d)).unwrap_or(Timestamp::MAX)
}

impl Policy {
    pub fn new_record(&self, user: &str, user_object: &str, provider: &str, binding: &ProviderBinding, now: Timestamp) -> SessionRecord {
        SessionRecord {
            user: user.to_string(),
            user_object: user_object.to_string(),
            provider: provider.to_string(),
            created_at: now,
            expires_at: add(now, self.lifetime),
            checked_at: Some(now),
            issuer: Some(binding.issuer.clone()),
            token_endpoint: Some(binding.token_endpoint.clone()),
        }
    }

    /// `last_seen` is when the session was last used (its creation if never).
    pub fn evaluate(&self, record: &SessionRecord, last_seen: Timestamp, now: Timestamp) -> Verdict {
        if now >= record.expires_at {
            Verdict::Expired
        } else if now >= self.idle_deadline(last_seen) {
            Verdict::Idle
        } else {
            Verdict::Valid
        }
    }

    pub fn idle_deadline(&self, last_seen: Timestamp) -> Timestamp {
        add(last_seen, self.idle_timeout)
    }

    /// Whether a use at `now` should move `last_seen` forward. Writing on every request would turn
    /// reads into writes; a fraction of the idle timeout (at most a minute) is precise enough.
    pub fn should_touch(&self, last_seen: Timestamp, now: Timestamp) -> bool {
        let step = (self.idle_timeout / 20).min(Duration::from_secs(60));
        now >= add(last_seen, step)
    }

    /// When the provider should next confirm the session.
    pub fn next_check(&self, record: &SessionRecord) -> Timestamp {
        add(record.checked_at.unwrap_or(record.created_at), self.recheck_interval)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            lifetime: Duration::from_secs(12 * 3600),
            idle_timeout: Duration::from_secs(2 * 3600),
            recheck_interval: Duration::from_secs(3600),
        }
    }

    fn okta() -> ProviderBinding {
        ProviderBinding { issuer: "https://example.okta.com".into(), token_endpoint: "https://example.okta.com/oauth2/v1/token".into() }
    }

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn lifetime_and_idle_timeout() {
        let p = policy();
        let r = p.new_record("alice@example.com", "u-1", "okta", &okta(), at(0));
        assert_eq!(r.expires_at, at(12 * 3600));
        assert_eq!(p.evaluate(&r, at(0), at(60)), Verdict::Valid);
        assert_eq!(p.evaluate(&r, at(0), at(2 * 3600)), Verdict::Idle);
        assert_eq!(p.evaluate(&r, at(11 * 3600), at(12 * 3600 - 1)), Verdict::Valid);
        assert_eq!(p.evaluate(&r, at(11 * 3600), at(12 * 3600)), Verdict::Expired);
    }

    #[test]
    fn touches_at_most_once_a_minute() {
        let p = policy();
        assert!(!p.should_touch(at(0), at(59)));
        assert!(p.should_touch(at(0), at(60)));
        let short = Policy { idle_timeout: Duration::from_secs(20), ..p };
        assert!(short.should_touch(at(0), at(1)));
    }

    #[test]
    fn rechecks_follow_the_last_check() {
        let p = policy();
        let mut r = p.new_record("a", "u", "okta", &okta(), at(0));
        assert_eq!(p.next_check(&r), at(3600));
        r.checked_at = Some(at(5000));
        assert_eq!(p.next_check(&r), at(8600));
    }

    #[test]
    fn records_round_trip_as_json() {
        let r = policy().new_record("alice@example.com", "u-1", "okta", &okta(), at(0));
        let text = serde_json::to_string(&r).unwrap();
        assert!(text.contains("\"userObject\":\"u-1\""), "{text}");
        assert_eq!(serde_json::from_str::<SessionRecord>(&text).unwrap(), r);
    }

    #[test]
    fn a_session_ends_when_its_provider_moves() {
        let r = policy().new_record("a", "u", "okta", &okta(), at(0));
        let (issuer, token) = (okta().issuer, okta().token_endpoint);
        assert!(!r.provider_changed(Some(&issuer), Some(&token)));
        assert!(!r.provider_changed(None, None), "a provider failing discovery ends nothing");
        assert!(r.provider_changed(Some("https://evil.example"), Some(&token)));
        assert!(r.provider_changed(Some(&issuer), Some("https://evil.example/token")));
        let old = SessionRecord { issuer: None, token_endpoint: None, ..r };
        assert!(old.provider_changed(Some(&issuer), Some(&token)), "unbound sessions from earlier versions end");
    }
}
