//! SCIM bearer keys: generation, parsing and verification. Pure, apart from the OS random source.
//!
//! A key looks like `isk_<id>_<secret>`: the prefix makes leaked keys recognisable to secret
//! scanners, the id (12 lowercase alphanumerics) is not secret and names the key in status, logs
//! and labels, and the secret is 43 alphanumerics drawn from the OS CSPRNG (256 bits).

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

/// SCIM bearer keys.
pub const SCIM_KEY_PREFIX: &str = "isk_";
/// Login session tokens (`infra login`, the dashboard cookie). Same shape, another prefix, so a
/// session token is never mistaken for a SCIM key or the other way round.
pub const SESSION_PREFIX: &str = "ist_";
const ID_LEN: usize = 12;
const SECRET_LEN: usize = 43;
const LOWER_ALNUM: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";

/// A freshly generated key. `Debug` is redacted so that it cannot end up in logs by accident.
pub struct GeneratedKey {
    pub id: String,
    pub token: String,
}

impl std::fmt::Debug for GeneratedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GeneratedKey").field("id", &self.id).field("token", &"<redacted>").finish()
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RandomError {
    #[error("the operating system's random number generator failed: {0}")]
    Os(String),
}

/// Draws `len` characters uniformly from `alphabet` (rejection sampling, so no modulo bias).
pub fn random_string(alphabet: &[u8], len: usize) -> Result<String, RandomError> {
    let limit = 256 - (256 % alphabet.len());
    let mut out = String::with_capacity(len);
    let mut buf = [0u8; 64];
    while out.len() < len {
        getrandom::fill(&mut buf).map_err(|e| RandomError::Os(e.to_string()))?;
        for &b in &buf {
            if (b as usize) < limit && out.len() < len {
                out.push(alphabet[b as usize % alphabet.len()] as char);
            }
        }
    }
    Ok(out)
}

/// A short random suffix for object names and replica identities (not a secret).
pub fn name_suffix(len: usize) -> Result<String, RandomError> {
    random_string(LOWER_ALNUM, len)
}

pub fn generate() -> Result<GeneratedKey, RandomError> {
    generate_with(SCIM_KEY_PREFIX)
}

pub fn generate_with(prefix: &str) -> Result<GeneratedKey, RandomError> {
    let id = random_string(LOWER_ALNUM, ID_LEN)?;
    let secret = random_string(ALNUM, SECRET_LEN)?;
    let token = format!("{prefix}{id}_{secret}");
    Ok(GeneratedKey { id, token })
}

/// The id of a presented token, if it has the shape of one of our keys. Says nothing about
/// whether the token is valid.
pub fn parse_id(token: &str) -> Option<&str> {
    parse_id_with(SCIM_KEY_PREFIX, token)
}

/// Whether `s` has the shape of a key id (the non-secret part of a key or session token).
pub fn is_id(s: &str) -> bool {
    s.len() == ID_LEN && s.bytes().all(|b| LOWER_ALNUM.contains(&b))
}

pub fn parse_id_with<'a>(prefix: &str, token: &'a str) -> Option<&'a str> {
    let rest = token.strip_prefix(prefix)?;
    let (id, secret) = rest.split_once('_')?;
    let well_formed = id.len() == ID_LEN
        && secret.len() == SECRET_LEN
        && id.bytes().all(|b| LOWER_ALNUM.contains(&b))
        && secret.bytes().all(|b| ALNUM.contains(&b));
    well_formed.then_some(id)
}

pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares a presented token with the stored one in constant time. Hashing first makes the
/// comparison length-independent as well.
pub fn verify(presented: &str, stored: &str) -> bool {
    hash(presented).ct_eq(&hash(stored)).into()
}

/// The SHA-256 of a token in lower-case hex: what is stored instead of the token (session tokens
/// and SCIM keys alike).
pub fn hash_hex(token: &str) -> String {
    hex(&hash(token))
}

/// Lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Compares a presented token with a stored [`hash_hex`] in constant time.
pub fn verify_hash(presented: &str, stored_hex: &str) -> bool {
    let presented = hash_hex(presented);
    presented.len() == stored_hex.len() && bool::from(presented.as_bytes().ct_eq(stored_hex.as_bytes()))
}

/// A stored [`hash_hex`] as bytes, for keeping many of them compactly; `None` if it is not one.
pub fn unhex_hash(stored_hex: &str) -> Option<[u8; 32]> {
    let bytes = stored_hex.as_bytes();
    if bytes.len() != 64 {
        return None;
    }
    let digit = |b: u8| (b as char).to_digit(16).filter(|_| !b.is_ascii_uppercase());
    let mut out = [0u8; 32];
    for (i, pair) in bytes.chunks(2).enumerate() {
        out[i] = (digit(pair[0])? * 16 + digit(pair[1])?) as u8;
    }
    Some(out)
}

/// Compares a presented token with a stored hash (as bytes) in constant time.
pub fn verify_hash_bytes(presented: &str, stored: &[u8; 32]) -> bool {
    hash(presented).ct_eq(stored).into()
}

/// The token from an `Authorization` header value: `Bearer <token>` with the scheme matched
/// case-insensitively (RFC 7235 §2.1) and the token in RFC 6750's `b64token` shape, so nothing
/// else (a tab or a control character inside it, say) is ever taken for a token.
pub fn bearer_token(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && is_b64token(token)).then_some(token)
}

/// RFC 6750 §2.1: `b64token = 1*( ALPHA / DIGIT / "-" / "." / "_" / "~" / "+" / "/" ) *"="`.
fn is_b64token(token: &str) -> bool {
    let body = token.trim_end_matches('=');
    !body.is_empty() && body.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~+/".contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stored_hashes_as_bytes() {
        let stored = hash_hex("ist_abc_secret");
        let bytes = unhex_hash(&stored).unwrap();
        assert_eq!(hex(&bytes), stored);
        assert!(verify_hash_bytes("ist_abc_secret", &bytes));
        assert!(!verify_hash_bytes("ist_abc_secreT", &bytes));
        assert_eq!(unhex_hash(&stored.to_uppercase()), None, "hash_hex is lower-case");
        assert_eq!(unhex_hash(&stored[1..]), None);
        assert_eq!(unhex_hash(&format!("{}zz", &stored[2..])), None);
    }

    #[test]
    fn generated_keys_parse_and_verify() {
        let key = generate().unwrap();
        assert_eq!(parse_id(&key.token), Some(key.id.as_str()));
        assert!(verify(&key.token, &key.token));
        assert!(!format!("{key:?}").contains(&key.token));
    }

    #[test]
    fn session_tokens_are_not_scim_keys() {
        let session = generate_with(SESSION_PREFIX).unwrap();
        assert_eq!(parse_id_with(SESSION_PREFIX, &session.token), Some(session.id.as_str()));
        assert!(is_id(&session.id));
        assert!(!is_id("../secret") && !is_id(&session.token));
        assert_eq!(parse_id(&session.token), None);
        assert_eq!(parse_id_with(SESSION_PREFIX, &generate().unwrap().token), None);
    }

    #[test]
    fn keys_are_unique() {
        let a = generate().unwrap();
        let b = generate().unwrap();
        assert_ne!(a.id, b.id);
        assert_ne!(a.token, b.token);
    }

    #[test]
    fn tampered_keys_do_not_verify() {
        let key = generate().unwrap();
        let mut tampered = key.token.clone();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'a' { 'b' } else { 'a' });
        assert!(!verify(&tampered, &key.token));
        assert!(!verify(&key.token[..key.token.len() - 1], &key.token));
    }

    #[test]
    fn malformed_tokens_have_no_id() {
        for bad in ["", "isk_", "isk_abc_def", "Bearer x", "isk_ABCDEFGHIJKL_aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"] {
            assert_eq!(parse_id(bad), None, "{bad}");
        }
    }

    #[test]
    fn random_strings_use_only_the_alphabet() {
        let s = random_string(b"ab", 1000).unwrap();
        assert_eq!(s.len(), 1000);
        assert!(s.contains('a') && s.contains('b'));
        assert!(s.bytes().all(|b| b == b'a' || b == b'b'));
    }

    #[test]
    fn bearer_header_parsing() {
        assert_eq!(bearer_token("Bearer abc"), Some("abc"));
        assert_eq!(bearer_token("bearer abc"), Some("abc"));
        assert_eq!(bearer_token("BEARER  abc "), Some("abc"));
        assert_eq!(bearer_token("Basic abc"), None);
        assert_eq!(bearer_token("Bearer"), None);
        assert_eq!(bearer_token("Bearer "), None);
        assert_eq!(bearer_token("Bearer a b"), None);
        assert_eq!(bearer_token("Bearer abc=="), Some("abc=="));
        // Found by tests/fuzz.rs (bearer_headers_yield_only_b64tokens): anything but a space was
        // taken for a token, quotes and tabs included.
        assert_eq!(bearer_token("bEAREr \""), None);
        assert_eq!(bearer_token("Bearer a\tb"), None);
        assert_eq!(bearer_token("Bearer a\u{b}b"), None);
        assert_eq!(bearer_token("Bearer =="), None);
        assert_eq!(bearer_token("Bearer a=b"), None);
    }
}
