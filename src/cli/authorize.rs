//! The authorization request of `infra login`: state, nonce, the PKCE pair (RFC 7636) and the
//! authorize URL. Pure apart from the OS random source.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha256};
use url::Url;

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

/// `BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))`, the S256 method of RFC 7636 §4.2.
pub fn pkce_challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// What the authorize URL is built from.
pub struct AuthorizeRequest<'a> {
    pub authorization_endpoint: &'a str,
    pub client_id: &'a str,
    pub redirect_uri: &'a str,
    pub scopes: &'a [String],
    pub secrets: &'a LoginSecrets,
}

/// The provider's authorization endpoint with the parameters of an authorization code request
/// with PKCE. A query the endpoint already has is kept, except for parameters set here.
pub fn authorize_url(req: &AuthorizeRequest) -> anyhow::Result<Url> {
    let mut url = Url::parse(req.authorization_endpoint)
        .map_err(|e| anyhow::anyhow!("the provider's authorization endpoint {:?} is not a URL: {e}", req.authorization_endpoint))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        anyhow::bail!("the provider's authorization endpoint {:?} is not an http(s) URL", req.authorization_endpoint);
    }
    let scope = if req.scopes.is_empty() { "openid".to_string() } else { req.scopes.join(" ") };
    let challenge = req.secrets.challenge();
    let ours: [(&str, &str); 8] = [
        ("response_type", "code"),
        ("client_id", req.client_id),
        ("redirect_uri", req.redirect_uri),
        ("scope", &scope),
        ("state", &req.secrets.state),
        ("nonce", &req.secrets.nonce),
        ("code_challenge", &challenge),
        ("code_challenge_method", "S256"),
    ];
    let kept: Vec<(String, String)> = url
        .query_pairs()
        .filter(|(k, _)| !ours.iter().any(|(o, _)| o == k))
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    url.set_query(None);
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in &kept {
            q.append_pair(k, v);
        }
        for (k, v) in ours {
            q.append_pair(k, v);
        }
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn challenge_matches_rfc_7636_appendix_b() {
        // Appendix B: 32 random octets, their base64url form is the verifier, and the challenge is
        // the base64url of its SHA-256 (both octet sequences are printed in the RFC).
        let octets = [
            116u8, 24, 223, 180, 151, 153, 224, 37, 79, 250, 96, 125, 216, 173, 187, 186, 22, 212, 37, 77, 105, 214, 191, 240, 91, 88, 5,
            88, 83, 132, 141, 121,
        ];
        let verifier = URL_SAFE_NO_PAD.encode(octets);
        assert_eq!(verifier, "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk");
        let hash = [
            19u8, 211, 30, 150, 26, 26, 216, 236, 47, 22, 177, 12, 76, 152, 46, 8, 118, 168, 120, 173, 109, 241, 68, 86, 110, 225, 137, 74,
            203, 112, 249, 195,
        ];
        assert_eq!(Sha256::digest(verifier.as_bytes()).as_slice(), hash);
        assert_eq!(pkce_challenge(&verifier), "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
    }

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

    fn secrets() -> LoginSecrets {
        LoginSecrets { state: "st ate&=".into(), nonce: "nonce1".into(), verifier: "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk".into() }
    }

    fn params(url: &Url) -> Vec<(String, String)> {
        url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
    }

    #[test]
    fn authorize_url_has_every_parameter_encoded() {
        let s = secrets();
        let scopes = vec!["openid".to_string(), "email".into(), "groups".into()];
        let url = authorize_url(&AuthorizeRequest {
            authorization_endpoint: "https://example.okta.com/oauth2/default/v1/authorize",
            client_id: "0oa1b2",
            redirect_uri: "http://localhost:8301",
            scopes: &scopes,
            secrets: &s,
        })
        .unwrap();
        assert_eq!(url.path(), "/oauth2/default/v1/authorize");
        let p: HashMap<String, String> = params(&url).into_iter().collect();
        assert_eq!(p["response_type"], "code");
        assert_eq!(p["client_id"], "0oa1b2");
        assert_eq!(p["redirect_uri"], "http://localhost:8301");
        assert_eq!(p["scope"], "openid email groups");
        assert_eq!(p["state"], "st ate&=");
        assert_eq!(p["nonce"], "nonce1");
        assert_eq!(p["code_challenge"], "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
        assert_eq!(p["code_challenge_method"], "S256");
        assert_eq!(p.len(), 8);
        // Reserved characters never appear raw in the query.
        let q = url.query().unwrap();
        assert!(q.contains("redirect_uri=http%3A%2F%2Flocalhost%3A8301"), "{q}");
        assert!(!q.contains("st ate") && !q.contains("&=&"), "{q}");
    }

    #[test]
    fn an_existing_query_is_kept_and_ours_wins() {
        let s = secrets();
        let url = authorize_url(&AuthorizeRequest {
            authorization_endpoint: "https://idp.example.com/authorize?tenant=acme&client_id=other",
            client_id: "mine",
            redirect_uri: "http://localhost:8301",
            scopes: &[],
            secrets: &s,
        })
        .unwrap();
        let p = params(&url);
        assert_eq!(p[0], ("tenant".into(), "acme".into()));
        assert_eq!(p.iter().filter(|(k, _)| k == "client_id").collect::<Vec<_>>(), vec![&("client_id".to_string(), "mine".to_string())]);
        assert!(p.contains(&("scope".into(), "openid".into())));
    }

    #[test]
    fn a_bad_endpoint_is_refused() {
        let s = secrets();
        for bad in ["not a url", "javascript:alert(1)", "ftp://x/authorize"] {
            let r = authorize_url(&AuthorizeRequest { authorization_endpoint: bad, client_id: "c", redirect_uri: "r", scopes: &[], secrets: &s });
            assert!(r.is_err(), "{bad}");
        }
    }
}
