//! Handing a generated secret to the one process that asked for it, through objects that others
//! can read. `infra scim-keys create` makes a one-time X25519 key pair and puts the public half on
//! the ScimKey; the controller generates the SCIM key, keeps only its hash, and publishes the key
//! sealed to that public half (ephemeral-static ECDH, HKDF-SHA256, AES-256-GCM). Only the CLI
//! process, which never stores its private half, can open it: the key is shown once, to the person
//! who created it, who needs no access to Secrets.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::SystemRandom;
use ring::{aead, agreement, hkdf};

const INFO: &[u8] = b"infrahq.com sealed key v1";
const PUBLIC_LEN: usize = 32;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    #[error("the recipient is not a base64url X25519 public key")]
    BadRecipient,
    #[error("the sealed key is malformed or was not sealed to this recipient")]
    CannotOpen,
    #[error("the system random number generator failed")]
    Random,
}

/// The CLI's half: a one-time key pair. Opening consumes it.
pub struct Recipient {
    private: agreement::EphemeralPrivateKey,
    public: Vec<u8>,
}

impl Recipient {
    pub fn new() -> Result<Self, SealError> {
        let private = agreement::EphemeralPrivateKey::generate(&agreement::X25519, &SystemRandom::new()).map_err(|_| SealError::Random)?;
        let public = private.compute_public_key().map_err(|_| SealError::Random)?.as_ref().to_vec();
        Ok(Self { private, public })
    }

    /// What to publish (the ScimKey annotation).
    pub fn public(&self) -> String {
        URL_SAFE_NO_PAD.encode(&self.public)
    }

    pub fn open(self, sealed: &str) -> Result<String, SealError> {
        let bytes = URL_SAFE_NO_PAD.decode(sealed.trim()).map_err(|_| SealError::CannotOpen)?;
        if bytes.len() <= PUBLIC_LEN + aead::AES_256_GCM.tag_len() {
            return Err(SealError::CannotOpen);
        }
        let (sender, ciphertext) = bytes.split_at(PUBLIC_LEN);
        let key = agreement::agree_ephemeral(self.private, &agreement::UnparsedPublicKey::new(&agreement::X25519, sender), |shared| {
            aead_key(shared, sender, &self.public)
        })
        .map_err(|_| SealError::CannotOpen)??;
        let mut buf = ciphertext.to_vec();
        let plain = key
            .open_in_place(aead::Nonce::assume_unique_for_key([0; 12]), aead::Aad::empty(), &mut buf)
            .map_err(|_| SealError::CannotOpen)?;
        String::from_utf8(plain.to_vec()).map_err(|_| SealError::CannotOpen)
    }
}

/// The controller's half: seals `plaintext` to `recipient` (from [`Recipient::public`]).
pub fn seal(recipient: &str, plaintext: &str) -> Result<String, SealError> {
    let recipient = URL_SAFE_NO_PAD.decode(recipient.trim()).map_err(|_| SealError::BadRecipient)?;
    if recipient.len() != PUBLIC_LEN {
        return Err(SealError::BadRecipient);
    }
    let private = agreement::EphemeralPrivateKey::generate(&agreement::X25519, &SystemRandom::new()).map_err(|_| SealError::Random)?;
    let sender = private.compute_public_key().map_err(|_| SealError::Random)?.as_ref().to_vec();
    let key = agreement::agree_ephemeral(private, &agreement::UnparsedPublicKey::new(&agreement::X25519, &recipient), |shared| {
        aead_key(shared, &sender, &recipient)
    })
    .map_err(|_| SealError::BadRecipient)??;
    let mut buf = plaintext.as_bytes().to_vec();
    // Each AEAD key is derived from a fresh ephemeral key and used once, so a fixed nonce is safe.
    key.seal_in_place_append_tag(aead::Nonce::assume_unique_for_key([0; 12]), aead::Aad::empty(), &mut buf)
        .map_err(|_| SealError::Random)?;
    let mut out = sender;
    out.extend_from_slice(&buf);
    Ok(URL_SAFE_NO_PAD.encode(out))
}

/// The AEAD key for one sealing, bound to both public keys.
fn aead_key(shared: &[u8], sender: &[u8], recipient: &[u8]) -> Result<aead::LessSafeKey, SealError> {
    let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, &[sender, recipient].concat());
    let prk = salt.extract(shared);
    let okm = prk.expand(&[INFO], &aead::AES_256_GCM).map_err(|_| SealError::CannotOpen)?;
    let key = aead::UnboundKey::from(okm);
    Ok(aead::LessSafeKey::new(key))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_recipient_opens() {
        let alice = Recipient::new().unwrap();
        let sealed = seal(&alice.public(), "isk_abc_secret").unwrap();
        assert!(!sealed.contains("secret"));
        let mallory = Recipient::new().unwrap();
        assert_eq!(mallory.open(&sealed), Err(SealError::CannotOpen));
        assert_eq!(alice.open(&sealed).unwrap(), "isk_abc_secret");
    }

    #[test]
    fn tampering_and_garbage_are_refused() {
        let alice = Recipient::new().unwrap();
        let public = alice.public();
        let mut sealed = URL_SAFE_NO_PAD.decode(seal(&public, "isk_abc_secret").unwrap()).unwrap();
        let last = sealed.len() - 1;
        sealed[last] ^= 1;
        assert_eq!(alice.open(&URL_SAFE_NO_PAD.encode(sealed)), Err(SealError::CannotOpen));
        for garbage in ["", "!!", "AAAA", &"A".repeat(100)] {
            assert_eq!(Recipient::new().unwrap().open(garbage), Err(SealError::CannotOpen), "{garbage}");
        }
        for bad in ["", "not base64!", "AAAA"] {
            assert_eq!(seal(bad, "x"), Err(SealError::BadRecipient), "{bad}");
        }
    }
}
