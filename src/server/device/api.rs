//! The CLI's side of device login: `POST /api/device/authorize` (RFC 8628 §3.1) and `POST
//! /api/device/token` (§3.4), both form-encoded as the RFC has them, both unauthenticated and
//! rate limited per client (src/server/rate_limit.rs).

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{Extensions, HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use serde_json::json;

use super::DeviceLogin;
use crate::api::{DeviceRequester, device_authorization::PollAnswer};
use crate::device::{self, TokenError};
use crate::server::login::FlowError;

/// A refusal of the token endpoint: an RFC 6749 §5.2 error body (`error`, `error_description`;
/// `message` too, as every other Infra API error has it).
#[derive(Debug)]
pub struct TokenFailure {
    status: StatusCode,
    error: &'static str,
    description: String,
}

impl TokenFailure {
    fn rfc(e: TokenError, description: impl Into<String>) -> Self {
        Self { status: StatusCode::BAD_REQUEST, error: e.code(), description: description.into() }
    }

    pub fn denied(why: &str) -> Self {
        Self::rfc(TokenError::AccessDenied, why)
    }
}

impl From<FlowError> for TokenFailure {
    fn from(e: FlowError) -> Self {
        // A person refused (deactivated, gone) is a denial in the RFC's terms; outages keep their
        // status so that the CLI retries.
        if e.status == StatusCode::FORBIDDEN || e.status == StatusCode::UNAUTHORIZED {
            return Self::rfc(TokenError::AccessDenied, e.message);
        }
        Self { status: e.status, error: e.code, description: e.message }
    }
}

impl IntoResponse for TokenFailure {
    fn into_response(self) -> Response {
        let body = json!({"error": self.error, "error_description": self.description, "message": self.description});
        (self.status, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
    }
}

/// The fields of a form-encoded body; a field sent twice is refused (RFC 6749 §3.1).
fn form(body: &[u8]) -> Result<std::collections::HashMap<String, String>, String> {
    let mut fields = std::collections::HashMap::new();
    for (k, v) in url::form_urlencoded::parse(body) {
        if fields.insert(k.to_string(), v.to_string()).is_some() {
            return Err(format!("the parameter {k:?} is repeated"));
        }
    }
    Ok(fields)
}

/// What a client says about itself, as shown on the approval page: printable characters only,
/// bounded. Unverified: the page says so.
fn shown(raw: Option<&str>, max: usize) -> Option<String> {
    let s: String = raw?.chars().filter(|c| !c.is_control()).take(max).collect();
    let s = s.trim().to_string();
    (!s.is_empty()).then_some(s)
}

/// `POST /api/device/authorize`: `client_id` and `scope` are accepted and ignored (the CLI is
/// Infra's only client), `hostname` is shown on the approval page.
pub async fn authorize(State(d): State<Arc<DeviceLogin>>, headers: HeaderMap, extensions: Extensions, body: Bytes) -> Response {
    let fields = match form(&body) {
        Ok(f) => f,
        Err(m) => return TokenFailure::rfc(TokenError::InvalidRequest, m).into_response(),
    };
    let now = Timestamp::now();
    let requester = DeviceRequester {
        address: crate::server::rate_limit::client_of(&headers, &extensions, d.limits.trusted_hops),
        hostname: shown(fields.get("hostname").map(String::as_str), 64),
        user_agent: shown(headers.get(header::USER_AGENT).and_then(|v| v.to_str().ok()), 200),
        requested_at: Time(now),
    };
    let address = requester.address.clone();
    let started = match d.start(requester, now).await {
        Ok(s) => s,
        Err(e) => return e.into_response(),
    };
    tracing::info!(%address, "device login started");
    let uri = d.login.args.external(device::PAGE);
    let body = json!({
        "device_code": started.device_code,
        "user_code": started.user_code,
        "verification_uri": uri,
        "verification_uri_complete": format!("{uri}?code={}", started.user_code),
        "expires_in": d.lifetime.as_secs(),
        "interval": device::POLL_INTERVAL_SECS,
    });
    (StatusCode::OK, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response()
}

/// `POST /api/device/token`: `grant_type=urn:ietf:params:oauth:grant-type:device_code` and the
/// `device_code`. Answers with a session (as `POST /api/login` does, plus RFC 6749's
/// `access_token`, `token_type` and `expires_in`) once a person approved, else an RFC 8628 error.
pub async fn token(State(d): State<Arc<DeviceLogin>>, body: Bytes) -> Result<Response, TokenFailure> {
    let fields = form(&body).map_err(|m| TokenFailure::rfc(TokenError::InvalidRequest, m))?;
    match fields.get("grant_type").map(String::as_str) {
        Some(device::GRANT_TYPE) => {}
        Some(other) => {
            return Err(TokenFailure::rfc(TokenError::UnsupportedGrantType, format!("grant_type {other:?} is not {}", device::GRANT_TYPE)));
        }
        None => return Err(TokenFailure::rfc(TokenError::InvalidRequest, format!("grant_type is required ({})", device::GRANT_TYPE))),
    }
    let code = fields.get("device_code").ok_or_else(|| TokenFailure::rfc(TokenError::InvalidRequest, "device_code is required"))?;
    let unknown = || {
        TokenFailure::rfc(TokenError::InvalidGrant, "this device code is not valid: it was never issued, or has expired and was removed")
    };
    let id = device::parse_device_code(code).ok_or_else(unknown)?;
    let auth = d.api.get_opt(&device::object_name(id)).await.map_err(FlowError::from)?.ok_or_else(unknown)?;
    if !device::device_code_matches(code, &auth.spec.device_code_hash) {
        return Err(unknown());
    }
    let now = Timestamp::now();
    let spec = &auth.spec;
    match spec.on_poll(now) {
        PollAnswer::Expired => {
            d.delete(&auth).await;
            Err(TokenFailure::rfc(
                TokenError::ExpiredToken,
                format!("the code expired before anyone approved it (codes work for {})", lifetime(d.lifetime)),
            ))
        }
        PollAnswer::SlowDown => {
            let interval = spec.interval.saturating_add(device::SLOW_DOWN_STEP_SECS as u32).min(600);
            d.record_poll(&auth, interval, now).await?;
            Err(slow_down(interval))
        }
        PollAnswer::Pending => {
            // A poll that lost the race to another one came too soon, whatever it read.
            if d.record_poll(&auth, spec.interval, now).await? {
                Err(TokenFailure::rfc(TokenError::AuthorizationPending, "waiting for a person to approve the login"))
            } else {
                Err(slow_down(spec.interval))
            }
        }
        PollAnswer::Denied => Err(TokenFailure::rfc(TokenError::AccessDenied, "the login was denied on the approval page")),
        PollAnswer::Used => Err(TokenFailure::rfc(TokenError::InvalidGrant, "this device code was already used")),
        PollAnswer::Redeem => match d.redeem(&auth, now).await? {
            None => Err(slow_down(spec.interval)),
            Some(done) => {
                let mut body = serde_json::to_value(&done.who).expect("serializes");
                let expires_in = done.who.expires_at.duration_since(now).as_secs().max(0);
                body["token"] = json!(done.token);
                body["access_token"] = json!(done.token);
                body["token_type"] = json!("Bearer");
                body["expires_in"] = json!(expires_in);
                Ok((StatusCode::OK, [(header::CACHE_CONTROL, "no-store")], Json(body)).into_response())
            }
        },
    }
}

/// `10 minutes`, `90 seconds`.
fn lifetime(d: std::time::Duration) -> String {
    match d.as_secs() {
        60 => "1 minute".into(),
        s if s % 60 == 0 => format!("{} minutes", s / 60),
        s => format!("{s} seconds"),
    }
}

fn slow_down(interval: u32) -> TokenFailure {
    TokenFailure::rfc(TokenError::SlowDown, format!("polling too fast: wait {interval} seconds between requests"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forms_refuse_repeated_parameters() {
        let f = form(b"grant_type=a&device_code=b%2Bc").unwrap();
        assert_eq!(f["device_code"], "b+c");
        assert!(form(b"device_code=a&device_code=b").is_err());
    }

    #[test]
    fn what_clients_say_about_themselves_is_bounded_and_printable() {
        assert_eq!(shown(Some(" build-01\n\u{1b}[31m "), 64).as_deref(), Some("build-01[31m"));
        assert_eq!(shown(Some(&"x".repeat(100)), 64).unwrap().len(), 64);
        assert_eq!(shown(Some("  "), 64), None);
        assert_eq!(shown(None, 64), None);
    }

    #[test]
    fn refusals_map_to_rfc_errors() {
        let deactivated = TokenFailure::from(FlowError::new(StatusCode::FORBIDDEN, "user_inactive", "gone"));
        assert_eq!((deactivated.status, deactivated.error), (StatusCode::BAD_REQUEST, "access_denied"));
        let outage = TokenFailure::from(FlowError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "down"));
        assert_eq!((outage.status, outage.error), (StatusCode::SERVICE_UNAVAILABLE, "unavailable"));
        assert_eq!(slow_down(10).error, "slow_down");
        assert_eq!(lifetime(std::time::Duration::from_secs(600)), "10 minutes");
        assert_eq!(lifetime(std::time::Duration::from_secs(3)), "3 seconds");
    }
}
