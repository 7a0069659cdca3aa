//! The provider side of a login: redeeming the authorization code, verifying the ID token,
//! reading userinfo, and redeeming refresh tokens when sessions are re-checked.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use openidconnect::core::{CoreClient, CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet, CoreJwsSigningAlgorithm, CoreTokenResponse};
use openidconnect::{
    AccessTokenHash, AuthType, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, IssuerUrl, JsonWebKeySetUrl, Nonce,
    OAuth2TokenResponse, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError, SignatureVerificationError, TokenResponse,
    TokenUrl,
};

use super::identity::{Claims, IdentityError};
use super::{ProviderHttp, describe_error};

/// Where a session's credentials came from: its refresh token may only ever go back there.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProviderBinding {
    pub issuer: String,
    pub token_endpoint: String,
}

/// Everything needed to talk to one provider's token, userinfo and key endpoints as its client.
/// `Debug` leaves the secret out.
pub struct ProviderClient {
    pub http: ProviderHttp,
    pub issuer: String,
    pub client_id: String,
    pub client_secret: String,
    /// `client_secret_post` when the provider does not accept HTTP Basic client authentication.
    pub secret_in_body: bool,
    pub token_url: String,
    pub userinfo_url: Option<String>,
    pub jwks_url: String,
}

impl std::fmt::Debug for ProviderClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderClient").field("issuer", &self.issuer).field("client_id", &self.client_id).finish_non_exhaustive()
    }
}

/// What a successful code exchange yields. `Debug` is redacted: these are bearer credentials.
pub struct VerifiedLogin {
    pub subject: String,
    pub id_claims: Claims,
    pub access_token: String,
    pub refresh_token: Option<String>,
}

impl std::fmt::Debug for VerifiedLogin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VerifiedLogin").field("subject", &self.subject).finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The provider answered with an OAuth error (RFC 6749 §5.2), such as `invalid_grant` for a
    /// code that was already used or has expired.
    #[error("the identity provider refused: {code}{}", .description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default())]
    Refused { code: String, description: Option<String> },
    #[error("could not reach the identity provider: {0}")]
    Unreachable(String),
    #[error("the identity provider answered something unexpected: {0}")]
    BadResponse(String),
    #[error("the ID token was rejected: {0}")]
    InvalidIdToken(String),
    #[error(transparent)]
    Identity(#[from] IdentityError),
}

/// The providers' signing keys, fetched on first use and again when a token does not verify
/// against the cached set: providers rotate keys, and a token that names no key (`kid`) is only
/// known to need the new key when its signature fails against the old one.
pub struct KeySets {
    sets: Mutex<HashMap<String, Cached>>,
    refetch_after: Duration,
}

struct Cached {
    set: CoreJsonWebKeySet,
    fetched: Instant,
    /// When a fetch was last started (successful or not, concurrent or not): the rate limit.
    attempted: Instant,
}

impl Default for KeySets {
    fn default() -> Self {
        Self { sets: Mutex::default(), refetch_after: REFETCH_AFTER }
    }
}

/// A key set fetched less than this ago is not fetched again for a token that fails to verify:
/// tokens signed by keys the provider does not publish must not turn every login into a fetch.
const REFETCH_AFTER: Duration = Duration::from_secs(2);
/// Keys a provider stops publishing (a retired or compromised key) stop being trusted within this.
const MAX_AGE: Duration = Duration::from_secs(600);

impl KeySets {
    /// The key set of `url`: the cached one while younger than MAX_AGE, unless `refetch` asks for
    /// a fresh one and none was attempted within the rate limit.
    async fn get(&self, http: &ProviderHttp, url: &str, refetch: bool) -> Result<CoreJsonWebKeySet, LoginError> {
        if let Some(c) = self.sets.lock().expect("key sets lock").get_mut(url) {
            let fresh = c.fetched.elapsed() < MAX_AGE;
            if fresh && (!refetch || c.attempted.elapsed() < self.refetch_after) {
                return Ok(c.set.clone());
            }
            // Concurrent logins failing on the same rotation share this one fetch.
            c.attempted = Instant::now();
        }
        let url_typed = JsonWebKeySetUrl::new(url.to_string()).map_err(|e| LoginError::BadResponse(format!("JWKS URL {url}: {e}")))?;
        let set = CoreJsonWebKeySet::fetch_async(&url_typed, http)
            .await
            .map_err(|e| LoginError::Unreachable(format!("fetching the signing keys from {url}: {}", describe_error(&e))))?;
        let now = Instant::now();
        self.sets.lock().expect("key sets lock").insert(url.to_string(), Cached { set: set.clone(), fetched: now, attempted: now });
        Ok(set)
    }
}

/// Whether a signature failure may be cured by the provider's current keys: no key of the
/// cached set matches, or the one that does is the wrong one (a token without `kid` after a
/// rotation). A disallowed algorithm or a missing signature is not.
fn may_be_rotation(e: &ClaimsVerificationError) -> bool {
    matches!(
        e,
        ClaimsVerificationError::SignatureVerification(
            SignatureVerificationError::NoMatchingKey
                | SignatureVerificationError::CryptoError(_)
                | SignatureVerificationError::AmbiguousKeyId(_)
                | SignatureVerificationError::InvalidKey(_)
        )
    )
}

/// What acting as the client of any provider in the namespace takes: the client secrets (read
/// from their Secrets when needed), an HTTP client, and the providers' cached key sets.
pub struct ProviderAccess {
    pub kube: kube::Client,
    pub namespace: String,
    /// Trusts public roots plus the operator's extra CA file.
    pub http: ProviderHttp,
    pub extra_ca: Option<Vec<u8>>,
    pub key_sets: KeySets,
}

impl ProviderAccess {
    /// The client for `idp`, with its secret read from its Secret. `Err` says, for a person, why
    /// the provider cannot be used yet.
    pub async fn client(&self, idp: &crate::api::IdentityProvider) -> Result<ProviderClient, String> {
        ProviderClient::for_provider(&self.kube, &self.namespace, &self.http, self.extra_ca.as_deref(), idp).await
    }
}

impl ProviderClient {
    async fn for_provider(
        kube: &kube::Client,
        ns: &str,
        base_http: &ProviderHttp,
        extra_ca: Option<&[u8]>,
        idp: &crate::api::IdentityProvider,
    ) -> Result<Self, String> {
        let name = kube::ResourceExt::name_any(idp);
        let secret = super::read_client_secret(kube, ns, idp)
            .await
            .map_err(|e| format!("reading the client secret of {name:?}: {e}"))?
            .map_err(|check| format!("identity provider {name:?} is misconfigured: {}", check.message))?;
        let http = super::provider_http(base_http, extra_ca, idp).map_err(|e| format!("identity provider {name:?}: {e}"))?;
        let status = idp.status.clone().unwrap_or_default();
        let endpoints = status.endpoints.unwrap_or_default();
        let missing = || format!("identity provider {name:?} has no resolved endpoints yet");
        Ok(Self {
            http,
            issuer: status.issuer.ok_or_else(missing)?,
            client_id: idp.spec.client_id.clone(),
            client_secret: secret,
            secret_in_body: endpoints.token_auth_method.as_deref() == Some(super::SECRET_POST),
            token_url: endpoints.token.ok_or_else(missing)?,
            userinfo_url: endpoints.userinfo,
            jwks_url: endpoints.jwks_uri.ok_or_else(missing)?,
        })
    }

    /// The issuer and token endpoint a session started with this client is bound to.
    pub fn binding(&self) -> ProviderBinding {
        ProviderBinding { issuer: self.issuer.clone(), token_endpoint: self.token_url.clone() }
    }

    fn auth_type(&self) -> AuthType {
        if self.secret_in_body { AuthType::RequestBody } else { AuthType::BasicAuth }
    }

    fn token_url(&self) -> Result<TokenUrl, LoginError> {
        TokenUrl::new(self.token_url.clone()).map_err(|e| LoginError::BadResponse(format!("token endpoint {:?}: {e}", self.token_url)))
    }

    fn issuer_url(&self) -> Result<IssuerUrl, LoginError> {
        IssuerUrl::new(self.issuer.clone()).map_err(|e| LoginError::BadResponse(format!("issuer {:?}: {e}", self.issuer)))
    }

    /// Redeems `code` (with the PKCE verifier and the redirect URI it was issued for) and verifies
    /// the ID token: signature against the provider's keys, issuer, audience, expiry, `nonce`, and
    /// `at_hash` when present.
    pub async fn redeem_code(
        &self,
        keys: &KeySets,
        code: &str,
        redirect_uri: &str,
        pkce_verifier: &str,
        nonce: &str,
    ) -> Result<VerifiedLogin, LoginError> {
        let redirect = RedirectUrl::new(redirect_uri.to_string()).map_err(|e| LoginError::BadResponse(format!("redirect URI: {e}")))?;
        let client = CoreClient::new(ClientId::new(self.client_id.clone()), self.issuer_url()?, CoreJsonWebKeySet::default())
            .set_client_secret(ClientSecret::new(self.client_secret.clone()))
            .set_auth_type(self.auth_type())
            .set_token_uri(self.token_url()?)
            .set_redirect_uri(redirect);
        let response = client
            .exchange_code(AuthorizationCode::new(code.to_string()))
            .set_pkce_verifier(PkceCodeVerifier::new(pkce_verifier.to_string()))
            .request_async(&self.http)
            .await
            .map_err(|e| self.token_error(e))?;
        let id_token = response
            .id_token()
            .ok_or_else(|| LoginError::BadResponse("the token response has no id_token; is the openid scope granted?".into()))?;
        let nonce = Nonce::new(nonce.to_string());
        let subject = self.verify(keys, id_token, Some(&nonce), &response).await?;
        Ok(VerifiedLogin {
            subject,
            id_claims: payload(id_token)?,
            access_token: response.access_token().secret().clone(),
            refresh_token: response.refresh_token().map(|t| t.secret().clone()),
        })
    }

    /// Verifies `id_token`, fetching the key set again once (within the rate limit) if the
    /// signature does not verify against the cached keys. `nonce` is `None` for refreshed ID
    /// tokens, which need not carry one.
    async fn verify(
        &self,
        keys: &KeySets,
        id_token: &CoreIdToken,
        nonce: Option<&Nonce>,
        response: &CoreTokenResponse,
    ) -> Result<String, LoginError> {
        let mut fresh = false;
        loop {
            let set = keys.get(&self.http, &self.jwks_url, fresh).await?;
            // RS256 (OpenID Connect's default) against the provider's keys, or HS256 with the
            // client secret (Core §10.1) for clients registered that way: only the controller,
            // which holds the secret, verifies ID tokens.
            let verifier = CoreIdTokenVerifier::new_confidential_client(
                ClientId::new(self.client_id.clone()),
                ClientSecret::new(self.client_secret.clone()),
                self.issuer_url()?,
                set,
            )
            .set_allowed_algs(vec![CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, CoreJwsSigningAlgorithm::HmacSha256]);
            let verified = match nonce {
                Some(n) => id_token.claims(&verifier, n),
                None => id_token.claims(&verifier, |_: Option<&Nonce>| Ok(())),
            };
            match verified {
                Err(e) if !fresh && may_be_rotation(&e) => fresh = true,
                Err(e) => return Err(LoginError::InvalidIdToken(describe_claims_error(&e))),
                Ok(claims) => {
                    if let Some(expected) = claims.access_token_hash() {
                        let alg = id_token.signing_alg().map_err(|e| LoginError::InvalidIdToken(e.to_string()))?;
                        let key = id_token.signing_key(&verifier).map_err(|e| LoginError::InvalidIdToken(e.to_string()))?;
                        let actual = AccessTokenHash::from_token(response.access_token(), alg, key)
                            .map_err(|e| LoginError::InvalidIdToken(format!("computing at_hash: {e}")))?;
                        if &actual != expected {
                            return Err(LoginError::InvalidIdToken("at_hash does not match the access token".into()));
                        }
                    }
                    return Ok(claims.subject().to_string());
                }
            }
        }
    }

    /// The userinfo claims for `access_token`, which must describe `subject` (OpenID Connect Core
    /// §5.3.2: a response for another subject must not be used).
    pub async fn userinfo(&self, access_token: &str, subject: &str) -> Result<Claims, LoginError> {
        let url = self
            .userinfo_url
            .as_deref()
            .ok_or_else(|| LoginError::BadResponse("the ID token has no groups claim and the provider has no userinfo endpoint".into()))?;
        let (status, body) =
            self.http.get_json(url, Some(access_token)).await.map_err(|e| LoginError::Unreachable(format!("userinfo {url}: {e}")))?;
        if !status.is_success() {
            tracing::warn!(%url, %status, "userinfo answered an error");
            return Err(LoginError::BadResponse(format!("userinfo {url} did not answer successfully")));
        }
        let claims: Claims = serde_json::from_slice(&body)
            .map_err(|e| LoginError::BadResponse(format!("userinfo {url} did not answer a JSON object: {e}")))?;
        match claims.get("sub").and_then(|s| s.as_str()) {
            Some(sub) if sub == subject => Ok(claims),
            other => Err(LoginError::InvalidIdToken(format!("userinfo describes subject {other:?}, not the ID token's {subject:?}"))),
        }
    }

    /// Redeems a refresh token. `Ok` carries the new refresh token when the provider rotated it.
    pub async fn refresh(&self, keys: &KeySets, refresh_token: &str) -> Result<Option<String>, LoginError> {
        let client = CoreClient::new(ClientId::new(self.client_id.clone()), self.issuer_url()?, CoreJsonWebKeySet::default())
            .set_client_secret(ClientSecret::new(self.client_secret.clone()))
            .set_auth_type(self.auth_type())
            .set_token_uri(self.token_url()?);
        let response = client
            .exchange_refresh_token(&RefreshToken::new(refresh_token.to_string()))
            .request_async(&self.http)
            .await
            .map_err(|e| self.token_error(e))?;
        if let Some(id_token) = response.id_token() {
            self.verify(keys, id_token, None, &response).await?;
        }
        Ok(response.refresh_token().map(|t| t.secret().clone()).filter(|t| t != refresh_token))
    }

    fn token_error<RE: std::error::Error + 'static>(
        &self,
        err: RequestTokenError<RE, openidconnect::StandardErrorResponse<openidconnect::core::CoreErrorResponseType>>,
    ) -> LoginError {
        match err {
            RequestTokenError::ServerResponse(r) => {
                LoginError::Refused { code: r.error().as_ref().to_string(), description: r.error_description().cloned() }
            }
            RequestTokenError::Request(e) => LoginError::Unreachable(format!("token endpoint {}: {}", self.token_url, describe_error(&e))),
            // A response that does not parse includes a malformed or tampered ID token.
            RequestTokenError::Parse(e, _) => LoginError::InvalidIdToken(format!("the token response does not parse: {e}")),
            RequestTokenError::Other(e) => LoginError::BadResponse(format!("token endpoint {}: {e}", self.token_url)),
        }
    }
}

fn describe_claims_error(e: &ClaimsVerificationError) -> String {
    match e {
        ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey) => {
            "it is signed by a key the provider does not publish".into()
        }
        ClaimsVerificationError::SignatureVerification(s) => format!("its signature does not verify ({s})"),
        other => other.to_string(),
    }
}

/// The claims of a verified ID token as JSON, for claims the standard set does not name (groups,
/// custom username claims).
fn payload(id_token: &CoreIdToken) -> Result<Claims, LoginError> {
    let raw = id_token.to_string();
    let part = raw.split('.').nth(1).ok_or_else(|| LoginError::InvalidIdToken("not a compact JWS".into()))?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|e| LoginError::InvalidIdToken(format!("payload is not base64url: {e}")))?;
    serde_json::from_slice(&bytes).map_err(|e| LoginError::InvalidIdToken(format!("payload is not a JSON object: {e}")))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use openidconnect::core::{CoreIdTokenClaims, CoreRsaPrivateSigningKey};
    use openidconnect::{JsonWebKeyId, PrivateSigningKey};
    use serde_json::json;

    use super::*;

    // Test-only keys (see testdata/README.md).
    const KEY_A: &str = include_str!("testdata/rsa-a.pem");
    const KEY_B: &str = include_str!("testdata/rsa-b.pem");
    const KEY_C: &str = include_str!("testdata/rsa-c.pem");
    const ISSUER: &str = "https://idp.example.com/oauth2/default";

    /// A provider's JWKS endpoint on loopback whose key set the test replaces, counting fetches.
    struct Provider {
        keys: Arc<Mutex<String>>,
        fetches: Arc<AtomicUsize>,
        client: ProviderClient,
    }

    impl Provider {
        async fn start(pem: &str) -> Self {
            let keys = Arc::new(Mutex::new(String::new()));
            let fetches = Arc::new(AtomicUsize::new(0));
            let (k, f) = (keys.clone(), fetches.clone());
            let app = axum::Router::new().route(
                "/keys",
                axum::routing::get(move || {
                    f.fetch_add(1, Ordering::SeqCst);
                    let body = k.lock().unwrap().clone();
                    async move { ([("content-type", "application/json")], body) }
                }),
            );
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = listener.local_addr().unwrap();
            tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
            let client = ProviderClient {
                http: crate::oidc::ProviderHttp::new(&[], Default::default()).unwrap(),
                issuer: ISSUER.into(),
                client_id: "infra".into(),
                client_secret: "unused-for-rs256".into(),
                secret_in_body: false,
                token_url: format!("http://{addr}/token"),
                userinfo_url: None,
                jwks_url: format!("http://{addr}/keys"),
            };
            let p = Self { keys, fetches, client };
            p.publish(pem, "first");
            p
        }

        /// The provider publishes only `pem`'s public key, as `kid`.
        fn publish(&self, pem: &str, kid: &str) {
            let key = CoreRsaPrivateSigningKey::from_pem(pem, Some(JsonWebKeyId::new(kid.into()))).unwrap();
            *self.keys.lock().unwrap() = serde_json::to_string(&CoreJsonWebKeySet::new(vec![key.as_verification_key()])).unwrap();
        }

        fn fetches(&self) -> usize {
            self.fetches.load(Ordering::SeqCst)
        }

        async fn verify(&self, keys: &KeySets, pem: &str) -> Result<String, LoginError> {
            let (token, response) = id_token(pem);
            self.client.verify(keys, &token, Some(&Nonce::new("n".into())), &response).await
        }
    }

    /// An ID token signed by `pem` whose header names no key (no `kid`), as some providers send.
    fn id_token(pem: &str) -> (CoreIdToken, CoreTokenResponse) {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let claims: CoreIdTokenClaims = serde_json::from_value(json!({
            "iss": ISSUER, "aud": ["infra"], "sub": "00u1", "nonce": "n", "iat": now, "exp": now + 300,
        }))
        .unwrap();
        let key = CoreRsaPrivateSigningKey::from_pem(pem, None).unwrap();
        let token = CoreIdToken::new(claims, &key, CoreJwsSigningAlgorithm::RsaSsaPkcs1V15Sha256, None, None).unwrap();
        assert!(
            !token
                .to_string()
                .split('.')
                .next()
                .map(|h| String::from_utf8(base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(h).unwrap()).unwrap())
                .unwrap()
                .contains("kid")
        );
        let response =
            serde_json::from_value(json!({"access_token": "at", "token_type": "Bearer", "id_token": token.to_string()})).unwrap();
        (token, response)
    }

    #[tokio::test]
    async fn a_token_without_kid_verifies_after_the_provider_rotates_its_key() {
        let idp = Provider::start(KEY_A).await;
        let keys = KeySets { refetch_after: Duration::ZERO, ..KeySets::default() };
        assert_eq!(idp.verify(&keys, KEY_A).await.unwrap(), "00u1");
        assert_eq!(idp.fetches(), 1);
        assert_eq!(idp.verify(&keys, KEY_A).await.unwrap(), "00u1");
        assert_eq!(idp.fetches(), 1, "a verifying token uses the cached keys");
        // The provider replaces its key. The cached key matches the kid-less token's algorithm
        // but not its signature: one fetch of the new set, and the login goes through.
        idp.publish(KEY_B, "second");
        assert_eq!(idp.verify(&keys, KEY_B).await.unwrap(), "00u1");
        assert_eq!(idp.fetches(), 2);
        assert_eq!(idp.verify(&keys, KEY_B).await.unwrap(), "00u1");
        assert_eq!(idp.fetches(), 2);
    }

    /// HS256 ID tokens are signed with the client secret, so only the controller (the login
    /// broker, which holds it) can verify them; a token signed with another secret is refused.
    #[tokio::test]
    async fn an_hs256_id_token_verifies_with_the_client_secret_only() {
        use openidconnect::core::CoreHmacKey;
        let mut idp = Provider::start(KEY_A).await;
        idp.client.client_secret = "the-client-secret-of-at-least-32-bytes".into();
        let keys = KeySets::default();
        let sign = |secret: &str| {
            let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
            let claims: CoreIdTokenClaims = serde_json::from_value(json!({
                "iss": ISSUER, "aud": ["infra"], "sub": "00u1", "nonce": "n", "iat": now, "exp": now + 300,
            }))
            .unwrap();
            let key = CoreHmacKey::new(secret.as_bytes());
            let token = CoreIdToken::new(claims, &key, CoreJwsSigningAlgorithm::HmacSha256, None, None).unwrap();
            let response: CoreTokenResponse =
                serde_json::from_value(json!({"access_token": "at", "token_type": "Bearer", "id_token": token.to_string()})).unwrap();
            (token, response)
        };
        let (token, response) = sign("the-client-secret-of-at-least-32-bytes");
        assert_eq!(idp.client.verify(&keys, &token, Some(&Nonce::new("n".into())), &response).await.unwrap(), "00u1");
        let (forged, response) = sign("another-secret-of-at-least-32-bytes!!");
        let err = idp.client.verify(&keys, &forged, Some(&Nonce::new("n".into())), &response).await.unwrap_err();
        assert!(matches!(err, LoginError::InvalidIdToken(_)), "{err}");
    }

    #[tokio::test]
    async fn a_bad_signature_refetches_once_and_within_the_rate_limit() {
        let idp = Provider::start(KEY_A).await;
        let keys = KeySets { refetch_after: Duration::ZERO, ..KeySets::default() };
        idp.verify(&keys, KEY_A).await.unwrap();
        // A token signed by a key the provider never published: one refetch, then refused.
        let err = idp.verify(&keys, KEY_C).await.unwrap_err();
        assert!(matches!(&err, LoginError::InvalidIdToken(m) if m.contains("signature does not verify")), "{err}");
        assert_eq!(idp.fetches(), 2, "exactly one refetch per failed token");
        // Within the rate limit, failures do not fetch at all (a real rotation is then picked up
        // once the limit has passed, as the test above shows with no limit).
        let limited = KeySets { refetch_after: Duration::from_secs(3600), ..KeySets::default() };
        idp.verify(&limited, KEY_A).await.unwrap();
        let before = idp.fetches();
        for _ in 0..5 {
            assert!(idp.verify(&limited, KEY_C).await.is_err());
        }
        idp.publish(KEY_B, "second");
        assert!(idp.verify(&limited, KEY_B).await.is_err(), "the cached set is younger than the rate limit");
        assert_eq!(idp.fetches(), before, "no fetch within the rate limit");
    }
}
