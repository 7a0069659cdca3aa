//! The checks behind `DiscoverySucceeded` and `ClientCredentialsValid`.

use openidconnect::core::{CoreClient, CoreClientAuthMethod, CoreJsonWebKeySet, CoreProviderMetadata};
use openidconnect::{AuthType, AuthorizationCode, ClientId, ClientSecret, RedirectUrl, RequestTokenError};

use super::{CLI_REDIRECT_URI, OutboundError, ProviderHttp};
use crate::api::ProviderReason;
use crate::api::conditions::Check;
use crate::api::identity_provider::{CREDENTIALS, DISCOVERY};

/// What discovery found, enough to log people in and to check the client.
#[derive(Clone, Debug)]
pub struct Discovered {
    pub issuer: String,
    pub metadata: CoreProviderMetadata,
}

/// Fetches and validates the discovery document of `issuer` and the key set it points to.
pub async fn discover(http: &ProviderHttp, issuer: &str) -> Result<Discovered, Check<ProviderReason>> {
    let url = format!("{}/.well-known/openid-configuration", issuer.trim_end_matches('/'));
    let fail = |reason, message: String| Check::failed(DISCOVERY, reason, message);
    let body = fetch(http, &url).await.map_err(|(reason, msg)| fail(reason, msg))?;
    let metadata: CoreProviderMetadata = serde_json::from_slice(&body).map_err(|e| {
        tracing::warn!(%url, error = %e, "not a discovery document");
        fail(
            ProviderReason::NotOpenIDProvider,
            format!("{url} did not answer with a valid OpenID Connect discovery document: this is not an OpenID provider at this URL"),
        )
    })?;
    let found = metadata.issuer().as_str();
    if found != issuer {
        return Err(fail(
            ProviderReason::IssuerMismatch,
            format!(
                "the discovery document at {url} names issuer {found:?}, but Infra expected {issuer:?}; \
                 issuers must match exactly, so set spec.url to the issuer the provider uses"
            ),
        ));
    }
    let jwks_url = metadata.jwks_uri().url().to_string();
    let jwks_body = fetch(http, &jwks_url).await.map_err(|(reason, msg)| fail(reason, msg))?;
    let jwks: CoreJsonWebKeySet = serde_json::from_slice(&jwks_body).map_err(|e| {
        tracing::warn!(url = %jwks_url, error = %e, "not a key set");
        fail(ProviderReason::InvalidDocument, format!("the key set at {jwks_url} is not a valid JWK set"))
    })?;
    if jwks.keys().is_empty() {
        return Err(fail(
            ProviderReason::InvalidDocument,
            format!("the key set at {jwks_url} has no keys; ID tokens could not be verified"),
        ));
    }
    Ok(Discovered { issuer: issuer.to_string(), metadata: metadata.set_jwks(jwks) })
}

/// A discovery or key-set document. Messages name the URL (which the provider's editor chose) but
/// never a raw status or connection error of it: those would make this a scanner of internal
/// addresses. The operator's log has the detail.
async fn fetch(http: &ProviderHttp, url: &str) -> Result<Vec<u8>, (ProviderReason, String)> {
    let (status, body) = http.get_json(url, None).await.map_err(|e| match e {
        OutboundError::Refused(_) => (ProviderReason::AddressRefused, format!("{url}: {e}")),
        OutboundError::TooLarge => (ProviderReason::InvalidDocument, format!("{url}: {e}")),
        _ => (ProviderReason::Unreachable, format!("{url}: {e}")),
    })?;
    if status.is_redirection() {
        return Err((
            ProviderReason::NotOpenIDProvider,
            format!("{url} redirected elsewhere; Infra does not follow redirects from identity providers, check the URL"),
        ));
    }
    if status.is_server_error() {
        tracing::warn!(%url, %status, "provider answered a server error");
        return Err((
            ProviderReason::ProviderError,
            format!("{url} answered with a server error; the provider may be having trouble, retrying"),
        ));
    }
    if !status.is_success() {
        tracing::warn!(%url, %status, "provider answered an error");
        return Err((
            ProviderReason::NotOpenIDProvider,
            format!(
                "{url} did not answer with an OpenID Connect document: this is not an OpenID provider at this URL; check spec.url (for Okta, the domain and any /oauth2/<server> path)"
            ),
        ));
    }
    Ok(body)
}

/// Whether the client secret goes in the token request body (`client_secret_post`): only when the
/// provider lists methods and Basic is not among them, since Basic is the default when it lists
/// none (OpenID Connect Discovery §3).
pub fn secret_in_body(discovered: &Discovered) -> bool {
    let methods = discovered.metadata.token_endpoint_auth_methods_supported();
    !methods.is_none_or(|m| m.contains(&CoreClientAuthMethod::ClientSecretBasic))
}

/// Checks the client ID and secret at the token endpoint without a real user: it redeems a code
/// that cannot exist. A provider answers `invalid_client` when it does not accept the client's
/// credentials and `invalid_grant` when it does (and only the code is wrong).
pub async fn check_credentials(http: &ProviderHttp, discovered: &Discovered, client_id: &str, secret: &str) -> Check<ProviderReason> {
    let fail = |reason, message: String| Check::failed(CREDENTIALS, reason, message);
    let metadata = &discovered.metadata;
    if metadata.token_endpoint().is_none() {
        return fail(ProviderReason::NoTokenEndpoint, "the discovery document has no token_endpoint".into());
    }
    let basic = !secret_in_body(discovered);
    let client = CoreClient::from_provider_metadata(
        metadata.clone(),
        ClientId::new(client_id.to_string()),
        Some(ClientSecret::new(secret.to_string())),
    )
    .set_redirect_uri(RedirectUrl::new(CLI_REDIRECT_URI.to_string()).expect("constant URL is valid"))
    .set_auth_type(if basic { AuthType::BasicAuth } else { AuthType::RequestBody });
    let request = match client.exchange_code(AuthorizationCode::new("infra-credentials-check".to_string())) {
        Ok(r) => r,
        Err(e) => return fail(ProviderReason::NoTokenEndpoint, e.to_string()),
    };
    let token_url = metadata.token_endpoint().map(|u| u.to_string()).unwrap_or_default();
    match request.request_async(http).await {
        Err(RequestTokenError::ServerResponse(resp)) => {
            classify_token_error(resp.error().as_ref(), resp.error_description().map(String::as_str), client_id, &token_url)
        }
        Err(RequestTokenError::Request(e @ OutboundError::Refused(_))) => {
            fail(ProviderReason::AddressRefused, format!("token endpoint {token_url}: {e}"))
        }
        Err(RequestTokenError::Request(e)) => fail(ProviderReason::Unreachable, format!("token endpoint {token_url}: {e}")),
        Err(RequestTokenError::Parse(e, _)) => {
            tracing::warn!(url = %token_url, error = %e, "token endpoint answered something that is not an OAuth response");
            fail(
                ProviderReason::UnexpectedResponse,
                format!("the token endpoint {token_url} answered something that is not an OAuth error response"),
            )
        }
        Err(RequestTokenError::Other(e)) => {
            fail(ProviderReason::UnexpectedResponse, format!("the token endpoint {token_url} answered unexpectedly: {e}"))
        }
        Ok(_) => fail(
            ProviderReason::UnexpectedResponse,
            format!("the token endpoint {token_url} issued a token for a code that does not exist; this provider cannot be trusted"),
        ),
    }
}

/// What the token endpoint's error to a made-up code says about the client's credentials.
/// Providers disagree on the codes (RFC 6749 §5.2 is not followed everywhere):
/// - accepted credentials: `invalid_grant` (Okta, Entra ID, Google, Keycloak, Auth0, Dex);
/// - rejected credentials: `invalid_client` (Okta, Entra ID, Google, recent Keycloak), but older
///   Keycloak says `unauthorized_client` ("Invalid client secret") and Auth0 `access_denied`
///   ("Unauthorized").
pub fn classify_token_error(code: &str, description: Option<&str>, client_id: &str, token_url: &str) -> Check<ProviderReason> {
    let detail = description.map(|d| format!(" ({d})")).unwrap_or_default();
    let fail = |reason, message: String| Check::failed(CREDENTIALS, reason, message);
    let rejected = || {
        fail(
            ProviderReason::InvalidClient,
            format!(
                "the provider rejected client ID {client_id:?} or its secret: {code}{detail}; copy the Client ID and \
                 Client Secret from the application's General tab and update the Secret"
            ),
        )
    };
    let says = |words: &[&str]| description.is_some_and(|d| words.iter().any(|w| d.to_ascii_lowercase().contains(w)));
    match code {
        "invalid_grant" => Check::passed(
            CREDENTIALS,
            ProviderReason::Accepted,
            format!("the token endpoint accepted client ID {client_id:?} and its secret"),
        ),
        "invalid_client" => rejected(),
        "unauthorized_client" if says(&["secret", "credential", "invalid client"]) => rejected(),
        "unauthorized_client" => fail(
            ProviderReason::UnauthorizedClient,
            format!(
                "the provider does not allow client {client_id:?} the Authorization Code grant: {code}{detail}; enable the \
                 Authorization Code and Refresh Token grant types for the application"
            ),
        ),
        "access_denied" | "unauthorized" => rejected(),
        _ => fail(
            ProviderReason::UnexpectedResponse,
            format!(
                "the token endpoint {token_url} answered {code}{detail}, not invalid_grant; cannot tell whether the credentials are valid"
            ),
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(code: &str, description: Option<&str>) -> ProviderReason {
        classify_token_error(code, description, "client", "https://idp/token").reason
    }

    #[test]
    fn providers_error_dialects() {
        // Okta, Entra ID, Google, Keycloak and Auth0 with valid credentials and a made-up code.
        assert_eq!(reason("invalid_grant", Some("The authorization code is invalid or has expired.")), ProviderReason::Accepted);
        assert_eq!(reason("invalid_grant", Some("AADSTS9002313: Invalid request.")), ProviderReason::Accepted);
        assert_eq!(reason("invalid_grant", Some("Code not valid")), ProviderReason::Accepted);
        // Wrong secrets.
        assert_eq!(
            reason("invalid_client", Some("The client secret supplied for a confidential client is invalid.")),
            ProviderReason::InvalidClient
        );
        assert_eq!(reason("invalid_client", Some("AADSTS7000215: Invalid client secret provided.")), ProviderReason::InvalidClient);
        assert_eq!(reason("unauthorized_client", Some("Invalid client secret")), ProviderReason::InvalidClient);
        assert_eq!(reason("unauthorized_client", Some("Invalid client or Invalid client credentials")), ProviderReason::InvalidClient);
        assert_eq!(reason("access_denied", Some("Unauthorized")), ProviderReason::InvalidClient);
        // A client without the authorization code grant.
        assert_eq!(
            reason("unauthorized_client", Some("The client is not authorized to use the provided grant type.")),
            ProviderReason::UnauthorizedClient
        );
        assert_eq!(reason("server_error", None), ProviderReason::UnexpectedResponse);
    }

    #[test]
    fn messages_name_the_client_and_the_code() {
        let c = classify_token_error("invalid_client", Some("bad"), "0oa123", "https://idp/token");
        assert!(c.message.contains("0oa123") && c.message.contains("invalid_client (bad)"), "{}", c.message);
        assert!(!c.is_true());
    }
}
