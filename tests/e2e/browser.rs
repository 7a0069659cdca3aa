//! A headless "browser" for login flows, on reqwest: redirects are followed by hand (so a test can
//! stop at the one that leaves the IdP), cookies are kept per host as a browser would send them
//! back, and the stand-in IdP's CA (`INFRA_IDP_CA_FILE`) is trusted. It knows the stand-in's
//! login form (e2e/idp/README.md): `/interaction/{uid}` shows a form that POSTs `username` and
//! `password` to `/interaction/{uid}/login`, and Cancel POSTs to `/interaction/{uid}/abort`.
//!
//! Also here: the loopback ports `infra login` may use in these tests. The server and the IdP
//! accept `http://localhost:PORT` for every port in `LOGIN_PORTS` as a redirect URI.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use reqwest::Method;
use reqwest::header::{COOKIE, HeaderMap, LOCATION, SET_COOKIE};
use url::Url;

pub const LOGIN_PORTS: std::ops::RangeInclusive<u16> = 18301..=18316;

/// A port for a redirect URI nothing listens on (the browser stops before following it). Handed
/// out round-robin, so any number of tests may take them.
pub fn login_port() -> u16 {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed) % LOGIN_PORTS.len();
    LOGIN_PORTS.start() + n as u16
}

/// A port `infra login` will listen on, held by this test alone until dropped. Ports another
/// process holds (such as a leftover `infra login`) are skipped.
pub struct ListenPort(u16);

impl ListenPort {
    pub fn get(&self) -> u16 {
        self.0
    }
}

impl std::fmt::Display for ListenPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl Drop for ListenPort {
    fn drop(&mut self) {
        held().lock().unwrap().remove(&self.0);
    }
}

fn held() -> &'static Mutex<BTreeSet<u16>> {
    static HELD: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    &HELD
}

pub fn listen_port() -> ListenPort {
    let mut held = held().lock().unwrap();
    for port in LOGIN_PORTS {
        if held.contains(&port) {
            continue;
        }
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            held.insert(port);
            return ListenPort(port);
        }
    }
    panic!("every login port {LOGIN_PORTS:?} is taken (held: {held:?}); is a stale `infra login` running?")
}

/// One answer, with the URL it came from.
#[derive(Debug)]
pub struct Page {
    pub url: Url,
    pub status: u16,
    pub headers: HeaderMap,
    pub text: String,
}

impl Page {
    pub fn is_redirect(&self) -> bool {
        matches!(self.status, 301 | 302 | 303 | 307 | 308)
    }

    /// The `Location` of a redirect, resolved against the page's URL.
    pub fn location(&self) -> Option<Url> {
        let raw = self.headers.get(LOCATION)?.to_str().ok()?;
        self.url.join(raw).ok()
    }
}

/// Where following redirects ended.
#[derive(Debug)]
pub enum Outcome {
    /// A redirect pointed at the stop prefix; the URL was not fetched.
    Stopped(Url),
    /// A page that is not a redirect (or a redirect with no usable Location).
    Page(Page),
}

pub struct Browser {
    http: reqwest::Client,
    /// host → cookie name → value. Paths and ports are ignored (browsers ignore ports too).
    jar: Mutex<HashMap<String, BTreeMap<String, String>>>,
}

impl Default for Browser {
    fn default() -> Self {
        Self::new()
    }
}

const MAX_REDIRECTS: usize = 20;

impl Browser {
    pub fn new() -> Self {
        let mut builder = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(60))
            .user_agent("infra-e2e-browser");
        if let Ok(path) = std::env::var("INFRA_IDP_CA_FILE") {
            let pem = std::fs::read(&path).unwrap_or_else(|e| panic!("INFRA_IDP_CA_FILE {path}: {e}"));
            for cert in reqwest::Certificate::from_pem_bundle(&pem).unwrap_or_else(|e| panic!("INFRA_IDP_CA_FILE {path}: {e}")) {
                builder = builder.add_root_certificate(cert);
            }
        }
        Self { http: builder.build().expect("HTTP client"), jar: Mutex::new(HashMap::new()) }
    }

    fn store(&self, url: &Url, headers: &HeaderMap) {
        let Some(host) = url.host_str() else { return };
        let mut jar = self.jar.lock().unwrap();
        let cookies = jar.entry(host.to_string()).or_default();
        for line in headers.get_all(SET_COOKIE).iter().filter_map(|v| v.to_str().ok()) {
            if let Some((name, value, expired)) = parse_set_cookie(line) {
                if expired {
                    cookies.remove(&name);
                } else {
                    cookies.insert(name, value);
                }
            }
        }
    }

    fn cookie_header(&self, url: &Url) -> Option<String> {
        let jar = self.jar.lock().unwrap();
        let cookies = jar.get(url.host_str()?)?;
        (!cookies.is_empty()).then(|| cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; "))
    }

    async fn request(&self, method: Method, url: &Url, form: Option<&[(&str, &str)]>) -> Result<Page> {
        self.request_from(method, url, form, None).await
    }

    async fn request_from(&self, method: Method, url: &Url, form: Option<&[(&str, &str)]>, origin: Option<&str>) -> Result<Page> {
        let mut req = self.http.request(method.clone(), url.clone());
        if let Some(origin) = origin {
            req = req.header(reqwest::header::ORIGIN, origin);
        }
        if let Some(cookie) = self.cookie_header(url) {
            req = req.header(COOKIE, cookie);
        }
        if let Some(fields) = form {
            req = req.form(fields);
        }
        let resp = req.send().await.with_context(|| format!("{method} {url}"))?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        self.store(url, &headers);
        let text = resp.text().await.with_context(|| format!("reading {method} {url}"))?;
        Ok(Page { url: url.clone(), status, headers, text })
    }

    /// GET `url`, without following a redirect.
    pub async fn get(&self, url: &str) -> Result<Page> {
        let url = Url::parse(url).with_context(|| format!("not a URL: {url}"))?;
        self.request(Method::GET, &url, None).await
    }

    /// POST a form to `url`, without following a redirect.
    pub async fn post_form(&self, url: &str, fields: &[(&str, &str)]) -> Result<Page> {
        let url = Url::parse(url).with_context(|| format!("not a URL: {url}"))?;
        self.request(Method::POST, &url, Some(fields)).await
    }

    /// POST a form to `url` as a page of `origin` would (browsers send `Origin` with every POST),
    /// without following a redirect.
    pub async fn submit_from(&self, origin: &str, url: &str, fields: &[(&str, &str)]) -> Result<Page> {
        let url = Url::parse(url).with_context(|| format!("not a URL: {url}"))?;
        self.request_from(Method::POST, &url, Some(fields), Some(origin)).await
    }

    /// POST a form to `url` as a page of the same site would.
    pub async fn submit(&self, url: &str, fields: &[(&str, &str)]) -> Result<Page> {
        let origin = Url::parse(url).with_context(|| format!("not a URL: {url}"))?.origin().ascii_serialization();
        self.submit_from(&origin, url, fields).await
    }

    /// Follows `page`'s redirects until one points at `stop_prefix` (returned, not fetched) or
    /// an answer is not a redirect.
    pub async fn follow(&self, mut page: Page, stop_prefix: &str) -> Result<Outcome> {
        for _ in 0..MAX_REDIRECTS {
            if !page.is_redirect() {
                return Ok(Outcome::Page(page));
            }
            let Some(next) = page.location() else { return Ok(Outcome::Page(page)) };
            if has_prefix(&next, stop_prefix) {
                return Ok(Outcome::Stopped(next));
            }
            page = self.request(Method::GET, &next, None).await?;
        }
        bail!("more than {MAX_REDIRECTS} redirects, last at {}", page.url)
    }

    /// Opens `url` and follows redirects, stopping at `stop_prefix`.
    pub async fn start(&self, url: &str, stop_prefix: &str) -> Result<Outcome> {
        let parsed = Url::parse(url).with_context(|| format!("not a URL: {url}"))?;
        if has_prefix(&parsed, stop_prefix) {
            return Ok(Outcome::Stopped(parsed));
        }
        let page = self.request(Method::GET, &parsed, None).await?;
        self.follow(page, stop_prefix).await
    }

    /// Logs in at the stand-in IdP from `authorize_url` and returns the URL the IdP sends the
    /// browser back to (the first redirect starting with `stop_prefix`). With an IdP session
    /// already in this browser, no form is shown and none is needed.
    pub async fn login_at_idp(&self, authorize_url: &str, email: &str, password: &str, stop_prefix: &str) -> Result<Url> {
        let page = match self.start(authorize_url, stop_prefix).await? {
            Outcome::Stopped(url) => return Ok(url),
            Outcome::Page(page) => page,
        };
        let action = login_form(&page)?;
        let answer = self.post_form(action.as_str(), &[("username", email), ("password", password)]).await?;
        match self.follow(answer, stop_prefix).await? {
            Outcome::Stopped(url) => Ok(url),
            Outcome::Page(page) => match idp_error(&page.text) {
                Some(error) => bail!("the IdP refused the login of {email}: {error}"),
                None => bail!("after the login form, expected a redirect to {stop_prefix}, got {}", describe(&page)),
            },
        }
    }

    /// Opens `authorize_url` and presses Cancel on the IdP's login form; returns the URL the
    /// IdP sends the browser back to (with `error=access_denied`).
    pub async fn cancel_at_idp(&self, authorize_url: &str, stop_prefix: &str) -> Result<Url> {
        let page = match self.start(authorize_url, stop_prefix).await? {
            Outcome::Stopped(url) => bail!("the IdP sent the browser back without showing a login form: {url}"),
            Outcome::Page(page) => page,
        };
        login_form(&page)?;
        let action = form_action(&page, "/abort").ok_or_else(|| anyhow!("no Cancel form in {}", describe(&page)))?;
        let answer = self.post_form(action.as_str(), &[]).await?;
        match self.follow(answer, stop_prefix).await? {
            Outcome::Stopped(url) => Ok(url),
            Outcome::Page(page) => bail!("after Cancel, expected a redirect to {stop_prefix}, got {}", describe(&page)),
        }
    }
}

/// A fresh browser logs in at the IdP (see `Browser::login_at_idp`).
pub async fn login_at_idp(authorize_url: &str, email: &str, password: &str, stop_prefix: &str) -> Result<Url> {
    Browser::new().login_at_idp(authorize_url, email, password, stop_prefix).await
}

/// A fresh browser cancels at the IdP (see `Browser::cancel_at_idp`).
pub async fn cancel_at_idp(authorize_url: &str, stop_prefix: &str) -> Result<Url> {
    Browser::new().cancel_at_idp(authorize_url, stop_prefix).await
}

/// The value of query parameter `name` of `url`.
pub fn query_param(url: &Url, name: &str) -> Option<String> {
    url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned())
}

/// `url` with query parameter `name` set to `value` (other parameters kept, in order).
pub fn with_query_param(url: &Url, name: &str, value: &str) -> Url {
    let pairs: Vec<(String, String)> = url.query_pairs().map(|(k, v)| (k.into_owned(), v.into_owned())).collect();
    let mut out = url.clone();
    out.set_query(None);
    {
        let mut q = out.query_pairs_mut();
        for (k, v) in &pairs {
            q.append_pair(k, if k == name { value } else { v });
        }
        if !pairs.iter().any(|(k, _)| k == name) {
            q.append_pair(name, value);
        }
    }
    out
}

fn has_prefix(url: &Url, prefix: &str) -> bool {
    let s = url.as_str();
    let Some(rest) = s.strip_prefix(prefix) else { return false };
    // `http://localhost:1830` is not a prefix of `http://localhost:18301/...`.
    prefix.ends_with('/') || rest.is_empty() || rest.starts_with(['/', '?', '#'])
}

/// The login form's action on an IdP page, resolved against the page's URL.
fn login_form(page: &Page) -> Result<Url> {
    let looks_like_form = page.status == 200 && page.text.contains("name=\"username\"") && page.text.contains("name=\"password\"");
    if !looks_like_form {
        bail!("expected the IdP's login form, got {}", describe(page));
    }
    form_action(page, "/login").ok_or_else(|| anyhow!("no form posting to .../login in {}", describe(page)))
}

/// The action of the first `<form>` on `page` whose action ends with `suffix`.
pub fn form_action(page: &Page, suffix: &str) -> Option<Url> {
    let html = &page.text;
    let mut rest = html.as_str();
    while let Some(start) = rest.find("<form") {
        let tag_end = rest[start..].find('>')? + start;
        let tag = &rest[start..tag_end];
        rest = &rest[tag_end..];
        let Some(a) = tag.find("action=\"") else { continue };
        let value = &tag[a + "action=\"".len()..];
        let Some(end) = value.find('"') else { continue };
        let action = unescape(&value[..end]);
        let path_only = action.split(['?', '#']).next().unwrap_or_default();
        if path_only.ends_with(suffix) {
            return page.url.join(&action).ok();
        }
    }
    None
}

/// Where Infra's sign-in page sends a person who picks `provider` (its "Sign in with" link): the
/// page offers a choice whenever more than one provider is Ready.
pub fn chooser_link(page: &Page, provider: &str) -> Option<Url> {
    let wanted = format!("login?provider={provider}");
    page.text.split("href=\"").skip(1).filter_map(|rest| rest.split('"').next()).map(unescape).find_map(|href| {
        let query_start = href.find("login?provider=")?;
        let link = &href[query_start..];
        (link == wanted || link.starts_with(&format!("{wanted}&"))).then(|| page.url.join(&href).ok()).flatten()
    })
}

/// HTML character references back to text: the named ones, and the numeric ones askama writes
/// (`&#38;` for `&`, so a link's query string is only right once they are decoded).
fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        rest = &rest[at..];
        let reference = rest.find(';').map(|end| (&rest[1..end], end));
        let decoded = reference.and_then(|(name, end)| {
            let c = match name {
                "amp" => Some('&'),
                "quot" => Some('"'),
                "lt" => Some('<'),
                "gt" => Some('>'),
                "apos" => Some('\''),
                _ => name
                    .strip_prefix('#')
                    .and_then(|n| match n.strip_prefix(['x', 'X']) {
                        Some(hex) => u32::from_str_radix(hex, 16).ok(),
                        None => n.parse().ok(),
                    })
                    .and_then(char::from_u32),
            };
            c.map(|c| (c, end))
        });
        match decoded {
            Some((c, end)) => {
                out.push(c);
                rest = &rest[end + 1..];
            }
            None => {
                out.push('&');
                rest = &rest[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The text of the IdP form's `<p class="error" ...>`, if any.
fn idp_error(html: &str) -> Option<String> {
    let start = html.find("class=\"error\"")?;
    let open_end = html[start..].find('>')? + start + 1;
    let close = html[open_end..].find("</p>")? + open_end;
    Some(unescape(&html[open_end..close]))
}

fn describe(page: &Page) -> String {
    let text: String = page.text.split_whitespace().collect::<Vec<_>>().join(" ");
    let cut: String = text.chars().take(400).collect();
    format!("HTTP {} at {}: {cut}", page.status, page.url)
}

/// `name`, `value` and whether the cookie is being deleted (empty value, `Max-Age` ≤ 0, or an
/// `Expires` in the past).
fn parse_set_cookie(line: &str) -> Option<(String, String, bool)> {
    let mut parts = line.split(';').map(str::trim);
    let (name, value) = parts.next()?.split_once('=')?;
    let name = name.trim();
    if name.is_empty() {
        return None;
    }
    let value = value.trim().trim_matches('"');
    let mut expired = value.is_empty();
    for attr in parts {
        let (k, v) = attr.split_once('=').unwrap_or((attr, ""));
        match k.trim().to_ascii_lowercase().as_str() {
            "max-age" => expired |= v.trim().parse::<i64>().is_ok_and(|n| n <= 0),
            "expires" => {
                if let Ok(at) = jiff::fmt::rfc2822::parse(v.trim()) {
                    expired |= at.timestamp() <= jiff::Timestamp::now();
                }
            }
            _ => {}
        }
    }
    Some((name.to_string(), value.to_string(), expired))
}

#[test]
fn set_cookie_lines() {
    assert_eq!(
        parse_set_cookie("_interaction=abc; path=/interaction/x; expires=Thu, 01 Jan 2099 00:00:00 GMT; samesite=lax; secure; httponly"),
        Some(("_interaction".into(), "abc".into(), false))
    );
    assert_eq!(
        parse_set_cookie("_interaction=; path=/; expires=Thu, 01 Jan 1970 00:00:00 GMT"),
        Some(("_interaction".into(), "".into(), true))
    );
    assert_eq!(parse_set_cookie("a=b; Expires=Thu, 01 Jan 1970 00:00:00 GMT"), Some(("a".into(), "b".into(), true)));
    assert_eq!(parse_set_cookie("infra_session=x; Max-Age=0; Path=/"), Some(("infra_session".into(), "x".into(), true)));
    assert_eq!(parse_set_cookie("=x"), None);
}

#[test]
fn prefixes_and_forms() {
    let u = Url::parse("http://localhost:18301/?code=a&state=b").unwrap();
    assert!(has_prefix(&u, "http://localhost:18301"));
    assert!(!has_prefix(&u, "http://localhost:1830"));
    let cb = Url::parse("http://127.0.0.1:18080/login/callback?code=a").unwrap();
    assert!(has_prefix(&cb, "http://127.0.0.1:18080/login/callback"));
    assert_eq!(with_query_param(&u, "state", "x").as_str(), "http://localhost:18301/?code=a&state=x");

    let page = Page {
        url: Url::parse("https://localhost:18443/interaction/abc").unwrap(),
        status: 200,
        headers: HeaderMap::new(),
        text: r#"<form method="post" action="/interaction/abc/login" id="login-form"><input name="username"><input name="password"></form>
<form method="post" action="/interaction/abc/abort?x=1&amp;y=2" id="cancel-form"></form>"#
            .into(),
    };
    assert_eq!(login_form(&page).unwrap().as_str(), "https://localhost:18443/interaction/abc/login");
    assert_eq!(form_action(&page, "/abort").unwrap().as_str(), "https://localhost:18443/interaction/abc/abort?x=1&y=2");
    assert_eq!(
        idp_error(r#"<p class="error" id="error">Unable to sign in: wrong username or password.</p>"#).as_deref(),
        Some("Unable to sign in: wrong username or password.")
    );
}

#[test]
fn character_references_are_decoded_as_a_browser_does() {
    assert_eq!(unescape("/login?provider=okta&#38;return=%2Fdevice"), "/login?provider=okta&return=%2Fdevice");
    assert_eq!(unescape("a&amp;b &#x27;c&#39; &lt;d&gt; &quot;"), "a&b 'c' <d> \"");
    assert_eq!(unescape("fish & chips &bogus; &#xZZ; &"), "fish & chips &bogus; &#xZZ; &", "not references: kept");
}
