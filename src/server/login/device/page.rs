//! The `/device` page: a signed-in person enters (or follows a link with) the code `infra login
//! --device` printed, sees which machine asked, and approves or denies it. Signed-out people are
//! sent through `/login` and back here. The decision is a POST with the session's CSRF token
//! from an Infra page (`Origin` check). Every code looked up counts against the guess limits,
//! and a code that is wrong, expired, decided or used gets one and the same answer.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use k8s_openapi::jiff::Timestamp;

use super::DeviceLogin;
use crate::api::{DeviceAuthorization, DeviceRequester};
use crate::device;
use crate::html::escape;
use crate::server::login::dashboard::{base_path, redirect, session_is_over, set_cookie};
use crate::server::login::flow::WhoAmI;
use crate::server::login::{SESSION_COOKIE, cookie, csrf, pages};
use crate::session::store::Session;

/// The one answer for a code that does not name a pending login, whatever the reason.
const NOT_VALID: &str = "That code is not valid. Check the code shown on the machine you are logging in from: each code works once, and only for a few minutes.";

/// The signed-in person of a request, or the response to send instead (to `/login` and back to
/// `back`, or a page saying the session cannot be checked now).
async fn signed_in(d: &DeviceLogin, headers: &HeaderMap, back: &str) -> Result<(String, Session, crate::api::User, WhoAmI), Response> {
    let base = base_path(&d.login);
    let to_login = |clear: bool| {
        let to = format!("{base}login?return={}", pages::urlencode(back));
        let cookies = if clear { vec![set_cookie(&d.login, SESSION_COOKIE, "", &base, 0)] } else { vec![] };
        redirect(&to, cookies)
    };
    let Some(token) = cookie(headers, SESSION_COOKIE) else { return Err(to_login(false)) };
    match d.login.identify(&token).await {
        Ok((session, user, who)) => Ok((token, session, user, who)),
        Err(e) if session_is_over(&e) => Err(to_login(true)),
        Err(e) => Err(pages::unavailable(
            e.status,
            &format!("Infra cannot check your session right now ({}). Reload this page in a moment.", e.message),
            &base,
        )),
    }
}

/// Where to come back to after signing in: this page, with the code when it is one.
fn back_here(base: &str, code: Option<&str>) -> String {
    match code {
        Some(c) => format!("{base}{}?code={}", device::PAGE, pages::urlencode(c)),
        None => format!("{base}{}", device::PAGE),
    }
}

/// `GET /device[?code=...]`.
pub async fn show(
    State(d): State<Arc<DeviceLogin>>,
    headers: HeaderMap,
    extensions: Extensions,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let base = base_path(&d.login);
    let typed = q.get("code").map(|c| c.trim()).filter(|c| !c.is_empty());
    let normalized = typed.and_then(device::normalize_user_code);
    let (token, _, _, who) = match signed_in(&d, &headers, &back_here(&base, normalized.as_deref())).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let Some(typed) = typed else { return enter_code(&base, &who, StatusCode::OK, None, "") };
    match lookup(&d, &headers, &extensions, typed).await {
        Ok((auth, code)) => confirm(&base, &who, &auth, &code, &d.login.state_key.csrf_token(&token)),
        Err(Refusal::Page(resp)) => resp,
        Err(Refusal::NotValid) => enter_code(&base, &who, StatusCode::BAD_REQUEST, Some(NOT_VALID), typed),
    }
}

enum Refusal {
    NotValid,
    Page(Response),
}

/// The pending authorization `typed` names and the code in its canonical form, after counting
/// the guess.
async fn lookup(
    d: &DeviceLogin,
    headers: &HeaderMap,
    extensions: &Extensions,
    typed: &str,
) -> Result<(DeviceAuthorization, String), Refusal> {
    let base = base_path(&d.login);
    if let Err(wait) = d.guess(headers, extensions) {
        let secs = crate::server::rate_limit::retry_after_secs(wait);
        let mut resp = pages::unavailable(
            StatusCode::TOO_MANY_REQUESTS,
            &format!("Too many codes were entered. Wait {secs} seconds, then try again."),
            &back_here(&base, None),
        );
        resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        return Err(Refusal::Page(resp));
    }
    let code = device::normalize_user_code(typed).ok_or(Refusal::NotValid)?;
    match d.find_pending(&code, Timestamp::now()).await {
        Ok(Some(auth)) => Ok((auth, code)),
        Ok(None) => Err(Refusal::NotValid),
        Err(e) => Err(Refusal::Page(pages::unavailable(e.status, &e.message, &back_here(&base, None)))),
    }
}

/// `POST /device`: `code`, `csrf` and `decision` (`approve` or `deny`).
pub async fn decide(State(d): State<Arc<DeviceLogin>>, headers: HeaderMap, extensions: Extensions, body: Bytes) -> Response {
    let base = base_path(&d.login);
    let refused = |why: String| {
        tracing::warn!(reason = %why, "device login decision refused");
        pages::unavailable(StatusCode::FORBIDDEN, &format!("{why}, so nothing was changed."), &back_here(&base, None))
    };
    if let Err(why) = csrf::check(&headers, &d.login.args.external_url) {
        return refused(format!("This form was not sent from an Infra page ({why})"));
    }
    let fields: HashMap<String, String> = url::form_urlencoded::parse(&body).into_owned().collect();
    let field = |k: &str| fields.get(k).map(String::as_str).unwrap_or("");
    let typed = field("code").trim();
    let (token, session, user, who) = match signed_in(&d, &headers, &back_here(&base, device::normalize_user_code(typed).as_deref())).await
    {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    if !d.login.state_key.csrf_token_matches(&token, field("csrf")) {
        return refused("This form is out of date or was not made by Infra for your session (its CSRF token does not match)".into());
    }
    let approve = match field("decision") {
        "approve" => true,
        "deny" => false,
        _ => return enter_code(&base, &who, StatusCode::BAD_REQUEST, Some("Choose Approve or Deny."), typed),
    };
    let auth = match lookup(&d, &headers, &extensions, typed).await {
        Ok((auth, _)) => auth,
        Err(Refusal::Page(resp)) => return resp,
        Err(Refusal::NotValid) => return enter_code(&base, &who, StatusCode::BAD_REQUEST, Some(NOT_VALID), typed),
    };
    match d.decide(&auth, approve, &session, &user, Timestamp::now()).await {
        Ok(true) => decided(&base, &who, &auth.spec.requester, approve),
        // Decided or polled in between: look again (it is probably no longer pending).
        Ok(false) => {
            enter_code(&base, &who, StatusCode::CONFLICT, Some("That code changed while you were deciding; enter it again."), typed)
        }
        Err(e) => pages::unavailable(e.status, &e.message, &back_here(&base, None)),
    }
}

fn signed_in_line(who: &WhoAmI) -> String {
    format!(
        "<p>Signed in as <span id=\"user\">{}</span> through <span id=\"provider\">{}</span>.</p>",
        escape(&who.user),
        escape(&who.provider)
    )
}

fn enter_code(base: &str, who: &WhoAmI, status: StatusCode, error: Option<&str>, typed: &str) -> Response {
    let error = error.map(|e| format!("<p id=\"error\" class=\"error\" role=\"alert\">{}</p>", escape(e))).unwrap_or_default();
    let typed: String = typed.chars().take(64).collect();
    let body = format!(
        "<h1>Log in a device</h1>{}{error}\
         <form method=\"get\" action=\"{}{}\"><p><label for=\"code\">Code shown by <code>infra login</code></label><br>\
         <input id=\"code\" name=\"code\" value=\"{}\" autocomplete=\"off\" autocapitalize=\"characters\" spellcheck=\"false\" required autofocus></p>\
         <p><button type=\"submit\" id=\"continue\">Continue</button></p></form>",
        signed_in_line(who),
        escape(base),
        device::PAGE,
        escape(&typed),
    );
    pages::page(status, "Log in a device", &body)
}

fn confirm(base: &str, who: &WhoAmI, auth: &DeviceAuthorization, code: &str, csrf_token: &str) -> Response {
    let r = &auth.spec.requester;
    let row = |id: &str, label: &str, value: Option<&str>| {
        value.map(|v| format!("<dt>{label}</dt><dd id=\"{id}\">{}</dd>", escape(v))).unwrap_or_default()
    };
    let requested = r.requested_at.0.to_string();
    let body = format!(
        "<h1>Approve this login?</h1>{}\
         <p>A machine asks to log in to Infra as you. Approve only if you started this login yourself and recognise the machine below.</p>\
         <dl id=\"requester\">{}{}{}{}{}</dl>\
         <form method=\"post\" action=\"{}{}\">\
         <input type=\"hidden\" name=\"code\" value=\"{}\"><input type=\"hidden\" name=\"csrf\" value=\"{}\">\
         <button type=\"submit\" name=\"decision\" value=\"approve\" id=\"approve\">Approve</button> \
         <button type=\"submit\" name=\"decision\" value=\"deny\" id=\"deny\">Deny</button></form>",
        signed_in_line(who),
        row("code", "Code", Some(code)),
        row("address", "Address (as this server saw it)", Some(&r.address)),
        row("requested", "Requested at", Some(&requested)),
        row("hostname", "Host name (as the machine says)", r.hostname.as_deref()),
        row("user-agent", "Program (as the machine says)", r.user_agent.as_deref()),
        escape(base),
        device::PAGE,
        escape(code),
        escape(csrf_token),
    );
    pages::page(StatusCode::OK, "Approve this login?", &body)
}

fn decided(base: &str, who: &WhoAmI, requester: &DeviceRequester, approved: bool) -> Response {
    let (title, text) = if approved {
        (
            "Login approved",
            format!(
                "The machine at {} is now logged in as {}. Return to its terminal; you can close this page.",
                requester.address, who.user
            ),
        )
    } else {
        (
            "Login denied",
            "The machine was not logged in. If you did not start this login, someone may have tried to trick you into approving it."
                .to_string(),
        )
    };
    let body =
        format!("<h1>{title}</h1><p id=\"result\">{}</p><p><a id=\"back\" href=\"{}\">Back to Infra</a></p>", escape(&text), escape(base));
    pages::page(StatusCode::OK, title, &body)
}
