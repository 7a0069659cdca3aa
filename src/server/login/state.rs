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

    /// The CSRF token of session `session_id`: an HMAC under the shared key, so every replica
    /// derives the same token and none is stored (see [`super::csrf`]).
    pub fn csrf_token(&self, session_id: &str) -> String {
        B64.encode(self.mac("csrf", session_id))
    }

    /// Whether `presented` is the CSRF token of session `session_id` (in constant time).
    pub fn csrf_token_matches(&self, session_id: &str, presented: &str) -> bool {
        let expected = self.csrf_token(session_id);
        bool::from(subtle::ConstantTimeEq::ct_eq(presented.as_bytes(), expected.as_bytes()))
    }

    /// A new login for `provider`: the cookie value to set and the parameters to send.
    /// `return_to` is the path (already checked to be this server's, see `return_path`) to land
    /// on afterwards.
    pub fn issue(&self, login_id: &str, provider: &str, return_to: Option<&str>, now_secs: i64) -> (String, LoginParams) {
        let mut body = format!("{login_id}.{}.{}", B64.encode(provider), now_secs + LOGIN_TTL_SECS);
        if let Some(path) = return_to {
            body = format!("{body}.{}", B64.encode(path));
        }
        let cookie = format!("{body}.{}", B64.encode(self.mac("cookie", &body)));
        (cookie, self.params(&body))
    }

    /// Checks a callback: the cookie must be ours and unexpired, and `state` must be the one
    /// derived from it. Returns the provider, the parameters to redeem the code with and where
    /// to land.
    pub fn open(&self, cookie: Option<&str>, state: &str, now_secs: i64) -> Result<Opened, StateError> {
        let cookie = cookie.ok_or(StateError::Missing)?;
        let (body, mac) = cookie.rsplit_once('.').ok_or(StateError::Invalid)?;
        let mac = B64.decode(mac).map_err(|_| StateError::Invalid)?;
        let expected = self.mac("cookie", body);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(mac.as_slice(), expected.as_slice())) {
            return Err(StateError::Invalid);
        }
        let text = |b64: &str| B64.decode(b64).ok().and_then(|p| String::from_utf8(p).ok()).ok_or(StateError::Invalid);
        let mut parts = body.split('.');
        // Cookies issued before return paths existed have three parts.
        let (_id, provider, expires, return_to) = match (parts.next(), parts.next(), parts.next(), parts.next(), parts.next()) {
            (Some(id), Some(p), Some(e), r, None) => (id, p, e, r),
            _ => return Err(StateError::Invalid),
        };
        let provider = text(provider)?;
        let return_to = return_to.map(text).transpose()?;
        let expires: i64 = expires.parse().map_err(|_| StateError::Invalid)?;
        if now_secs >= expires {
            return Err(StateError::Expired);
        }
        let params = self.params(body);
        if !bool::from(subtle::ConstantTimeEq::ct_eq(state.as_bytes(), params.state.as_bytes())) {
            return Err(StateError::StateMismatch);
        }
        Ok(Opened { provider, params, return_to })
    }

    /// A keyed digest of `data` for purpose `label`: what a value nobody may recover or forge
    /// without the key is stored as (a device login's user code).
    pub fn derive(&self, label: &str, data: &str) -> [u8; 32] {
        self.mac(label, data)
    }
}

/// An opened login cookie.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Opened {
    pub provider: String,
    pub params: LoginParams,
    /// The path to land on after the login (a page that sent the person to sign in).
    pub return_to: Option<String>,
}

/// `raw` if it is a path on this server below `base` (the external URL's path, ending in `/`)
/// that is safe to redirect to: no scheme or host (`//evil.example`, `/\\evil.example`), no
/// backslashes, control characters or spaces, at most 1024 bytes. Anything else is `None`, so a
/// link to `/login?return=...` can never send the browser elsewhere (no open redirect). Pure.
pub fn return_path(raw: &str, base: &str) -> Option<String> {
    let ok_chars = raw.bytes().all(|b| b.is_ascii_graphic() && b != b'\\');
    let rest = raw.strip_prefix(base)?;
    if !ok_chars || raw.len() > 1024 || !raw.starts_with('/') || raw.starts_with("//") || rest.starts_with('/') {
        return None;
    }
    // The browser resolves it against this server's origin: it must stay there.
    let origin = url::Url::parse("http://infra.invalid/").expect("static URL");
    let joined = origin.join(raw).ok()?;
    // Dot segments resolved, as the browser will: `/a/..//evil.example` is `//evil.example`.
    let path = &joined[url::Position::BeforePath..];
    let stays = joined.origin() == origin.origin() && joined.path().starts_with(base) && !path.starts_with("//");
    stays.then(|| path.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> StateKey {
        StateKey::from_bytes(&[b; KEY_LEN]).unwrap()
    }

    #[test]
    fn a_login_opens_with_its_own_state() {
        let (cookie, params) = key(1).issue("abc", "okta", None, 1000);
        let opened = key(1).open(Some(&cookie), &params.state, 1001).unwrap();
        assert_eq!(opened.provider, "okta");
        assert_eq!(opened.params, params);
        assert_eq!(opened.return_to, None);
        assert_eq!(params.pkce_verifier.len(), 43);
        assert_ne!(params.state, params.nonce);
    }

    #[test]
    fn logins_differ() {
        let (_, a) = key(1).issue("abc", "okta", None, 1000);
        let (_, b) = key(1).issue("abd", "okta", None, 1000);
        assert_ne!(a, b);
    }

    #[test]
    fn csrf_tokens_belong_to_one_session_and_one_key() {
        let t = key(1).csrf_token("s1");
        assert_eq!(t.len(), 43);
        assert!(key(1).csrf_token_matches("s1", &t));
        assert!(!key(1).csrf_token_matches("s2", &t), "another session's token");
        assert!(!key(2).csrf_token_matches("s1", &t), "another key");
        assert!(!key(1).csrf_token_matches("s1", ""));
        assert!(!key(1).csrf_token_matches("s1", &t[..42]));
        // Not the login state's other derivations.
        let (_, params) = key(1).issue("s1", "okta", None, 0);
        assert_ne!(t, params.state);
    }

    #[test]
    fn refusals() {
        let (cookie, params) = key(1).issue("abc", "okta", None, 1000);
        assert_eq!(key(1).open(None, &params.state, 1001), Err(StateError::Missing));
        assert_eq!(key(1).open(Some(&cookie), "other", 1001), Err(StateError::StateMismatch));
        assert_eq!(key(1).open(Some(&cookie), &params.state, 1000 + LOGIN_TTL_SECS), Err(StateError::Expired));
        assert_eq!(key(2).open(Some(&cookie), &params.state, 1001), Err(StateError::Invalid));
        // Another provider in the cookie breaks the MAC.
        let forged = cookie.replacen(&B64.encode("okta"), &B64.encode("evil"), 1);
        assert_eq!(key(1).open(Some(&forged), &params.state, 1001), Err(StateError::Invalid));
        assert_eq!(key(1).open(Some("garbage"), &params.state, 1001), Err(StateError::Invalid));
    }

    #[test]
    fn a_login_carries_its_return_path_under_the_mac() {
        let (cookie, params) = key(1).issue("abc", "okta", Some("/device?code=BCDF-GHJK"), 1000);
        let opened = key(1).open(Some(&cookie), &params.state, 1001).unwrap();
        assert_eq!(opened.return_to.as_deref(), Some("/device?code=BCDF-GHJK"));
        let forged = cookie.replacen(&B64.encode("/device?code=BCDF-GHJK"), &B64.encode("//evil.example"), 1);
        assert_eq!(key(1).open(Some(&forged), &params.state, 1001), Err(StateError::Invalid));
        // Another return path is another login: its state differs.
        let (_, other) = key(1).issue("abc", "okta", Some("/"), 1000);
        assert_ne!(other.state, params.state);
    }

    #[test]
    fn only_same_origin_paths_below_the_base_are_return_paths() {
        assert_eq!(return_path("/device?code=BCDF-GHJK", "/").as_deref(), Some("/device?code=BCDF-GHJK"));
        assert_eq!(return_path("/", "/").as_deref(), Some("/"));
        assert_eq!(return_path("/infra/device", "/infra/").as_deref(), Some("/infra/device"));
        for bad in [
            "https://evil.example/",
            "//evil.example/",
            "/\\evil.example/",
            "/\\/evil.example",
            "\\\\evil.example",
            "evil.example",
            "javascript:alert(1)",
            "/device\nLocation: x",
            "/a b",
            "/device/../..//evil.example",
            "",
        ] {
            assert_eq!(return_path(bad, "/"), None, "{bad:?}");
        }
        assert_eq!(return_path("/device", "/infra/"), None, "outside the base path");
        assert_eq!(return_path("/infra//evil.example", "/infra/"), None);
        assert_eq!(return_path(&format!("/{}", "a".repeat(1100)), "/"), None);
    }

    #[test]
    fn derivations_differ_by_purpose_and_key() {
        assert_ne!(key(1).derive("device-user-code", "BCDF-GHJK"), key(1).derive("csrf", "BCDF-GHJK"));
        assert_ne!(key(1).derive("device-user-code", "BCDF-GHJK"), key(2).derive("device-user-code", "BCDF-GHJK"));
        assert_eq!(key(1).derive("device-user-code", "BCDF-GHJK"), key(1).derive("device-user-code", "BCDF-GHJK"));
    }
}
