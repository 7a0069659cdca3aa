//! The JWTs the API server accepts from Infra: ES256, compact serialization (RFC 7515/7519).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use ring::rand::SystemRandom;
use serde::{Deserialize, Serialize};

use super::signing_keys::{KeyError, StoredKey};

/// The claims of a token. The API server maps `username`, `groups`, `sub` (uid) and `sid`
/// (extra `infrahq.com/session-id`) with the configuration in [`super::apiserver_config`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// The User object's UID.
    pub sub: String,
    /// The cluster (`--cluster-name`).
    pub aud: String,
    pub iat: i64,
    pub nbf: i64,
    pub exp: i64,
    pub jti: String,
    /// `infra:<provider>:<userName>`.
    pub username: String,
    pub groups: Vec<String>,
    /// The session that minted the token.
    pub sid: String,
}

/// When a token minted at `now` expires: after `lifetime`, never past the session's end.
pub fn expiry(now: Timestamp, lifetime: Duration, session_end: Timestamp) -> Timestamp {
    let full = now.checked_add(SignedDuration::try_from(lifetime).unwrap_or(SignedDuration::MAX)).unwrap_or(Timestamp::MAX);
    full.min(session_end)
}

/// Signs `claims` with `key`: `base64url(header).base64url(claims).base64url(r || s)`.
pub fn sign(key: &StoredKey, claims: &Claims) -> Result<String, KeyError> {
    let header = serde_json::json!({"alg": "ES256", "typ": "JWT", "kid": key.kid});
    let signing_input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("header serializes")),
        URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize")),
    );
    // The FIXED signing algorithm gives r || s, which is what JWS ES256 wants (not DER).
    let signature = key.key_pair()?.sign(&SystemRandom::new(), signing_input.as_bytes()).map_err(|_| KeyError::Sign)?;
    Ok(format!("{signing_input}.{}", URL_SAFE_NO_PAD.encode(signature.as_ref())))
}

#[cfg(test)]
mod tests {
    use ring::signature::{ECDSA_P256_SHA256_FIXED, KeyPair, UnparsedPublicKey};

    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    #[test]
    fn tokens_never_outlive_their_session() {
        assert_eq!(expiry(at(0), Duration::from_secs(300), at(3600)), at(300));
        assert_eq!(expiry(at(0), Duration::from_secs(300), at(120)), at(120));
    }

    #[test]
    fn signed_tokens_verify_with_the_public_key() {
        let key = StoredKey::generate(at(0), at(0)).unwrap();
        let claims = Claims {
            iss: "https://infra.example.com".into(),
            sub: "0b5e-uid".into(),
            aud: "prod".into(),
            iat: 1,
            nbf: 1,
            exp: 301,
            jti: "j".into(),
            username: "infra:okta:alice@example.com".into(),
            groups: vec!["infra:authenticated".into()],
            sid: "abc".into(),
        };
        let jwt = sign(&key, &claims).unwrap();
        let parts: Vec<&str> = jwt.split('.').collect();
        assert_eq!(parts.len(), 3);
        let header: serde_json::Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[0]).unwrap()).unwrap();
        assert_eq!(header["alg"], "ES256");
        assert_eq!(header["kid"], key.kid.as_str());
        let decoded: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
        assert_eq!(decoded, claims);
        let signature = URL_SAFE_NO_PAD.decode(parts[2]).unwrap();
        assert_eq!(signature.len(), 64);
        let public = key.key_pair().unwrap().public_key().as_ref().to_vec();
        let verifier = UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, public);
        verifier.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature).unwrap();
        assert!(verifier.verify(b"tampered", &signature).is_err());
    }
}
