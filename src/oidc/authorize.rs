//! The authorization request of a login (the CLI's and the dashboard's): the PKCE S256 challenge
//! (RFC 7636) and the authorize URL. Pure.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use url::Url;

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
    pub state: &'a str,
    pub nonce: &'a str,
    pub code_challenge: &'a str,
}

/// The provider's authorization endpoint with the parameters of an authorization code request
/// with PKCE. A query the endpoint already has is kept, except for parameters set here.
pub fn authorize_url(req: &AuthorizeRequest) -> Result<Url, String> {
    let mut url = Url::parse(req.authorization_endpoint)
        .map_err(|e| format!("the provider's authorization endpoint {:?} is not a URL: {e}", req.authorization_endpoint))?;
    if url.scheme() != "https" && url.scheme() != "http" {
        return Err(format!("the provider's authorization endpoint {:?} is not an http(s) URL", req.authorization_endpoint));
    }
    let scope = if req.scopes.is_empty() { "openid".to_string() } else { req.scopes.join(" ") };
    let ours: [(&str, &str); 8] = [
        ("response_type", "code"),
        ("client_id", req.client_id),
        ("redirect_uri", req.redirect_uri),
        ("scope", &scope),
        ("state", req.state),
        ("nonce", req.nonce),
        ("code_challenge", req.code_challenge),
        ("code_challenge_method", "S256"),
    ];
    let kept: Vec<(String, String)> =
        url.query_pairs().filter(|(k, _)| !ours.iter().any(|(o, _)| o == k)).map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
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

    fn params(url: &Url) -> Vec<(String, String)> {
        url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect()
    }

    #[test]
    fn authorize_url_has_every_parameter_encoded() {
        let scopes = vec!["openid".to_string(), "email".into(), "groups".into()];
        let url = authorize_url(&AuthorizeRequest {
            authorization_endpoint: "https://example.okta.com/oauth2/default/v1/authorize",
            client_id: "0oa1b2",
            redirect_uri: "http://localhost:8301",
            scopes: &scopes,
            state: "st ate&=",
            nonce: "nonce1",
            code_challenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM",
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
        let url = authorize_url(&AuthorizeRequest {
            authorization_endpoint: "https://idp.example.com/authorize?tenant=acme&client_id=other",
            client_id: "mine",
            redirect_uri: "http://localhost:8301",
            scopes: &[],
            state: "s",
            nonce: "n",
            code_challenge: "c",
        })
        .unwrap();
        let p = params(&url);
        assert_eq!(p[0], ("tenant".into(), "acme".into()));
        assert_eq!(p.iter().filter(|(k, _)| k == "client_id").collect::<Vec<_>>(), vec![&("client_id".to_string(), "mine".to_string())]);
        assert!(p.contains(&("scope".into(), "openid".into())));
    }

    #[test]
    fn a_bad_endpoint_is_refused() {
        for bad in ["not a url", "javascript:alert(1)", "ftp://x/authorize"] {
            let r = authorize_url(&AuthorizeRequest {
                authorization_endpoint: bad,
                client_id: "c",
                redirect_uri: "r",
                scopes: &[],
                state: "s",
                nonce: "n",
                code_challenge: "c",
            });
            assert!(r.is_err(), "{bad}");
        }
    }
}
