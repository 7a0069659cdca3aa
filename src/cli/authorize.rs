//! The secrets of one `infra login`: state, nonce and the PKCE verifier. Pure apart from the OS
//! random source.

use crate::oidc::authorize::pkce_challenge;

const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
/// 62 symbols carry 5.95 bits each: 64 of them are 381 bits, well over the 256 RFC 7636 §7.1
/// asks of a verifier (and within its 43–128 characters of the unreserved set).
const VERIFIER_LEN: usize = 64;
/// 32 alphanumerics (190 bits) for state and nonce: unguessable, and safe in any URL or claim.
const STATE_LEN: usize = 32;

/// The secrets of one login attempt. `Debug` shows none of them.
pub struct LoginSecrets {
    pub state: String,
    pub nonce: String,
    pub verifier: String,
}

impl std::fmt::Debug for LoginSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LoginSecrets { <redacted> }")
    }
}

impl LoginSecrets {
    pub fn generate() -> anyhow::Result<Self> {
        Ok(Self {
            state: crate::keys::random_string(ALNUM, STATE_LEN)?,
            nonce: crate::keys::random_string(ALNUM, STATE_LEN)?,
            verifier: crate::keys::random_string(ALNUM, VERIFIER_LEN)?,
        })
    }

    pub fn challenge(&self) -> String {
        pkce_challenge(&self.verifier)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_long_unreserved_and_fresh() {
        let a = LoginSecrets::generate().unwrap();
        let b = LoginSecrets::generate().unwrap();
        assert!((43..=128).contains(&a.verifier.len()));
        assert!(a.verifier.bytes().all(|c| c.is_ascii_alphanumeric() || b"-._~".contains(&c)));
        assert!(a.state.len() >= 32 && a.nonce.len() >= 32);
        assert_ne!(a.state, b.state);
        assert_ne!(a.nonce, b.nonce);
        assert_ne!(a.verifier, b.verifier);
        assert_ne!(a.state, a.nonce);
        let debug = format!("{a:?}");
        assert!(!debug.contains(&a.verifier) && !debug.contains(&a.state) && !debug.contains(&a.nonce));
    }
}
