//! The CLI's side of login: `POST /api/login` redeems the code the CLI's loopback listener
//! received; `GET /api/whoami` and `POST /api/logout` take the session token.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

use super::flow::{FlowError, Redemption};
use super::{LoginState, presented_token};

impl IntoResponse for FlowError {
    fn into_response(self) -> Response {
        let mut resp = (self.status, Json(json!({"error": self.code, "message": self.message}))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            resp.headers_mut().insert("www-authenticate", axum::http::HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LoginRequest {
    provider: String,
    code: String,
    #[serde(rename = "redirectURI")]
    redirect_uri: String,
    code_verifier: String,
    nonce: String,
}

fn bad(message: impl Into<String>) -> FlowError {
    FlowError::new(StatusCode::BAD_REQUEST, "invalid_request", message)
}

/// Checks what the CLI sent before anything goes to the provider.
pub fn validate(req: &LoginRequest, allowed_redirects: &[String]) -> Result<(), FlowError> {
    for (field, value, max) in [("provider", &req.provider, 253), ("code", &req.code, 4096), ("nonce", &req.nonce, 512)] {
        if value.is_empty() {
            return Err(bad(format!("{field} is required")));
        }
        if value.len() > max {
            return Err(bad(format!("{field} is longer than {max} characters")));
        }
    }
    // RFC 7636 §4.1: 43 to 128 characters of [A-Za-z0-9-._~].
    let v = &req.code_verifier;
    if !(43..=128).contains(&v.len()) || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b)) {
        return Err(bad("codeVerifier must be a PKCE code verifier: 43 to 128 characters of letters, digits and -._~ (RFC 7636)"));
    }
    let redirect = req.redirect_uri.trim_end_matches('/');
    if !allowed_redirects.iter().any(|a| a == redirect) {
        return Err(FlowError::new(
            StatusCode::BAD_REQUEST,
            "redirect_uri_not_allowed",
            format!(
                "redirect URI {:?} is not registered with this Infra server (accepted: {}); `infra login` listens on http://localhost:8301 unless --listen-port says otherwise",
                req.redirect_uri,
                allowed_redirects.join(", ")
            ),
        ));
    }
    Ok(())
}

pub async fn login(State(state): State<Arc<LoginState>>, body: Bytes) -> Result<Response, FlowError> {
    let req: LoginRequest = serde_json::from_slice(&body)
        .map_err(|e| bad(format!("the body must be a JSON object with provider, code, redirectURI, codeVerifier and nonce: {e}")))?;
    validate(&req, &state.args.cli_redirect_uris)?;
    let done = state
        .complete(Redemption {
            provider: &req.provider,
            code: &req.code,
            redirect_uri: req.redirect_uri.trim_end_matches('/'),
            pkce_verifier: &req.code_verifier,
            nonce: &req.nonce,
        })
        .await?;
    let mut body = serde_json::to_value(&done.who).expect("serializes");
    body["token"] = json!(done.token);
    Ok((StatusCode::CREATED, [("cache-control", "no-store")], Json(body)).into_response())
}

fn unauthenticated() -> FlowError {
    FlowError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "no session token: log in with `infra login`")
}

pub async fn whoami(State(state): State<Arc<LoginState>>, headers: HeaderMap) -> Result<Response, FlowError> {
    let token = presented_token(&headers).ok_or_else(unauthenticated)?;
    let (_, who) = state.whoami(&token).await?;
    Ok(([("cache-control", "no-store")], Json(who)).into_response())
}

pub async fn logout(State(state): State<Arc<LoginState>>, headers: HeaderMap) -> Result<StatusCode, FlowError> {
    let token = presented_token(&headers).ok_or_else(unauthenticated)?;
    // A browser's cookie is sent along by any site that posts here; the CLI's bearer token is not.
    if !headers.contains_key(axum::http::header::AUTHORIZATION) {
        super::csrf::check(&headers, &state.args.external_url).map_err(|why| {
            FlowError::new(
                StatusCode::FORBIDDEN,
                "cross_origin",
                format!("a session cookie may end its session only from an Infra page: {why}"),
            )
        })?;
    }
    state.logout(&token).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(redirect: &str, verifier: &str) -> LoginRequest {
        LoginRequest {
            provider: "okta".into(),
            code: "c".into(),
            redirect_uri: redirect.into(),
            code_verifier: verifier.into(),
            nonce: "n".into(),
        }
    }

    #[test]
    fn only_registered_loopback_redirects() {
        let allowed = vec!["http://localhost:8301".to_string()];
        let v = "a".repeat(43);
        assert!(validate(&req("http://localhost:8301", &v), &allowed).is_ok());
        assert!(validate(&req("http://localhost:8301/", &v), &allowed).is_ok());
        for bad in ["https://evil.example/cb", "http://localhost:8302", "http://127.0.0.1:8301", "http://localhost:8301/x"] {
            assert_eq!(validate(&req(bad, &v), &allowed).unwrap_err().code, "redirect_uri_not_allowed", "{bad}");
        }
    }

    #[test]
    fn pkce_verifier_shape() {
        let allowed = vec!["http://localhost:8301".to_string()];
        assert!(validate(&req("http://localhost:8301", &"a".repeat(42)), &allowed).is_err());
        assert!(validate(&req("http://localhost:8301", &"a".repeat(129)), &allowed).is_err());
        assert!(validate(&req("http://localhost:8301", &format!("{}+", "a".repeat(43))), &allowed).is_err());
        assert!(validate(&req("http://localhost:8301", "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"), &allowed).is_ok());
    }
}
