//! Cross-site request forgery defence for the dashboard's state-changing requests. Two checks,
//! both required for a form:
//!
//! - The browser's `Origin` header (or, where a browser leaves it out, the `Referer`) must be
//!   this server's own origin. Browsers set both themselves and a page on another site cannot
//!   forge them. A request with neither header is refused: every current browser sends `Origin`
//!   with a POST. The SameSite=Lax session cookie already keeps most cross-site POSTs from
//!   carrying a session; this also covers sibling sites of the same registrable domain, to which
//!   Lax cookies are sent.
//! - Every form carries a token, the HMAC of the session id under the login-state key
//!   ([`super::state::StateKey::csrf_token`]): a page elsewhere cannot read it, so it cannot
//!   post it, even through a proxy or a browser that gets `Origin` wrong.
//!
//! `POST /api/logout` with the cookie (no form) is held to the origin check alone. Pure.

use axum::http::{HeaderMap, header};
use url::Url;

/// `Ok` when the request comes from a page of this server: its origin is the external URL's, or
/// the one the browser addressed (the `Host` header, for a replica reached by its own address).
pub fn check(headers: &HeaderMap, external: &Url) -> Result<(), String> {
    let text = |name| headers.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty());
    let (source, what) = match (text(header::ORIGIN), text(header::REFERER)) {
        (Some(o), _) => (o, "Origin"),
        (None, Some(r)) => (r, "Referer"),
        (None, None) => return Err("the request has neither an Origin nor a Referer header".into()),
    };
    let Some(from) = Url::parse(source).ok().filter(|u| matches!(u.scheme(), "http" | "https")) else {
        return Err(format!("its {what} {source:?} is not a web origin"));
    };
    if from.origin() == external.origin() {
        return Ok(());
    }
    let addressed = text(header::HOST).and_then(|host| Url::parse(&format!("{}://{host}/", from.scheme())).ok());
    if addressed.is_some_and(|a| a.origin() == from.origin()) {
        return Ok(());
    }
    Err(format!(
        "its {what} {} is not this server's origin {}",
        from.origin().ascii_serialization(),
        external.origin().ascii_serialization()
    ))
}

/// The form field that carries the token.
pub const FIELD: &str = "csrf";

/// Both checks for a form posted with the session `session_id`.
pub fn check_form(
    headers: &HeaderMap,
    external: &Url,
    key: &super::state::StateKey,
    session_id: &str,
    presented: Option<&str>,
) -> Result<(), String> {
    check(headers, external)?;
    match presented {
        None | Some("") => Err("the form carries no CSRF token".into()),
        Some(t) if key.csrf_token_matches(session_id, t) => Ok(()),
        Some(_) => Err("the form's CSRF token is not this session's".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.insert(*k, HeaderValue::from_static(v));
        }
        h
    }

    #[test]
    fn same_origin_posts_pass() {
        let ext = Url::parse("https://infra.example.com/").unwrap();
        assert!(check(&headers(&[("origin", "https://infra.example.com")]), &ext).is_ok());
        assert!(check(&headers(&[("origin", "https://infra.example.com:443")]), &ext).is_ok());
        assert!(check(&headers(&[("referer", "https://infra.example.com/some/page?x=1")]), &ext).is_ok());
        // A replica addressed directly (the Host the browser used).
        let local = Url::parse("http://127.0.0.1:18080/").unwrap();
        assert!(check(&headers(&[("origin", "http://127.0.0.1:18081"), ("host", "127.0.0.1:18081")]), &local).is_ok());
        assert!(check(&headers(&[("origin", "http://infra.example.com"), ("host", "infra.example.com:80")]), &local).is_ok());
    }

    #[test]
    fn a_form_needs_the_origin_and_its_sessions_token() {
        let ext = Url::parse("https://infra.example.com/").unwrap();
        let key = super::super::state::StateKey::from_bytes(&[7; 32]).unwrap();
        let token = key.csrf_token("s1");
        let ours = headers(&[("origin", "https://infra.example.com")]);
        assert!(check_form(&ours, &ext, &key, "s1", Some(&token)).is_ok());
        assert!(check_form(&ours, &ext, &key, "s1", None).unwrap_err().contains("no CSRF token"));
        assert!(check_form(&ours, &ext, &key, "s1", Some("")).is_err());
        assert!(check_form(&ours, &ext, &key, "s2", Some(&token)).unwrap_err().contains("not this session"));
        let theirs = headers(&[("origin", "https://evil.example")]);
        assert!(check_form(&theirs, &ext, &key, "s1", Some(&token)).is_err(), "a stolen token from elsewhere");
    }

    #[test]
    fn cross_origin_and_unknown_posts_are_refused() {
        let ext = Url::parse("https://infra.example.com/").unwrap();
        for h in [
            headers(&[("origin", "https://evil.example"), ("host", "infra.example.com")]),
            headers(&[("origin", "https://apps.example.com"), ("host", "infra.example.com")]),
            headers(&[("origin", "http://infra.example.com"), ("host", "infra.example.com:443")]),
            headers(&[("origin", "null"), ("host", "infra.example.com")]),
            headers(&[("referer", "https://evil.example/infra.example.com"), ("host", "infra.example.com")]),
            headers(&[("host", "infra.example.com")]),
            // Origin wins over a matching Referer.
            headers(&[("origin", "https://evil.example"), ("referer", "https://infra.example.com/")]),
        ] {
            assert!(check(&h, &ext).is_err(), "{h:?}");
        }
        let e = check(&headers(&[("origin", "https://evil.example")]), &ext).unwrap_err();
        assert!(e.contains("https://evil.example") && e.contains("https://infra.example.com"), "{e}");
    }
}
