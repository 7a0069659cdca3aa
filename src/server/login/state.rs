//! The dashboard login's state, carried by the browser in a signed cookie so that any server
//! replica can finish a login another replica started, with nothing stored server-side.
//!
//! The cookie holds a random login id, the provider and an expiry, with an HMAC-SHA256 over them
//! under a key all replicas share (kept in a Secret). The OAuth `state`, the `nonce` and the PKCE
//! verifier are derived from the cookie with the same key: only this browser, holding this cookie,
//! can complete the login, and nobody without the key can forge either side. Pure.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How long a person has to complete the login at the provider.
pub const LOGIN_TTL_SECS: i64 = 600;
pub const KEY_LEN: usize = crate::state_key::KEY_LEN;

/// The shared signing key. `Debug` is redacted.
#[derive(Clone)]
pub struct StateKey([u8; KEY_LEN]);

impl std::fmt::Debug for StateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("StateKey(<redacted>)")
    }
}

/// What the authorize request and the code exchange need. Derived, never stored.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LoginParams {
    pub state: String,
    pub nonce: String,
    pub pkce_verifier: String,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum StateError {
    #[error("the login cookie is missing: the login was started in another browser, or cookies are blocked")]
    Missing,
    #[error("the login cookie is not valid")]
    Invalid,
    #[error("the login took longer than {} minutes", LOGIN_TTL_SECS / 60)]
    Expired,
    #[error("the state parameter does not match this browser's login; the response belongs to another login")]
    StateMismatch,
}

impl StateKey {
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    fn mac(&self, label: &str, data: &str) -> [u8; 32] {
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.0).expect("HMAC takes any key length");
        mac.update(label.as_bytes());
        mac.update(b"\0");
        mac.update(data.as_bytes());
        mac.finalize().into_bytes().into()
    }

    fn params(&self, body: &str) -> LoginParams {
        LoginParams {
            state: B64.encode(self.mac("state", body)),
            nonce: B64.encode(self.mac("nonce", body)),
            // 43 characters of the unreserved set: exactly the shortest verifier RFC 7636 allows,
            // with 256 bits of entropy.
            pkce_verifier: B64.encode(self.mac("pkce", body)),
        }
    }

    /// A new login for `provider`: the cookie value to set and the parameters to send.
    pub fn issue(&self, login_id: &str, provider: &str, now_secs: i64) -> (String, LoginParams) {
        let body = format!("{login_id}.{}.{}", B64.encode(provider), now_secs + LOGIN_TTL_SECS);
        let cookie = format!("{body}.{}", B64.encode(self.mac("cookie", &body)));
        (cookie, self.params(&body))
    }

    /// Checks a callback: the cookie must be ours and unexpired, and `state` must be the one
    /// derived from it. Returns the provider and the parameters to redeem the code with.
    pub fn open(&self, cookie: Option<&str>, state: &str, now_secs: i64) -> Result<(String, LoginParams), StateError> {
        let cookie = cookie.ok_or(StateError::Missing)?;
        let (body, mac) = cookie.rsplit_once('.').ok_or(StateError::Invalid)?;
        let mac = B64.decode(mac).map_err(|_| StateError::Invalid)?;
        let expected = self.mac("cookie", body);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(mac.as_slice(), expected.as_slice())) {
            return Err(StateError::Invalid);
        }
        let mut parts = body.split('.');
        let (_id, provider, expires) = match (parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(id), Some(p), Some(e), None) => (id, p, e),
            _ => return Err(StateError::Invalid),
        };
        let provider = B64.decode(provider).ok().and_then(|p| String::from_utf8(p).ok()).ok_or(StateError::Invalid)?;
        let expires: i64 = expires.parse().map_err(|_| StateError::Invalid)?;
        if now_secs >= expires {
            return Err(StateError::Expired);
        }
        let params = self.params(body);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(state.as_bytes(), params.state.as_bytes())) {
            return Err(StateError::StateMismatch);
        }
        Ok((provider, params))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> StateKey {
        StateKey::from_bytes(&[b; KEY_LEN]).unwrap()
    }

    #[test]
    fn a_login_opens_with_its_own_state() {
        let (cookie, params) = key(1).issue("abc", "okta", 1000);
        let (provider, opened) = key(1).open(Some(&cookie), &params.state, 1001).unwrap();
        assert_eq!(provider, "okta");
        assert_eq!(opened, params);
        assert_eq!(params.pkce_verifier.len(), 43);
        assert_ne!(params.state, params.nonce);
    }

    #[test]
    fn logins_differ() {
        let (_, a) = key(1).issue("abc", "okta", 1000);
        let (_, b) = key(1).issue("abd", "okta", 1000);
        assert_ne!(a, b);
    }

    #[test]
    fn refusals() {
        let (cookie, params) = key(1).issue("abc", "okta", 1000);
        assert_eq!(key(1).open(None, &params.state, 1001), Err(StateError::Missing));
        assert_eq!(key(1).open(Some(&cookie), "other", 1001), Err(StateError::StateMismatch));
        assert_eq!(key(1).open(Some(&cookie), &params.state, 1000 + LOGIN_TTL_SECS), Err(StateError::Expired));
        assert_eq!(key(2).open(Some(&cookie), &params.state, 1001), Err(StateError::Invalid));
        // Another provider in the cookie breaks the MAC.
        let forged = cookie.replacen(&B64.encode("okta"), &B64.encode("evil"), 1);
        assert_eq!(key(1).open(Some(&forged), &params.state, 1001), Err(StateError::Invalid));
        assert_eq!(key(1).open(Some("garbage"), &params.state, 1001), Err(StateError::Invalid));
    }
}
