//! The login broker: the controller redeems login codes for the internet-facing server, so that
//! the server never needs the providers' client secrets (nor access to Secrets at all, which RBAC
//! cannot narrow by type or label).
//!
//! The server `POST`s a [`RedeemRequest`] to `/redeem` on any controller replica (leader or not),
//! with a token of its ServiceAccount for the audience [`AUDIENCE`]. The controller checks the
//! token with a TokenReview, reads the client secret, redeems the code at the provider's recorded
//! token endpoint, verifies the ID token (HS256 ones with the client secret), fetches userinfo
//! when the mapping needs it, stores the refresh token in the session's Secret, and answers only
//! the verified claims ([`RedeemResponse`]): never the refresh token, the access token or the
//! client secret.

pub mod client;
pub mod service;

use axum::http::StatusCode;
use serde::{Deserialize, Serialize};

use crate::oidc::identity::Claims;
use crate::oidc::login::LoginError;

/// The audience of the server's ServiceAccount tokens for the broker: a token for anything else
/// (the API server's default audience included) is refused, and a broker token is useless
/// anywhere else.
pub const AUDIENCE: &str = "infra-broker";
pub const REDEEM_PATH: &str = "/redeem";

/// What the server asks the controller to redeem. `Debug` leaves the code and verifier out.
#[derive(Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RedeemRequest {
    pub provider: String,
    pub code: String,
    pub redirect_uri: String,
    pub pkce_verifier: String,
    pub nonce: String,
    /// The id of the session the login will start: the refresh token is stored under it.
    pub session: String,
}

impl std::fmt::Debug for RedeemRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedeemRequest").field("provider", &self.provider).field("session", &self.session).finish_non_exhaustive()
    }
}

/// A verified login: who the provider says it is, and where the session is bound.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RedeemResponse {
    pub subject: String,
    /// The claims of the verified ID token.
    pub id_claims: Claims,
    /// The userinfo claims (checked to describe `subject`), when the claim mapping needs them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub userinfo: Option<Claims>,
    pub issuer: String,
    pub token_endpoint: String,
}

/// Why a redemption failed, as the controller answers it (a JSON body tagged by `error`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
#[serde(tag = "error", rename_all = "snake_case")]
pub enum Failure {
    /// The provider answered with an OAuth error, such as `invalid_grant`.
    #[error("the identity provider refused: {code}")]
    Refused { code: String, description: Option<String> },
    #[error("{message}")]
    Unreachable { message: String },
    #[error("{message}")]
    BadResponse { message: String },
    #[error("{message}")]
    InvalidIdToken { message: String },
    #[error("{message}")]
    UnknownProvider { message: String },
    #[error("{message}")]
    ProviderNotReady { message: String },
    /// The caller's token is missing, invalid, or not one of the server's ServiceAccounts.
    #[error("{message}")]
    Unauthorized { message: String },
    #[error("{message}")]
    Forbidden { message: String },
    #[error("{message}")]
    BadRequest { message: String },
    /// The API server is unavailable to the controller.
    #[error("{message}")]
    Unavailable { message: String },
    #[error("{message}")]
    Internal { message: String },
}

impl Failure {
    pub fn status(&self) -> StatusCode {
        match self {
            Self::Refused { .. } | Self::BadRequest { .. } => StatusCode::BAD_REQUEST,
            Self::Unreachable { .. } | Self::BadResponse { .. } => StatusCode::BAD_GATEWAY,
            Self::InvalidIdToken { .. } | Self::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            Self::Forbidden { .. } => StatusCode::FORBIDDEN,
            Self::UnknownProvider { .. } => StatusCode::NOT_FOUND,
            Self::ProviderNotReady { .. } | Self::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            Self::Internal { .. } => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The provider's part of a failure, as the login flow reports it; `None` for the broker's own.
    pub fn into_login_error(self) -> Result<LoginError, Self> {
        match self {
            Self::Refused { code, description } => Ok(LoginError::Refused { code, description }),
            Self::Unreachable { message } => Ok(LoginError::Unreachable(message)),
            Self::BadResponse { message } => Ok(LoginError::BadResponse(message)),
            Self::InvalidIdToken { message } => Ok(LoginError::InvalidIdToken(message)),
            other => Err(other),
        }
    }
}

impl From<LoginError> for Failure {
    fn from(e: LoginError) -> Self {
        match e {
            LoginError::Refused { code, description } => Self::Refused { code, description },
            // The wrapped text of the variant, not the Display prefix: the server adds it again.
            LoginError::Unreachable(m) => Self::Unreachable { message: m },
            LoginError::BadResponse(m) => Self::BadResponse { message: m },
            LoginError::InvalidIdToken(m) => Self::InvalidIdToken { message: m },
            LoginError::Identity(e) => Self::InvalidIdToken { message: e.to_string() },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_cross_the_wire_and_keep_the_providers_reason() {
        let f = Failure::from(LoginError::Refused { code: "invalid_grant".into(), description: Some("used".into()) });
        let wire = serde_json::to_string(&f).unwrap();
        assert_eq!(wire, r#"{"error":"refused","code":"invalid_grant","description":"used"}"#);
        let back: Failure = serde_json::from_str(&wire).unwrap();
        assert_eq!(back.status(), StatusCode::BAD_REQUEST);
        let login = back.into_login_error().unwrap();
        assert_eq!(login.to_string(), "the identity provider refused: invalid_grant (used)");
        let unreachable = Failure::from(LoginError::Unreachable("token endpoint x: timed out".into()));
        assert_eq!(
            unreachable.clone().into_login_error().unwrap().to_string(),
            "could not reach the identity provider: token endpoint x: timed out"
        );
        assert_eq!(unreachable.status(), StatusCode::BAD_GATEWAY);
        let own = Failure::Unauthorized { message: "no token".into() };
        assert_eq!(own.clone().into_login_error().unwrap_err(), own);
    }

    #[test]
    fn requests_do_not_show_the_code_in_logs() {
        let r = RedeemRequest {
            provider: "okta".into(),
            code: "the-code".into(),
            redirect_uri: "http://x".into(),
            pkce_verifier: "the-verifier".into(),
            nonce: "n".into(),
            session: "abc".into(),
        };
        let shown = format!("{r:?}");
        assert!(!shown.contains("the-code") && !shown.contains("the-verifier"), "{shown}");
    }
}
