//! The `/device` page: a signed-in person enters (or follows a link with) the code `infra login
//! --device` printed, sees which machine asked, and approves or denies it. Signed-out people are
//! sent through `/login` and back here. The decision is a POST with the session's CSRF token
//! from an Infra page (`Origin` check, src/server/login/csrf.rs). Every code looked up counts
//! against the guess limits, and a code that is wrong, expired, decided or used gets one and the
//! same answer.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{Extensions, HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use k8s_openapi::jiff::Timestamp;

use super::DeviceLogin;
use crate::api::{DeviceAuthorization, DeviceRequester, User};
use crate::device;
use crate::server::dashboard::Ctx;
use crate::server::dashboard::authz::Person;
use crate::server::login::dashboard::{base_path, redirect, session_is_over, set_cookie};
use crate::server::login::{SESSION_COOKIE, WhoAmI, cookie, csrf, pages};
use crate::server::web::{Chrome, render};
use crate::session::store::Session;

/// The one answer for a code that does not name a pending login, whatever the reason.
const NOT_VALID: &str = "That code is not valid. Check the code shown on the machine you are logging in from: each code works once, and only for a few minutes.";

/// The signed-in person of a request, or the response to send instead (to `/login` and back to
/// `back`, or a page saying the session cannot be checked now).
async fn signed_in(d: &DeviceLogin, headers: &HeaderMap, back: &str) -> Result<(Session, User, WhoAmI), Response> {
    let base = base_path(&d.login);
    let to_login = |clear: bool| {
        let to = format!("{base}login?return={}", pages::urlencode(back));
        let cookies = if clear { vec![set_cookie(&d.login, SESSION_COOKIE, "", &base, 0)] } else { vec![] };
        redirect(&to, cookies)
    };
    let Some(token) = cookie(headers, SESSION_COOKIE) else { return Err(to_login(false)) };
    match d.login.identify(&token).await {
        Ok(signed_in) => Ok(signed_in),
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
    let (session, user, who) = match signed_in(&d, &headers, &back_here(&base, normalized.as_deref())).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let page = Page::new(&d, &session, &user, &who);
    let Some(typed) = typed else { return page.enter_code(StatusCode::OK, None, "").await };
    match lookup(&d, &headers, &extensions, typed).await {
        Ok((auth, code)) => page.confirm(&auth, &code).await,
        Err(Refusal::Page(resp)) => resp,
        Err(Refusal::NotValid) => page.enter_code(StatusCode::BAD_REQUEST, Some(NOT_VALID), typed).await,
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
    let fields = crate::server::web::form(&body);
    let field = |k: &str| fields.get(k).map(String::as_str).unwrap_or("");
    let typed = field("code").trim();
    let back = back_here(&base, device::normalize_user_code(typed).as_deref());
    let (session, user, who) = match signed_in(&d, &headers, &back).await {
        Ok(s) => s,
        Err(resp) => return resp,
    };
    let url = &d.login.args.external_url;
    if let Err(why) = csrf::check_form(&headers, url, &d.login.state_key, &session.id, fields.get(csrf::FIELD).map(String::as_str)) {
        return refused(format!("This form is out of date or was not made by Infra for your session ({why})"));
    }
    let page = Page::new(&d, &session, &user, &who);
    let approve = match field("decision") {
        "approve" => true,
        "deny" => false,
        _ => return page.enter_code(StatusCode::BAD_REQUEST, Some("Choose Approve or Deny."), typed).await,
    };
    let auth = match lookup(&d, &headers, &extensions, typed).await {
        Ok((auth, _)) => auth,
        Err(Refusal::Page(resp)) => return resp,
        Err(Refusal::NotValid) => return page.enter_code(StatusCode::BAD_REQUEST, Some(NOT_VALID), typed).await,
    };
    match d.decide(&auth, approve, &session, &user, Timestamp::now()).await {
        Ok(true) => page.decided(&auth.spec.requester, approve).await,
        // Decided or polled in between: it is probably no longer pending.
        Ok(false) => page.enter_code(StatusCode::CONFLICT, Some("That code changed while you were deciding; enter it again."), typed).await,
        Err(e) => pages::unavailable(e.status, &e.message, &back_here(&base, None)),
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

#[derive(Template)]
#[template(path = "device.html")]
struct EnterCode<'a> {
    chrome: Chrome,
    who: &'a WhoAmI,
    error: Option<&'a str>,
    typed: &'a str,
}

#[derive(Template)]
#[template(path = "device_confirm.html")]
struct Confirm<'a> {
    chrome: Chrome,
    who: &'a WhoAmI,
    code: &'a str,
    requester: &'a DeviceRequester,
    requested_at: String,
    csrf: String,
}

#[derive(Template)]
#[template(path = "device_done.html")]
struct Done<'a> {
    chrome: Chrome,
    heading: &'a str,
    text: String,
    approved: bool,
}

/// The pages of one signed-in person, on the dashboard's layout (its navigation shows what their
/// RBAC lets them use).
struct Page<'a> {
    d: &'a DeviceLogin,
    session: &'a Session,
    ctx: Ctx,
    who: &'a WhoAmI,
}

impl<'a> Page<'a> {
    fn new(d: &'a DeviceLogin, session: &'a Session, user: &User, who: &'a WhoAmI) -> Self {
        let uid = user.metadata.uid.clone().unwrap_or_default();
        let person = Person::new(&who.provider, &who.user, &who.groups, &uid, &session.id);
        Page { d, session, ctx: Ctx { person, who: who.clone(), user: user.clone() }, who }
    }

    async fn chrome(&self) -> Chrome {
        self.d.dashboard.chrome(&self.ctx, "device").await
    }

    async fn enter_code(&self, status: StatusCode, error: Option<&str>, typed: &str) -> Response {
        let typed: String = typed.chars().take(64).collect();
        render(status, &EnterCode { chrome: self.chrome().await, who: self.who, error, typed: &typed })
    }

    async fn confirm(&self, auth: &DeviceAuthorization, code: &str) -> Response {
        let page = Confirm {
            chrome: self.chrome().await,
            who: self.who,
            code,
            requester: &auth.spec.requester,
            requested_at: auth.spec.requester.requested_at.0.to_string(),
            csrf: self.d.login.state_key.csrf_token(&self.session.id),
        };
        render(StatusCode::OK, &page)
    }

    async fn decided(&self, requester: &DeviceRequester, approved: bool) -> Response {
        let (heading, text) = if approved {
            (
                "Login approved",
                format!(
                    "The machine at {} is now logged in as {}. Return to its terminal; you can close this page.",
                    requester.address, self.who.user
                ),
            )
        } else {
            (
                "Login denied",
                "The machine was not logged in. If you did not start this login, someone may have tried to trick you into approving it."
                    .to_string(),
            )
        };
        render(StatusCode::OK, &Done { chrome: self.chrome().await, heading, text, approved })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;

    fn who() -> WhoAmI {
        WhoAmI { user: "kate@x".into(), provider: "okta".into(), groups: vec![], expires_at: Timestamp::UNIX_EPOCH, idle_expires_at: None }
    }

    #[test]
    fn the_confirmation_shows_the_machine_escaped_and_posts_the_csrf_token() {
        let requester = DeviceRequester {
            address: "203.0.113.7".into(),
            hostname: Some("<build-01>".into()),
            user_agent: None,
            requested_at: Time(Timestamp::UNIX_EPOCH),
        };
        let who = who();
        let html = Confirm {
            chrome: Chrome::anonymous("/infra/"),
            who: &who,
            code: "BCDF-GHJK",
            requester: &requester,
            requested_at: "1970-01-01T00:00:00Z".into(),
            csrf: "tok".into(),
        }
        .render()
        .unwrap();
        for want in [
            "<dd id=\"code\" class=\"mono\">BCDF-GHJK</dd>",
            "<dd id=\"address\" class=\"mono\">203.0.113.7</dd>",
            "<time id=\"requested\">1970-01-01T00:00:00Z</time>",
            "<form method=\"post\" action=\"/infra/device\">",
            "name=\"csrf\" value=\"tok\"",
            "id=\"approve\"",
            "id=\"deny\"",
        ] {
            assert!(html.contains(want), "{want} in {html}");
        }
        assert!(!html.contains("<build-01>") && html.contains("build-01"), "the host name is escaped: {html}");
        assert!(!html.contains("id=\"user-agent\""), "absent facts are left out: {html}");
    }

    #[test]
    fn the_code_form_labels_its_field_and_says_what_was_wrong() {
        let who = who();
        let html = EnterCode { chrome: Chrome::anonymous("/"), who: &who, error: Some(NOT_VALID), typed: "\"><script>" }.render().unwrap();
        assert!(html.contains("<label for=\"code\">") && html.contains("id=\"code\" name=\"code\""), "{html}");
        assert!(html.contains("id=\"error\" class=\"error\" role=\"alert\""), "{html}");
        assert!(html.contains("aria-invalid=\"true\""), "{html}");
        assert!(!html.contains("\"><script>"), "what was typed is escaped: {html}");
        assert_eq!(back_here("/", Some("BCDF-GHJK")), "/device?code=BCDF-GHJK");
        assert_eq!(back_here("/infra/", None), "/infra/device");
    }
}
