//! The few HTML pages the login needs. Everything interpolated is escaped.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

use super::flow::WhoAmI;
use crate::html::escape;

fn layout(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\">\
         <title>{}</title><style>body{{font-family:system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}}\
         .error{{color:#a00}}dt{{font-weight:bold}}dd{{margin:0 0 .5rem}}a.login,button{{display:inline-block;margin:.25rem 0;padding:.5rem 1rem}}</style></head>\
         <body>{body}</body></html>\n",
        escape(title)
    )
}

fn no_store(status: StatusCode, html: String) -> Response {
    (
        status,
        [
            ("cache-control", "no-store"),
            ("x-frame-options", "DENY"),
            ("content-security-policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"),
        ],
        Html(html),
    )
        .into_response()
}

/// A page of the dashboard's layout with `body` (HTML the caller escaped).
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    no_store(status, layout(title, body))
}

/// The dashboard root for a signed-in person. (The dashboard itself comes later; this page says
/// who is logged in.)
pub fn signed_in(who: &WhoAmI, base: &str) -> Response {
    let groups: String = who.groups.iter().map(|g| format!("<li>{}</li>", escape(g))).collect();
    let body = format!(
        "<h1>Infra</h1><p>Signed in as <span id=\"user\">{}</span> through <span id=\"provider\">{}</span>.</p>\
         <h2>Groups</h2><ul id=\"groups\">{groups}</ul>\
         <p>Session expires at <time id=\"expires\">{}</time>.</p>\
         <form method=\"post\" action=\"{}logout\"><button type=\"submit\" id=\"logout\">Sign out</button></form>",
        escape(&who.user),
        escape(&who.provider),
        who.expires_at,
        escape(base),
    );
    no_store(StatusCode::OK, layout("Infra", &body))
}

/// The dashboard root without a session: one sign-in link per Ready provider.
/// `return_to` (a checked path) is passed on to `/login`, to land there after signing in.
pub fn signed_out(providers: &[String], base: &str, note: Option<&str>, return_to: Option<&str>) -> Response {
    let back = return_to.map(|r| format!("&return={}", urlencode(r))).unwrap_or_default();
    let links: String = providers
        .iter()
        .map(|p| {
            format!(
                "<p><a class=\"login\" href=\"{}login?provider={}{}\">Sign in with {}</a></p>",
                escape(base),
                escape(&urlencode(p)),
                escape(&back),
                escape(p)
            )
        })
        .collect();
    let links = if links.is_empty() {
        "<p>No identity provider is ready yet. An administrator can check with <code>kubectl get idp</code>.</p>".to_string()
    } else {
        links
    };
    let note = note.map(|n| format!("<p class=\"note\">{}</p>", escape(n))).unwrap_or_default();
    no_store(StatusCode::OK, layout("Sign in to Infra", &format!("<h1>Sign in to Infra</h1>{note}{links}")))
}

/// A failed login. Never looks like success, always offers a way to try again.
pub fn failed(status: StatusCode, reason: &str, retry_href: &str) -> Response {
    let body = format!(
        "<h1>Login failed</h1><p id=\"reason\" class=\"error\">{}</p><p><a id=\"retry\" href=\"{}\">Try again</a></p>",
        escape(reason),
        escape(retry_href)
    );
    no_store(status, layout("Login failed", &body))
}

/// A request that was not carried out (the session could not be checked, a form from another
/// site): says why, and links back to the dashboard.
pub fn unavailable(status: StatusCode, reason: &str, base: &str) -> Response {
    let body = format!(
        "<h1>Infra</h1><p id=\"reason\" class=\"error\">{}</p><p><a id=\"back\" href=\"{}\">Back to Infra</a></p>",
        escape(reason),
        escape(base)
    );
    no_store(status, layout("Infra", &body))
}

pub fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}
