//! Device login (RFC 8628) without I/O: the user code people type, the device code the CLI polls
//! with, and the protocol's error codes, shared by the server and the CLI.
//!
//! The user code is 8 letters from RFC 8628 §6.1's consonant alphabet (no vowels, so no words;
//! no digits or look-alike letters), shown as `BCDF-GHJK` and accepted in any case, with or
//! without the dash and spaces: about 34.5 bits, which is why guessing it is rate limited and it
//! works for 10 minutes only. The device code is a high-entropy bearer secret like a session
//! token (`idc_<id>_<secret>`); its id names the stored authorization, so one read finds it.

use subtle::ConstantTimeEq;

use crate::keys::{self, RandomError};

/// The device authorization endpoint (RFC 8628 §3.1) and the token endpoint the CLI polls (§3.4).
pub const AUTHORIZE_PATH: &str = "/api/device/authorize";
pub const TOKEN_PATH: &str = "/api/device/token";
/// The approval page, relative to the external URL.
pub const PAGE: &str = "device";

/// RFC 8628 §6.1: "BCDFGHJKLMNPQRSTVWXZ".
pub const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
pub const USER_CODE_LEN: usize = 8;
/// The grant type of the token request (RFC 8628 §3.4).
pub const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";
/// Seconds the CLI waits between polls, and what each `slow_down` adds (RFC 8628 §3.5).
pub const POLL_INTERVAL_SECS: u64 = 5;
pub const SLOW_DOWN_STEP_SECS: u64 = 5;

const DEVICE_CODE_PREFIX: &str = "idc_";
/// Hex digits of the id (the stored authorization's name suffix).
const ID_LEN: usize = 32;
const SECRET_LEN: usize = 43;
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A new user code, already in its display form `XXXX-XXXX`.
pub fn generate_user_code() -> Result<String, RandomError> {
    keys::random_string(USER_CODE_ALPHABET, USER_CODE_LEN).map(|c| display(&c))
}

/// `BCDFGHJK` as `BCDF-GHJK`.
fn display(code: &str) -> String {
    format!("{}-{}", &code[..USER_CODE_LEN / 2], &code[USER_CODE_LEN / 2..])
}

/// What a person typed, as the canonical code (`BCDF-GHJK`), or `None` when it cannot be one:
/// letters in any case, with dashes and spaces anywhere (people copy them in odd places).
pub fn normalize_user_code(typed: &str) -> Option<String> {
    if typed.len() > 64 {
        return None;
    }
    let letters: String = typed.chars().filter(|c| !matches!(c, '-' | ' ' | '\t')).map(|c| c.to_ascii_uppercase()).collect();
    let valid = letters.len() == USER_CODE_LEN && letters.bytes().all(|b| USER_CODE_ALPHABET.contains(&b));
    valid.then(|| display(&letters))
}

/// A device code for the authorization named by `id` (hex, from the user code's keyed digest).
pub fn generate_device_code(id: &str) -> Result<String, RandomError> {
    debug_assert!(is_id(id));
    Ok(format!("{DEVICE_CODE_PREFIX}{id}_{}", keys::random_string(ALNUM, SECRET_LEN)?))
}

/// The id in a presented device code, if it has the shape of one. Says nothing about validity.
pub fn parse_device_code(code: &str) -> Option<&str> {
    let (id, secret) = code.strip_prefix(DEVICE_CODE_PREFIX)?.split_once('_')?;
    (is_id(id) && secret.len() == SECRET_LEN && secret.bytes().all(|b| ALNUM.contains(&b))).then_some(id)
}

fn is_id(id: &str) -> bool {
    id.len() == ID_LEN && id.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The id of a user code's authorization from its keyed digest (see `StateKey::derive_bytes`):
/// the first 128 bits, in hex. Without the key nobody can tell a code from its id.
pub fn id_from_digest(digest: &[u8; 32]) -> String {
    keys::hex(&digest[..ID_LEN / 2])
}

/// Name of the DeviceAuthorization with id `id`.
pub fn object_name(id: &str) -> String {
    format!("infra-device-{id}")
}

/// Compares a device code with its stored SHA-256 (hex) in constant time.
pub fn device_code_matches(presented: &str, stored_hex: &str) -> bool {
    let presented = keys::hash_hex(presented);
    presented.len() == stored_hex.len() && bool::from(presented.as_bytes().ct_eq(stored_hex.as_bytes()))
}

/// The errors of the token endpoint (RFC 8628 §3.5, RFC 6749 §5.2) the server answers and the
/// CLI acts on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// Not approved yet: poll again after the interval.
    AuthorizationPending,
    /// Polled too soon: poll again after the interval plus 5 seconds, from now on.
    SlowDown,
    /// The person pressed Deny.
    AccessDenied,
    /// Not approved within the code's lifetime.
    ExpiredToken,
    /// Not a device code this server issued, or one already used.
    InvalidGrant,
    /// The body was not a device-code token request.
    InvalidRequest,
    UnsupportedGrantType,
}

impl TokenError {
    pub const ALL: [TokenError; 7] = [
        Self::AuthorizationPending,
        Self::SlowDown,
        Self::AccessDenied,
        Self::ExpiredToken,
        Self::InvalidGrant,
        Self::InvalidRequest,
        Self::UnsupportedGrantType,
    ];

    pub fn code(self) -> &'static str {
        match self {
            Self::AuthorizationPending => "authorization_pending",
            Self::SlowDown => "slow_down",
            Self::AccessDenied => "access_denied",
            Self::ExpiredToken => "expired_token",
            Self::InvalidGrant => "invalid_grant",
            Self::InvalidRequest => "invalid_request",
            Self::UnsupportedGrantType => "unsupported_grant_type",
        }
    }

    pub fn from_code(code: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.code() == code)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_codes_have_the_display_form_and_alphabet() {
        for _ in 0..200 {
            let c = generate_user_code().unwrap();
            assert_eq!(c.len(), 9, "{c}");
            assert_eq!(&c[4..5], "-");
            assert!(c.bytes().filter(|&b| b != b'-').all(|b| USER_CODE_ALPHABET.contains(&b)), "{c}");
            assert_eq!(normalize_user_code(&c).as_deref(), Some(c.as_str()));
        }
        // No vowels, digits or look-alikes (0/O, 1/I/L are not all excluded by RFC 8628, but
        // vowels and digits are).
        for b in b"AEIOUY0123456789" {
            assert!(!USER_CODE_ALPHABET.contains(b), "{}", *b as char);
        }
    }

    #[test]
    fn typed_user_codes_are_normalised() {
        for typed in ["BCDF-GHJK", "bcdf-ghjk", "bcdfghjk", " BcDf GhJk ", "BC-DF-GH-JK", "bcdf\tghjk"] {
            assert_eq!(normalize_user_code(typed).as_deref(), Some("BCDF-GHJK"), "{typed:?}");
        }
        for bad in ["", "BCDF-GHJ", "BCDF-GHJKL", "BCDA-GHJK", "BCDF-GHJ1", "BCDF_GHJK", "ВCDF-GHJK", &"-".repeat(100)] {
            assert_eq!(normalize_user_code(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn device_codes_name_their_authorization() {
        let id = id_from_digest(&[0xab; 32]);
        assert_eq!(id, "ab".repeat(16));
        let code = generate_device_code(&id).unwrap();
        assert_eq!(parse_device_code(&code), Some(id.as_str()));
        assert_eq!(object_name(&id), format!("infra-device-{id}"));
        assert!(device_code_matches(&code, &keys::hash_hex(&code)));
        assert!(!device_code_matches(&code, &keys::hash_hex("idc_other")));
        assert!(!device_code_matches(&code, ""));
        for bad in [
            "",
            "ist_aaaaaaaaaaaa_bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb",
            &code[..code.len() - 1],
            &code.replacen("idc_", "idc_A", 1),
            &format!("{code}x"),
            &code.replace(&id, &"g".repeat(32)),
        ] {
            assert_eq!(parse_device_code(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn token_error_codes_round_trip() {
        for e in TokenError::ALL {
            assert_eq!(TokenError::from_code(e.code()), Some(e));
        }
        assert_eq!(TokenError::from_code("authorization_pending"), Some(TokenError::AuthorizationPending));
        assert_eq!(TokenError::from_code("slow_down"), Some(TokenError::SlowDown));
        assert_eq!(TokenError::from_code("server_error"), None);
    }
}
