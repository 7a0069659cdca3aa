//! The login's pages, on the dashboard's layout (templates/). Everything interpolated is escaped
//! by the templates.

use askama::Template;
use axum::http::StatusCode;
use axum::response::Response;

use crate::server::web::{Chrome, render};

struct ProviderLink<'a> {
    name: &'a str,
    query: String,
}

#[derive(Template)]
#[template(path = "signed_out.html")]
struct SignedOut<'a> {
    chrome: Chrome,
    providers: Vec<ProviderLink<'a>>,
    note: Option<&'a str>,
}

#[derive(Template)]
#[template(path = "message.html")]
struct Message<'a> {
    chrome: Chrome,
    heading: &'a str,
    reason: &'a str,
    link_id: &'a str,
    link_href: &'a str,
    link_text: &'a str,
}

/// The dashboard root without a session: one sign-in link per Ready provider. `return_to` (a
/// checked path) is passed on to `/login`, to land there after signing in.
pub fn signed_out(providers: &[String], base: &str, note: Option<&str>, return_to: Option<&str>) -> Response {
    let back = return_to.map(|r| format!("&return={}", urlencode(r))).unwrap_or_default();
    let providers = providers.iter().map(|p| ProviderLink { name: p, query: format!("{}{back}", urlencode(p)) }).collect();
    render(StatusCode::OK, &SignedOut { chrome: Chrome::anonymous(base), providers, note })
}

/// A failed login. Never looks like success, always offers a way to try again.
pub fn failed(status: StatusCode, reason: &str, retry_href: &str) -> Response {
    let chrome = Chrome::anonymous(&base_of(retry_href));
    render(status, &Message { chrome, heading: "Login failed", reason, link_id: "retry", link_href: retry_href, link_text: "Try again" })
}

/// A request that was not carried out (the session could not be checked, a form from another
/// site): says why, and links back to the dashboard.
pub fn unavailable(status: StatusCode, reason: &str, base: &str) -> Response {
    let chrome = Chrome::anonymous(base);
    render(status, &Message { chrome, heading: "Infra", reason, link_id: "back", link_href: base, link_text: "Back to Infra" })
}

/// The path prefix a retry link lives under (`/login?...` → `/`, `/infra/login?...` → `/infra/`).
fn base_of(href: &str) -> String {
    let path = href.split('?').next().unwrap_or("/");
    match path.rfind('/') {
        Some(i) => path[..=i].to_string(),
        None => "/".to_string(),
    }
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn body(resp: Response) -> String {
        String::from_utf8(axum::body::to_bytes(resp.into_body(), 1 << 20).await.unwrap().to_vec()).unwrap()
    }

    #[tokio::test]
    async fn the_login_pages_keep_their_element_ids_and_escape() {
        let out = body(signed_out(&["ok<ta".into()], "/", Some("bye"), None)).await;
        let back = body(signed_out(&["okta".into()], "/", None, Some("/device?code=BCDF-GHJK"))).await;
        assert!(
            back.contains("href=\"/login?provider=okta&#38;return=%2Fdevice%3Fcode%3DBCDF-GHJK\"")
                || back.contains("href=\"/login?provider=okta&amp;return=%2Fdevice%3Fcode%3DBCDF-GHJK\""),
            "{back}"
        );
        assert!(out.contains("<a class=\"login\" href=\"/login?provider=ok%3Cta\">Sign in with ok&#60;ta</a>"), "{out}");
        let failed = failed(StatusCode::FORBIDDEN, "<denied>", "/infra/login?provider=okta");
        assert_eq!(failed.status(), StatusCode::FORBIDDEN);
        let failed = body(failed).await;
        assert!(failed.contains("id=\"reason\"") && failed.contains("&#60;denied&#62;"), "{failed}");
        assert!(failed.contains("id=\"retry\" href=\"/infra/login?provider=okta\""), "{failed}");
        assert!(failed.contains("href=\"/infra/assets/infra-"), "{failed}");
        let down = body(unavailable(StatusCode::SERVICE_UNAVAILABLE, "later", "/")).await;
        assert!(down.contains("id=\"back\" href=\"/\""), "{down}");
    }
}
