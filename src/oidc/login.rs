//! The provider side of a login: redeeming the authorization code, verifying the ID token,
//! reading userinfo, and redeeming refresh tokens when sessions are re-checked.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine;
use openidconnect::core::{CoreClient, CoreIdToken, CoreIdTokenVerifier, CoreJsonWebKeySet, CoreTokenResponse};
use openidconnect::{
    AccessTokenHash, AuthType, AuthorizationCode, ClaimsVerificationError, ClientId, ClientSecret, IssuerUrl,
    JsonWebKeySetUrl, Nonce, OAuth2TokenResponse, PkceCodeVerifier, RedirectUrl, RefreshToken, RequestTokenError,
    SignatureVerificationError, TokenResponse, TokenUrl,
};

use super::{describe_error, ProviderHttp};
use super::identity::{Claims, IdentityError};

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

/// The providers' signing keys, fetched on first use and again when a token names a key the
/// cached set does not have (providers rotate keys and publish the new one before using it).
#[derive(Default)]
pub struct KeySets {
    sets: Mutex<HashMap<String, (CoreJsonWebKeySet, Instant)>>,
}

/// A key set younger than this is not fetched again for an unknown key: an ID token signed by a
/// key the provider does not publish must not turn every login into a fetch.
const REFETCH_AFTER: Duration = Duration::from_secs(2);
/// Keys a provider stops publishing (a retired or compromised key) stop being trusted within this.
const MAX_AGE: Duration = Duration::from_secs(600);

impl KeySets {
    async fn get(&self, http: &ProviderHttp, url: &str, stale_ok: bool) -> Result<CoreJsonWebKeySet, LoginError> {
        if let Some((set, at)) = self.sets.lock().expect("key sets lock").get(url) {
            let age = at.elapsed();
            if age < MAX_AGE && (stale_ok || age < REFETCH_AFTER) {
                return Ok(set.clone());
            }
        }
        let url_typed = JsonWebKeySetUrl::new(url.to_string()).map_err(|e| LoginError::BadResponse(format!("JWKS URL {url}: {e}")))?;
        let set = CoreJsonWebKeySet::fetch_async(&url_typed, http)
            .await
            .map_err(|e| LoginError::Unreachable(format!("fetching the signing keys from {url}: {}", describe_error(&e))))?;
        self.sets.lock().expect("key sets lock").insert(url.to_string(), (set.clone(), Instant::now()));
        Ok(set)
    }
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
    pub fn binding(&self) -> crate::session::ProviderBinding {
        crate::session::ProviderBinding { issuer: self.issuer.clone(), token_endpoint: self.token_url.clone() }
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

    /// Verifies `id_token`, fetching the key set again once if the token names a key it does not
    /// have. `nonce` is `None` for refreshed ID tokens, which need not carry one.
    async fn verify(
        &self,
        keys: &KeySets,
        id_token: &CoreIdToken,
        nonce: Option<&Nonce>,
        response: &CoreTokenResponse,
    ) -> Result<String, LoginError> {
        let mut fresh = false;
        loop {
            let set = keys.get(&self.http, &self.jwks_url, !fresh).await?;
            let verifier = CoreIdTokenVerifier::new_confidential_client(
                ClientId::new(self.client_id.clone()),
                ClientSecret::new(self.client_secret.clone()),
                self.issuer_url()?,
                set,
            );
            let verified = match nonce {
                Some(n) => id_token.claims(&verifier, n),
                None => id_token.claims(&verifier, |_: Option<&Nonce>| Ok(())),
            };
            match verified {
                Err(ClaimsVerificationError::SignatureVerification(SignatureVerificationError::NoMatchingKey)) if !fresh => fresh = true,
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
        let (status, body) = self.http.get_json(url, Some(access_token)).await.map_err(|e| LoginError::Unreachable(format!("userinfo {url}: {e}")))?;
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
            RequestTokenError::ServerResponse(r) => LoginError::Refused {
                code: r.error().as_ref().to_string(),
                description: r.error_description().cloned(),
            },
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
