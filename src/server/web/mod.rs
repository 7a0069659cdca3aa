//! What every dashboard page shares: the layout's data ([`Chrome`]), rendering a template into a
//! response with the dashboard's headers, and the embedded stylesheet and script.

pub mod assets;

use askama::Template;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};

pub use assets::Assets;

/// The Content-Security-Policy of every page: the stylesheet and the one script, from this
/// server only; no inline script or style, no framing, forms post only here.
pub const CSP: &str = "default-src 'none'; style-src 'self'; script-src 'self'; img-src 'self'; connect-src 'self'; \
                       form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// What `templates/base.html` needs besides the page itself.
pub struct Chrome {
    /// The external URL's path, ending in `/`: every link is relative to it.
    pub base: String,
    pub assets: &'static Assets,
    /// The navigation, for a signed-in person; `None` on the sign-in and error pages.
    pub nav: Option<Nav>,
    /// Which navigation entry the page belongs to (`home`, `providers`, `users`, `groups`, `grants`).
    pub section: &'static str,
}

/// The signed-in person and what the navigation shows them: only what they may use.
pub struct Nav {
    pub user: String,
    pub provider: String,
    /// The CSRF token the sign-out form (and every other form) carries.
    pub csrf: String,
    pub providers: bool,
    pub users: bool,
    pub groups: bool,
    pub grants: bool,
}

impl Chrome {
    /// The layout of a page shown without a session (sign-in, errors).
    pub fn anonymous(base: &str) -> Self {
        Chrome { base: base.to_string(), assets: Assets::get(), nav: None, section: "" }
    }
}

/// `template` rendered with `status`. Every page is personal or says something about this
/// moment, so none is stored by caches; none may be framed.
pub fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => with_page_headers((status, Html(html)).into_response()),
        Err(e) => {
            // Templates are checked when the binary is built; this is a bug, not a bad request.
            tracing::error!(error = %e, "rendering a dashboard page failed");
            with_page_headers((StatusCode::INTERNAL_SERVER_ERROR, "the page could not be rendered\n").into_response())
        }
    }
}

/// The fields of an `application/x-www-form-urlencoded` body (the last of a repeated name wins).
pub fn form(body: &[u8]) -> std::collections::HashMap<String, String> {
    url::form_urlencoded::parse(body).into_owned().collect()
}

fn with_page_headers(mut resp: Response) -> Response {
    let h = resp.headers_mut();
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CSP));
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Template)]
    #[template(source = "{% extends \"base.html\" %}{% block content %}<p id=\"x\">{{ text }}</p>{% endblock %}", ext = "html")]
    struct Probe {
        chrome: Chrome,
        text: &'static str,
    }

    fn nav(providers: bool) -> Nav {
        Nav { user: "kate".into(), provider: "okta".into(), csrf: "tok".into(), providers, users: true, groups: false, grants: false }
    }

    #[test]
    fn the_layout_escapes_links_its_assets_and_shows_only_allowed_navigation() {
        let chrome = Chrome { base: "/infra/".into(), assets: Assets::get(), nav: Some(nav(false)), section: "users" };
        let html = Probe { chrome, text: "<b>" }.render().unwrap();
        assert!(html.contains("<p id=\"x\">&#60;b&#62;</p>") || html.contains("<p id=\"x\">&lt;b&gt;</p>"), "{html}");
        assert!(html.contains(&format!("href=\"/infra/{}\"", Assets::get().css)), "{html}");
        assert!(html.contains("id=\"nav-users\" href=\"/infra/users\" aria-current=\"page\""), "{html}");
        assert!(!html.contains("nav-providers") && !html.contains("nav-groups") && !html.contains("nav-grants"), "{html}");
        assert!(html.contains("name=\"csrf\" value=\"tok\""), "{html}");
        assert!(!html.contains("<style") && !html.contains("<script>"), "nothing inline: {html}");
        let anonymous = Probe { chrome: Chrome::anonymous("/"), text: "" }.render().unwrap();
        assert!(!anonymous.contains("logout") && !anonymous.contains("<nav"), "{anonymous}");
    }

    #[test]
    fn pages_are_not_stored_framed_or_scripted_inline() {
        let chrome = Chrome::anonymous("/");
        let resp = render(StatusCode::OK, &Probe { chrome, text: "" });
        assert_eq!(resp.headers()["cache-control"], "no-store");
        let csp = resp.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"), "{csp}");
    }
}
