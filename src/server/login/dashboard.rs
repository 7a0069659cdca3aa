//! The browser's side of login: `/login` starts it, `/login/callback` finishes it, `/` shows who
//! is signed in, `POST /logout` ends it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;

use super::csrf;
use super::flow::{FlowError, Redemption};
use super::state::{LOGIN_TTL_SECS, Opened, return_path};
use super::{LOGIN_COOKIE, LoginState, SESSION_COOKIE, cookie, pages};
use crate::api::User;
use crate::keys;
use crate::metrics::Metrics;
use crate::oidc::authorize::{AuthorizeRequest, authorize_url, pkce_challenge};
use crate::server::providers::scopes;
use crate::session::store::Session;

// The dashboard's cookies and links, from the login state's settings.

/// The path prefix of the external URL (`/` or, behind an Ingress path, `/infra/`), for cookie
/// paths and links.
pub(crate) fn base_path(state: &LoginState) -> String {
    let p = state.args.external_url.path();
    if p.ends_with('/') { p.to_string() } else { format!("{p}/") }
}

pub(crate) fn set_cookie(state: &LoginState, name: &str, value: &str, path: &str, max_age: i64) -> HeaderValue {
    let secure = if state.args.insecure_cookies() { "" } else { "; Secure" };
    HeaderValue::from_str(&format!("{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"))
        .expect("cookie values are base64url and alphanumerics")
}

/// The providers people can sign in with now: Ready, and not being deleted.
pub(crate) fn ready_provider_names(state: &LoginState) -> Vec<String> {
    let offered = |p: &crate::api::IdentityProvider| p.is_ready() && p.metadata.deletion_timestamp.is_none();
    let mut names: Vec<String> = state.providers.state().iter().filter(|p| offered(p)).map(|p| p.name_any()).collect();
    names.sort();
    names
}

fn login_path(state: &LoginState) -> String {
    format!("{}login", base_path(state))
}

fn retry_href(state: &LoginState, provider: Option<&str>) -> String {
    match provider {
        Some(p) => format!("{}?provider={}", login_path(state), pages::urlencode(p)),
        None => base_path(state),
    }
}

pub(crate) fn redirect(to: &str, cookies: Vec<HeaderValue>) -> Response {
    let resp =
        (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string()), (header::CACHE_CONTROL, "no-store".to_string())]).into_response();
    with_cookies(resp, cookies)
}

pub(super) fn with_cookies(mut resp: Response, cookies: Vec<HeaderValue>) -> Response {
    for c in cookies {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}

/// Whether a failed session check means the session is over (unknown, expired, ended, its user
/// or provider gone), so the browser may forget its cookie. Anything else (the API server briefly
/// unavailable, say) leaves the session as it is: the next request may well succeed.
pub(crate) fn session_is_over(e: &FlowError) -> bool {
    e.status == StatusCode::UNAUTHORIZED
}

/// The signed-in person behind the request's session cookie, or the page to show instead: the
/// sign-in page (forgetting the cookie of a session that is over), or why the session cannot be
/// checked right now.
pub(crate) async fn session(state: &LoginState, headers: &HeaderMap) -> Result<(Session, User, super::WhoAmI), Response> {
    let base = base_path(state);
    let Some(token) = cookie(headers, SESSION_COOKIE) else {
        return Err(pages::signed_out(&ready_provider_names(state), &base, None, None));
    };
    match state.identify(&token).await {
        Ok(found) => Ok(found),
        Err(e) if session_is_over(&e) => Err(with_cookies(
            pages::signed_out(&ready_provider_names(state), &base, Some(&e.message), None),
            vec![set_cookie(state, SESSION_COOKIE, "", &base, 0)],
        )),
        Err(e) => Err(pages::unavailable(
            e.status,
            &format!("Infra cannot check your session right now ({}). You are still signed in; reload this page in a moment.", e.message),
            &base,
        )),
    }
}

/// `GET /login?provider=NAME[&return=PATH]`: sends the browser to the provider with state, nonce
/// and PKCE. `return` is a path on this server to land on afterwards (the device approval page
/// sends people here); anything else is ignored.
pub async fn start(State(state): State<Arc<LoginState>>, Query(q): Query<HashMap<String, String>>) -> Response {
    let base = base_path(&state);
    let return_to = q.get("return").and_then(|raw| {
        let path = return_path(raw, &base);
        if path.is_none() {
            tracing::warn!(return_path = %raw.chars().take(200).collect::<String>(), "ignored a login return path that is not a path on this server");
        }
        path
    });
    let name = match q.get("provider") {
        Some(p) => p.clone(),
        None => match ready_provider_names(&state).as_slice() {
            [only] => only.clone(),
            names => {
                return pages::signed_out(names, &base, Some("Choose an identity provider to sign in with."), return_to.as_deref());
            }
        },
    };
    let idp = match state.ready_provider(&name) {
        Ok(idp) => idp,
        Err(e) => return pages::failed(e.status, &e.message, &base),
    };
    let Some(authorize) = idp.status.as_ref().and_then(|s| s.endpoints.as_ref()).and_then(|e| e.authorization.clone()) else {
        return pages::failed(StatusCode::SERVICE_UNAVAILABLE, "the provider has no authorization endpoint", &base);
    };
    let login_id = match keys::random_string(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", 22) {
        Ok(id) => id,
        Err(e) => return pages::failed(StatusCode::INTERNAL_SERVER_ERROR, &e.to_string(), &base),
    };
    let (login_cookie, params) = state.state_key.issue(&login_id, &name, return_to.as_deref(), Timestamp::now().as_second());
    let url = authorize_url(&AuthorizeRequest {
        authorization_endpoint: &authorize,
        client_id: &idp.spec.client_id,
        redirect_uri: &state.args.login_callback_url(),
        scopes: &scopes(&idp),
        state: &params.state,
        nonce: &params.nonce,
        code_challenge: &pkce_challenge(&params.pkce_verifier),
    });
    let url = match url {
        Ok(u) => u,
        Err(e) => return pages::failed(StatusCode::SERVICE_UNAVAILABLE, &e, &base),
    };
    redirect(url.as_str(), vec![set_cookie(&state, LOGIN_COOKIE, &login_cookie, &login_path(&state), LOGIN_TTL_SECS)])
}

/// `GET /login/callback`: the provider sends the browser back here with a code, or an error.
pub async fn callback(State(state): State<Arc<LoginState>>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let base = base_path(&state);
    let clear_login = set_cookie(&state, LOGIN_COOKIE, "", &login_path(&state), 0);
    let now = Timestamp::now().as_second();
    let login_cookie = cookie(&headers, LOGIN_COOKIE);
    let state_param = q.get("state").map(String::as_str).unwrap_or("");
    let opened = state.state_key.open(login_cookie.as_deref(), state_param, now);
    let provider = opened.as_ref().ok().map(|o| o.provider.clone());
    let fail = |status: StatusCode, code: &str, reason: String| {
        Metrics::count(&state.metrics.logins, code);
        tracing::warn!(code, reason = %reason, provider = provider.as_deref().unwrap_or(""), "dashboard login refused");
        with_cookies(pages::failed(status, &reason, &retry_href(&state, provider.as_deref())), vec![clear_login.clone()])
    };

    // Nothing in the request is acted on or shown before it is known to answer this browser's own
    // login: anyone can send a link to /login/callback?error=...&error_description=<any text>.
    // Such a request also leaves the login cookie alone, so it cannot end a login in flight.
    let Opened { provider: provider_name, params, return_to } = match opened {
        Ok(o) => o,
        Err(e) => {
            Metrics::count(&state.metrics.logins, "invalid_state");
            tracing::warn!(code = "invalid_state", reason = %e, "dashboard login callback refused");
            return pages::failed(StatusCode::BAD_REQUEST, &format!("This login cannot be completed: {e}."), &retry_href(&state, None));
        }
    };
    if let Some(error) = q.get("error") {
        let description = q.get("error_description").map(|d| format!(": {}", shown(d))).unwrap_or_default();
        let error = shown(error);
        let reason = if error == "access_denied" {
            format!("The identity provider denied the login or it was cancelled (access_denied{description}).")
        } else {
            format!("The identity provider returned an error: {error}{description}.")
        };
        return fail(StatusCode::FORBIDDEN, "access_denied", reason);
    }
    // RFC 9207: a provider that names itself in the response must be the one this login went to
    // (defends against mix-up between providers).
    if let Some(iss) = q.get("iss") {
        let expected = state.ready_provider(&provider_name).ok().and_then(|p| p.status.as_ref().and_then(|s| s.issuer.clone()));
        if expected.as_deref() != Some(iss.as_str()) {
            return fail(
                StatusCode::BAD_REQUEST,
                "issuer_mismatch",
                format!("The response names issuer {iss:?}, not the issuer of provider {provider_name:?}."),
            );
        }
    }
    let Some(code) = q.get("code").filter(|c| !c.is_empty()) else {
        return fail(StatusCode::BAD_REQUEST, "invalid_request", "The identity provider sent no authorization code.".into());
    };
    let callback_url = state.args.login_callback_url();
    let done = state
        .complete(Redemption {
            provider: &provider_name,
            code,
            redirect_uri: &callback_url,
            pkce_verifier: &params.pkce_verifier,
            nonce: &params.nonce,
        })
        .await;
    match done {
        Ok(done) => {
            let max_age = state.sessions.policy.lifetime.as_secs() as i64;
            // The return path was checked when the login started, and the cookie's MAC covers it.
            let to = return_to.unwrap_or_else(|| base.clone());
            redirect(&to, vec![clear_login, set_cookie(&state, SESSION_COOKIE, &done.token, &base, max_age)])
        }
        // `complete` has counted and logged it.
        Err(e) => with_cookies(pages::failed(e.status, &e.message, &retry_href(&state, Some(&provider_name))), vec![clear_login]),
    }
}

/// Text from the provider's error response, as shown: at most 300 characters, without control
/// characters. (The page escapes HTML.)
fn shown(s: &str) -> String {
    s.chars().filter(|c| !c.is_control()).take(300).collect()
}

pub async fn logout(State(state): State<Arc<LoginState>>, headers: HeaderMap, body: axum::body::Bytes) -> Response {
    let base = base_path(&state);
    let refuse = |why: String| {
        tracing::warn!(reason = %why, "sign-out refused: not posted from an Infra page");
        pages::unavailable(
            StatusCode::FORBIDDEN,
            &format!("This sign-out was not sent from an Infra page ({why}), so nothing was changed."),
            &base,
        )
    };
    if let Err(why) = csrf::check(&headers, &state.args.external_url) {
        return refuse(why);
    }
    if let Some(token) = cookie(&headers, SESSION_COOKIE) {
        let form = crate::server::web::form(&body);
        let ended = match state.whoami(&token).await {
            Ok((session, _)) => {
                if let Err(why) = csrf::check_form(
                    &headers,
                    &state.args.external_url,
                    &state.state_key,
                    &session.id,
                    form.get(csrf::FIELD).map(String::as_str),
                ) {
                    return refuse(why);
                }
                state.logout(&token).await.map(|_| ())
            }
            Err(e) => Err(e),
        };
        match ended {
            Ok(()) => {}
            Err(e) if session_is_over(&e) => tracing::info!(reason = %e.message, "logout of a session that had already ended"),
            // The session still exists: keep the cookie, so the person can try again.
            Err(e) => {
                return pages::unavailable(
                    e.status,
                    &format!("Infra could not end the session right now ({}). You are still signed in; try again in a moment.", e.message),
                    &base,
                );
            }
        }
    }
    redirect(&base, vec![set_cookie(&state, SESSION_COOKIE, "", &base, 0)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::session::{SessionError, Verdict};

    #[test]
    fn only_a_session_that_is_over_loses_its_cookie() {
        assert!(session_is_over(&FlowError::from(SessionError::Unknown)));
        assert!(session_is_over(&FlowError::from(SessionError::Ended(Verdict::Idle))));
        assert!(session_is_over(&FlowError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "user gone")));
        // The API server unreachable or refusing: the session is still there.
        let down = kube::Error::Api(kube::core::Status::failure("connection refused", "ServiceUnavailable").with_code(503).boxed());
        assert!(!session_is_over(&FlowError::from(SessionError::Kube(down))));
        assert!(!session_is_over(&FlowError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "try again")));
        assert!(!session_is_over(&FlowError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", "bug")));
    }

    #[test]
    fn provider_error_text_is_bounded_and_single_line() {
        assert_eq!(shown("a\nb\r\u{1b}[31mc"), "ab[31mc");
        assert_eq!(shown(&"x".repeat(1000)).len(), 300);
    }
}
