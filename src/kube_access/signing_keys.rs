//! The issuer's ES256 signing keys and their rotation. Pure: the controller (`rotation`) stores
//! the [`KeySet`] as JSON in one Secret, every server replica signs with the same active key.
//!
//! Rotation with overlap: a new key is published [`PUBLISH_AHEAD`] before it starts signing, so
//! every replica serves it in the key set before any token signed with it reaches the API server;
//! a key that stopped signing stays published until every token it signed has expired. The API
//! server accepts ES256 (it does not accept EdDSA).

use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use ring::rand::SystemRandom;
use ring::signature::{ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

pub const SECRET_NAME: &str = "infra-kube-signing-keys";
pub const SECRET_TYPE: &str = "infrahq.com/signing-keys";
/// The data key of the Secret that holds the [`KeySet`] as JSON.
pub const DATA_KEY: &str = "keys.json";
/// How long a new key is published before it signs.
pub const PUBLISH_AHEAD: Duration = Duration::from_secs(120);
/// Clock skew allowed between Infra and the API server when deciding that a retired key's
/// tokens have all expired.
pub const LEEWAY: Duration = Duration::from_secs(60);

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("generating a signing key failed")]
    Generate,
    #[error("signing key {0} is not a P-256 PKCS#8 key")]
    Malformed(String),
    #[error("signing failed")]
    Sign,
}

/// One key. `Debug` leaves the private key out.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StoredKey {
    /// The RFC 7638 thumbprint of the public key: the `kid` of tokens and of the JWK.
    pub kid: String,
    /// PKCS#8 DER, base64.
    pub private_key: String,
    pub created_at: Timestamp,
    /// When the key starts signing (it is published from `created_at`).
    pub signs_from: Timestamp,
}

impl std::fmt::Debug for StoredKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoredKey").field("kid", &self.kid).field("signs_from", &self.signs_from).finish_non_exhaustive()
    }
}

fn add(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_add(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)).unwrap_or(Timestamp::MAX)
}

fn sub(t: Timestamp, d: Duration) -> Timestamp {
    t.checked_sub(SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)).unwrap_or(Timestamp::MIN)
}

impl StoredKey {
    /// A new P-256 key that signs from `signs_from`.
    pub fn generate(now: Timestamp, signs_from: Timestamp) -> Result<Self, KeyError> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng).map_err(|_| KeyError::Generate)?;
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng).map_err(|_| KeyError::Generate)?;
        let kid = thumbprint(pair.public_key().as_ref());
        Ok(Self { kid, private_key: STANDARD.encode(pkcs8.as_ref()), created_at: now, signs_from })
    }

    pub fn key_pair(&self) -> Result<EcdsaKeyPair, KeyError> {
        let der = STANDARD.decode(&self.private_key).map_err(|_| KeyError::Malformed(self.kid.clone()))?;
        EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &der, &SystemRandom::new())
            .map_err(|_| KeyError::Malformed(self.kid.clone()))
    }

    /// The public key as a JWK (RFC 7517/7518).
    pub fn jwk(&self) -> Result<Value, KeyError> {
        let pair = self.key_pair()?;
        let (x, y) = coordinates(pair.public_key().as_ref());
        Ok(json!({"kty": "EC", "crv": "P-256", "x": x, "y": y, "kid": self.kid, "use": "sig", "alg": "ES256"}))
    }
}

/// x and y, base64url, of an uncompressed P-256 point (0x04 || x || y).
fn coordinates(point: &[u8]) -> (String, String) {
    (URL_SAFE_NO_PAD.encode(&point[1..33]), URL_SAFE_NO_PAD.encode(&point[33..65]))
}

/// RFC 7638 JWK thumbprint: SHA-256 over the required members in lexicographic order.
fn thumbprint(point: &[u8]) -> String {
    let (x, y) = coordinates(point);
    let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
    URL_SAFE_NO_PAD.encode(Sha256::digest(canonical.as_bytes()))
}

/// The keys in the Secret, oldest first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeySet {
    pub keys: Vec<StoredKey>,
}

/// How keys rotate, from the operator's flags.
#[derive(Clone, Copy, Debug)]
pub struct Policy {
    /// How long a key signs before the next one takes over.
    pub rotation_interval: Duration,
    /// The longest lifetime of a token: a retired key stays published this long (plus
    /// [`LEEWAY`]).
    pub token_lifetime: Duration,
}

impl KeySet {
    pub fn from_json(bytes: &[u8]) -> Result<Self, serde_json::Error> {
        serde_json::from_slice(bytes)
    }

    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("key set serializes")
    }

    /// The key tokens are signed with at `now`: the newest that has started signing.
    pub fn signing_key(&self, now: Timestamp) -> Option<&StoredKey> {
        self.keys.iter().filter(|k| k.signs_from <= now).max_by_key(|k| k.signs_from)
    }

    /// When `key` stopped signing (the next key took over), if it has.
    fn retired_at(&self, key: &StoredKey, now: Timestamp) -> Option<Timestamp> {
        self.keys.iter().map(|k| k.signs_from).filter(|t| *t > key.signs_from && *t <= now).min()
    }

    /// The JSON Web Key Set the issuer publishes: every stored key, the next one included.
    pub fn jwks(&self) -> Value {
        let keys: Vec<Value> = self.keys.iter().filter_map(|k| k.jwk().ok()).collect();
        json!({ "keys": keys })
    }

    /// The key set as it should be at `now`, or `None` when nothing needs to change: a first key
    /// when there is none, the next key [`PUBLISH_AHEAD`] before the active one's interval ends,
    /// and without keys whose every token has expired. `generate(signs_from)` makes a new key.
    pub fn plan(
        &self,
        policy: Policy,
        now: Timestamp,
        mut generate: impl FnMut(Timestamp) -> Result<StoredKey, KeyError>,
    ) -> Result<Option<KeySet>, KeyError> {
        let mut next = self.clone();
        // Drop keys whose tokens have all expired: retired for longer than a token lives.
        let keep_after = sub(now, policy.token_lifetime + LEEWAY);
        next.keys.retain(|k| self.retired_at(k, now).is_none_or(|retired| retired > keep_after));
        match next.keys.iter().max_by_key(|k| k.signs_from) {
            // No key at all (first start, or the Secret was emptied): sign at once; no token
            // signed by another key can exist.
            None => next.keys.push(generate(now)?),
            Some(newest) if newest.signs_from <= now => {
                let due = add(newest.signs_from, policy.rotation_interval);
                if sub(due, PUBLISH_AHEAD) <= now {
                    next.keys.push(generate(due.max(add(now, PUBLISH_AHEAD)))?);
                }
            }
            // The next key is already published and waits for its time.
            Some(_) => {}
        }
        next.keys.sort_by_key(|k| k.signs_from);
        Ok((next != *self).then_some(next))
    }

    /// An emergency rotation: one new key that signs at once, every other key unpublished, so
    /// tokens signed before fail as soon as the API server refreshes the key set.
    pub fn rotate_now(now: Timestamp) -> Result<KeySet, KeyError> {
        Ok(KeySet { keys: vec![StoredKey::generate(now, now)?] })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + s).unwrap()
    }

    const HOUR: i64 = 3600;

    fn policy() -> Policy {
        Policy { rotation_interval: Duration::from_secs(24 * HOUR as u64), token_lifetime: Duration::from_secs(300) }
    }

    fn fake(now: Timestamp) -> impl FnMut(Timestamp) -> Result<StoredKey, KeyError> {
        let mut n = 0;
        move |signs_from| {
            n += 1;
            Ok(StoredKey { kid: format!("k{n}-{}", signs_from.as_second()), private_key: String::new(), created_at: now, signs_from })
        }
    }

    fn step(set: &KeySet, now: Timestamp) -> KeySet {
        set.plan(policy(), now, fake(now)).unwrap().unwrap_or_else(|| set.clone())
    }

    #[test]
    fn the_first_key_signs_at_once() {
        let set = step(&KeySet::default(), at(0));
        assert_eq!(set.keys.len(), 1);
        assert_eq!(set.signing_key(at(0)).unwrap().signs_from, at(0));
        assert_eq!(set.plan(policy(), at(60), fake(at(60))).unwrap(), None, "nothing to do until the rotation is due");
    }

    #[test]
    fn the_next_key_is_published_before_it_signs_and_the_old_one_stays_until_its_tokens_expired() {
        let first = step(&KeySet::default(), at(0));
        let old = first.keys[0].kid.clone();
        // Just before the publish-ahead window: nothing yet.
        let early = at(24 * HOUR - PUBLISH_AHEAD.as_secs() as i64 - 1);
        assert_eq!(first.plan(policy(), early, fake(early)).unwrap(), None);
        // In the window: the next key is published but the old one still signs.
        let publish = at(24 * HOUR - PUBLISH_AHEAD.as_secs() as i64);
        let both = step(&first, publish);
        assert_eq!(both.keys.len(), 2);
        assert_eq!(both.keys[1].signs_from, at(24 * HOUR));
        assert_eq!(both.signing_key(publish).unwrap().kid, old);
        assert_eq!(both.jwks()["keys"].as_array().unwrap().len(), 0, "fake keys have no key material");
        // At the interval's end the new key signs; the old stays published while its tokens live.
        let switch = at(24 * HOUR);
        assert_ne!(both.signing_key(switch).unwrap().kid, old);
        let kept = step(&both, at(24 * HOUR + 300 + 59));
        assert!(kept.keys.iter().any(|k| k.kid == old), "a token signed just before the switch may still be valid");
        let pruned = step(&kept, at(24 * HOUR + 300 + 60));
        assert_eq!(pruned.keys.len(), 1);
        assert!(pruned.keys.iter().all(|k| k.kid != old));
    }

    #[test]
    fn a_late_controller_still_publishes_ahead() {
        // The controller was down when the rotation was due: the next key still waits PUBLISH_AHEAD.
        let first = step(&KeySet::default(), at(0));
        let late = at(30 * HOUR);
        let next = step(&first, late);
        assert_eq!(next.keys[1].signs_from, at(30 * HOUR + PUBLISH_AHEAD.as_secs() as i64));
        assert_eq!(next.signing_key(late).unwrap().kid, first.keys[0].kid);
    }

    #[test]
    fn real_keys_sign_and_publish() {
        let key = StoredKey::generate(at(0), at(0)).unwrap();
        let jwk = key.jwk().unwrap();
        assert_eq!(jwk["kty"], "EC");
        assert_eq!(jwk["crv"], "P-256");
        assert_eq!(jwk["alg"], "ES256");
        assert_eq!(jwk["kid"], key.kid.as_str());
        assert_eq!(URL_SAFE_NO_PAD.decode(jwk["x"].as_str().unwrap()).unwrap().len(), 32);
        assert!(!format!("{key:?}").contains(&key.private_key), "Debug shows the private key");
        let set = KeySet::rotate_now(at(5)).unwrap();
        assert_eq!(KeySet::from_json(&set.to_json()).unwrap(), set);
        assert_eq!(set.jwks()["keys"].as_array().unwrap().len(), 1);
    }
}
