//! The local listener `infra login` receives the authorization response on (RFC 8252 §7.3:
//! a loopback redirect URI). `decide` is the pure part: it turns the callback's query into a code
//! to exchange or a reason to stop. The listener answers the browser only once the outcome is
//! known, so the page always tells the truth.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use tokio::sync::{mpsc, oneshot, watch};

// ---- the decision (pure) --------------------------------------------------------------------

/// Why a callback does not lead to a code exchange.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallbackError {
    /// `error=access_denied`: the person cancelled, or the provider refused them.
    AccessDenied { description: Option<String> },
    /// Any other `error` from the provider.
    Provider { error: String, description: Option<String> },
    /// `state` missing or not ours: the response belongs to another login (or to an attacker).
    StateMismatch,
    /// The response names another issuer than the provider we sent the person to (RFC 9207).
    IssuerMismatch { expected: String, got: String },
    /// `state` is right but there is no `code`.
    MissingCode,
}

impl std::fmt::Display for CallbackError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::AccessDenied { description } => {
                write!(f, "the identity provider denied the login (access_denied: {})", description.as_deref().unwrap_or("no description"))
            }
            Self::Provider { error, description: Some(d) } => write!(f, "the identity provider refused the login ({error}: {d})"),
            Self::Provider { error, description: None } => write!(f, "the identity provider refused the login ({error})"),
            Self::StateMismatch => write!(f, "state mismatch: this response does not belong to this login; run infra login again"),
            Self::IssuerMismatch { expected, got } => {
                write!(f, "the response came from issuer {got:?}, not from {expected:?} where this login started; run infra login again")
            }
            Self::MissingCode => write!(f, "the identity provider's response has no authorization code; run infra login again"),
        }
    }
}

impl std::error::Error for CallbackError {}

/// What a request on the loopback address means for the login.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// A good authorization response: exchange this code.
    Code(String),
    /// An authorization response that ends the login with this error.
    Failed(CallbackError),
    /// Not an authorization response at all (no `code`, `state` or `error`), such as someone
    /// opening `http://localhost:8301` by hand: answered, but the login keeps waiting.
    NotACallback,
}

/// Decides what to do with the query of a `GET /` on the loopback address. `expected_issuer` is
/// the provider's issuer; a response carrying another `iss` is refused (RFC 9207 §2.4).
/// Provider errors are reported before the state check: they carry no code, so nothing could be
/// misused, and the person learns the real reason (such as a redirect URI the provider does not
/// know, which some providers report without the state).
pub fn decide(params: &[(String, String)], expected_state: &str, expected_issuer: Option<&str>) -> Decision {
    let get = |name: &str| params.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let (code, state, error) = (get("code"), get("state"), get("error"));
    if code.is_none() && state.is_none() && error.is_none() {
        return Decision::NotACallback;
    }
    if let Some(error) = error {
        let description = get("error_description").filter(|d| !d.is_empty()).map(String::from);
        return Decision::Failed(if error == "access_denied" {
            CallbackError::AccessDenied { description }
        } else {
            CallbackError::Provider { error: error.to_string(), description }
        });
    }
    // Compared in constant time: the state is what ties the response to this login.
    if !state.is_some_and(|s| crate::keys::verify(s, expected_state)) {
        return Decision::Failed(CallbackError::StateMismatch);
    }
    if let (Some(expected), Some(got)) = (expected_issuer, get("iss"))
        && expected.trim_end_matches('/') != got.trim_end_matches('/')
    {
        return Decision::Failed(CallbackError::IssuerMismatch { expected: expected.into(), got: got.into() });
    }
    match code {
        Some(c) if !c.is_empty() => Decision::Code(c.to_string()),
        _ => Decision::Failed(CallbackError::MissingCode),
    }
}

// ---- the pages --------------------------------------------------------------------------------

/// What the browser tab is told at the end.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PageOutcome {
    LoggedIn { user: String },
    Failed { reason: String },
}

pub fn page(outcome: &PageOutcome) -> (StatusCode, String) {
    let (status, title, body) = match outcome {
        PageOutcome::LoggedIn { user } => (
            StatusCode::OK,
            "Logged in to Infra",
            format!(
                "<h1>Logged in</h1>\n<p id=\"result\">You are logged in to Infra as {}. You can close this tab.</p>",
                crate::html::escape(user)
            ),
        ),
        PageOutcome::Failed { reason } => (
            StatusCode::BAD_REQUEST,
            "Login failed",
            format!(
                "<h1>Login failed</h1>\n<p id=\"reason\">{}</p>\n<p>Go back to the terminal for details. You can close this tab.</p>",
                crate::html::escape(reason)
            ),
        ),
    };
    (status, html(title, &body))
}

fn html(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{title}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:36em;margin:4em auto;padding:0 1em}}</style>\
         </head><body>\n{body}\n</body></html>\n"
    )
}

fn respond(status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            // The page's URL holds the code: never send it on as a referrer.
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CONTENT_SECURITY_POLICY, "default-src 'none'; style-src 'unsafe-inline'"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        body,
    )
        .into_response()
}

// ---- the listener -----------------------------------------------------------------------------

/// A finished callback as the login flow sees it.
pub enum Callback {
    /// Exchange the code, then send what the tab should say through `reply`; the browser's
    /// request is held open until then.
    Code { code: String, reply: oneshot::Sender<PageOutcome> },
    /// The login ends with this error; the tab has been told already.
    Failed(CallbackError),
}

impl std::fmt::Debug for Callback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Code { .. } => f.write_str("Callback::Code(<redacted>)"),
            Self::Failed(e) => f.debug_tuple("Callback::Failed").field(e).finish(),
        }
    }
}

struct Shared {
    state: String,
    issuer: Option<String>,
    /// Taken by the first request that ends the wait; later ones are told the login is over.
    sender: Mutex<Option<mpsc::Sender<Callback>>>,
}

/// The bound listener. Nothing is served until `serve`.
pub struct Loopback {
    listeners: Vec<tokio::net::TcpListener>,
}

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error(
        "port {0} is already in use — is another `infra login` running? Pass --listen-port to use another port \
         (it must also be registered as a redirect URI)"
    )]
    InUse(u16),
    #[error("cannot listen on {addr}: {source}")]
    Other { addr: SocketAddr, source: std::io::Error },
}

impl Loopback {
    /// Listens on 127.0.0.1:`port` and, when the machine has IPv6 loopback, [::1]:`port`:
    /// browsers resolve `localhost` to either.
    pub async fn bind(port: u16) -> Result<Self, BindError> {
        let v4 = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let v6 = SocketAddr::from((Ipv6Addr::LOCALHOST, port));
        let first = bind_one(v4).await?;
        let mut listeners = vec![first];
        match bind_one(v6).await {
            Ok(l) => listeners.push(l),
            // Another process on [::1]:port would receive the browser's callback instead of us.
            Err(BindError::InUse(p)) => return Err(BindError::InUse(p)),
            // No IPv6 loopback on this machine: 127.0.0.1 is all a browser can reach.
            Err(BindError::Other { .. }) => {}
        }
        Ok(Self { listeners })
    }

    /// Serves callbacks until `shutdown` flips. The first authorization response (good or bad)
    /// arrives on the returned channel.
    pub fn serve(
        self,
        state: String,
        issuer: Option<String>,
        shutdown: watch::Receiver<bool>,
    ) -> (mpsc::Receiver<Callback>, Vec<tokio::task::JoinHandle<()>>) {
        let (tx, rx) = mpsc::channel(1);
        let shared = Arc::new(Shared { state, issuer, sender: Mutex::new(Some(tx)) });
        let app = Router::new().route("/", get(callback)).fallback(not_found).with_state(shared);
        let tasks = self
            .listeners
            .into_iter()
            .map(|listener| {
                let app = app.clone();
                let mut shutdown = shutdown.clone();
                tokio::spawn(async move {
                    let stop = async move {
                        let _ = shutdown.wait_for(|s| *s).await;
                    };
                    let _ = axum::serve(listener, app).with_graceful_shutdown(stop).await;
                })
            })
            .collect();
        (rx, tasks)
    }
}

async fn bind_one(addr: SocketAddr) -> Result<tokio::net::TcpListener, BindError> {
    tokio::net::TcpListener::bind(addr).await.map_err(|e| match e.kind() {
        std::io::ErrorKind::AddrInUse => BindError::InUse(addr.port()),
        _ => BindError::Other { addr, source: e },
    })
}

async fn not_found() -> Response {
    (StatusCode::NOT_FOUND, [(header::CONTENT_TYPE, "text/plain; charset=utf-8")], "not found\n").into_response()
}

async fn callback(State(shared): State<Arc<Shared>>, Query(params): Query<Vec<(String, String)>>) -> Response {
    let decision = decide(&params, &shared.state, shared.issuer.as_deref());
    if decision == Decision::NotACallback {
        let body = html("Infra login", "<h1>Infra login</h1>\n<p>Waiting for the identity provider to send you back here.</p>");
        return respond(StatusCode::OK, body);
    }
    let Some(sender) = shared.sender.lock().expect("not poisoned").take() else {
        let (status, body) = page(&PageOutcome::Failed {
            reason: "This login has already finished. Go back to the terminal, and run infra login again if needed.".into(),
        });
        return respond(status, body);
    };
    match decision {
        Decision::Code(code) => {
            let (reply, outcome) = oneshot::channel();
            if sender.send(Callback::Code { code, reply }).await.is_err() {
                let (status, body) = page(&PageOutcome::Failed { reason: "infra login is no longer waiting for this login.".into() });
                return respond(status, body);
            }
            let outcome = outcome.await.unwrap_or_else(|_| PageOutcome::Failed {
                reason: "infra login stopped before the login finished; see the terminal.".into(),
            });
            let (status, body) = page(&outcome);
            respond(status, body)
        }
        Decision::Failed(err) => {
            let (status, body) = page(&PageOutcome::Failed { reason: err.to_string() });
            let _ = sender.send(Callback::Failed(err)).await;
            respond(status, body)
        }
        Decision::NotACallback => unreachable!("answered above"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATE: &str = "abcdefghijklmnopqrstuvwxyz012345";

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn a_good_response_yields_the_code() {
        assert_eq!(decide(&q(&[("code", "c0de"), ("state", STATE)]), STATE, None), Decision::Code("c0de".into()));
        let iss = "https://localhost:18443/oauth2/default";
        assert_eq!(decide(&q(&[("code", "c"), ("state", STATE), ("iss", iss)]), STATE, Some(iss)), Decision::Code("c".into()));
        // No `iss` in the response: nothing to compare (most providers do not send it).
        assert_eq!(decide(&q(&[("code", "c"), ("state", STATE)]), STATE, Some(iss)), Decision::Code("c".into()));
    }

    #[test]
    fn access_denied_carries_the_description() {
        let d = decide(
            &q(&[("error", "access_denied"), ("error_description", "End-User cancelled the sign-in"), ("state", STATE)]),
            STATE,
            None,
        );
        let Decision::Failed(e) = d else { panic!("{d:?}") };
        assert_eq!(e.to_string(), "the identity provider denied the login (access_denied: End-User cancelled the sign-in)");
        let d = decide(&q(&[("error", "access_denied")]), STATE, None);
        assert_eq!(d, Decision::Failed(CallbackError::AccessDenied { description: None }));
    }

    #[test]
    fn other_provider_errors_are_shown() {
        let d = decide(&q(&[("error", "invalid_scope"), ("error_description", "groups is not allowed"), ("state", STATE)]), STATE, None);
        let Decision::Failed(e) = d else { panic!("{d:?}") };
        assert_eq!(e.to_string(), "the identity provider refused the login (invalid_scope: groups is not allowed)");
    }

    #[test]
    fn wrong_or_missing_state_is_a_mismatch_and_the_code_is_not_used() {
        for params in [q(&[("code", "c"), ("state", "someone-elses")]), q(&[("code", "c")]), q(&[("code", "c"), ("state", "")])] {
            let d = decide(&params, STATE, None);
            assert_eq!(d, Decision::Failed(CallbackError::StateMismatch), "{params:?}");
        }
        assert_eq!(
            CallbackError::StateMismatch.to_string(),
            "state mismatch: this response does not belong to this login; run infra login again"
        );
    }

    #[test]
    fn missing_code_and_wrong_issuer() {
        assert_eq!(decide(&q(&[("state", STATE)]), STATE, None), Decision::Failed(CallbackError::MissingCode));
        assert_eq!(decide(&q(&[("state", STATE), ("code", "")]), STATE, None), Decision::Failed(CallbackError::MissingCode));
        let d = decide(&q(&[("code", "c"), ("state", STATE), ("iss", "https://evil.example.com")]), STATE, Some("https://idp.example.com"));
        assert!(matches!(d, Decision::Failed(CallbackError::IssuerMismatch { .. })), "{d:?}");
    }

    #[test]
    fn requests_without_any_oauth_parameter_do_not_end_the_login() {
        assert_eq!(decide(&[], STATE, None), Decision::NotACallback);
        assert_eq!(decide(&q(&[("utm_source", "x")]), STATE, None), Decision::NotACallback);
    }

    #[test]
    fn pages_escape_what_they_show() {
        let (status, body) = page(&PageOutcome::LoggedIn { user: "alice@example.com".into() });
        assert_eq!(status, StatusCode::OK);
        assert!(body.contains("You are logged in to Infra as alice@example.com. You can close this tab."), "{body}");
        let (status, body) = page(&PageOutcome::Failed { reason: "<script>alert(1)</script>".into() });
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(body.contains("&lt;script&gt;") && !body.contains("<script>"), "{body}");
    }

    async fn get(port: u16, path_and_query: &str) -> (u16, String) {
        let resp = reqwest::get(format!("http://127.0.0.1:{port}{path_and_query}")).await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    #[tokio::test]
    async fn the_listener_holds_the_page_until_the_outcome_is_known() {
        let lb = Loopback::bind(0).await.unwrap();
        let port = lb.listeners[0].local_addr().unwrap().port();
        let (stop_tx, stop_rx) = watch::channel(false);
        let (mut rx, tasks) = lb.serve(STATE.into(), None, stop_rx);

        assert_eq!(get(port, "/favicon.ico").await.0, 404);
        assert_eq!(get(port, "/").await.0, 200);

        let query = format!("/?code=the-code&state={STATE}");
        let browser = tokio::spawn(async move { get(port, &query).await });
        let Some(Callback::Code { code, reply }) = rx.recv().await else { panic!("no code") };
        assert_eq!(code, "the-code");
        assert!(!browser.is_finished());
        reply.send(PageOutcome::LoggedIn { user: "alice@example.com".into() }).unwrap();
        let (status, body) = browser.await.unwrap();
        assert_eq!(status, 200);
        assert!(body.contains("alice@example.com"));

        // Only the first response counts.
        let (status, body) = get(port, &format!("/?code=again&state={STATE}")).await;
        assert_eq!(status, 400);
        assert!(body.contains("already finished"), "{body}");

        stop_tx.send(true).unwrap();
        for t in tasks {
            t.await.unwrap();
        }
    }

    #[tokio::test]
    async fn a_bad_response_is_reported_to_both_sides() {
        let lb = Loopback::bind(0).await.unwrap();
        let port = lb.listeners[0].local_addr().unwrap().port();
        let (_stop_tx, stop_rx) = watch::channel(false);
        let (mut rx, _tasks) = lb.serve(STATE.into(), None, stop_rx);
        let (status, body) = get(port, "/?code=c&state=forged").await;
        assert_eq!(status, 400);
        assert!(body.contains("state mismatch"), "{body}");
        assert!(matches!(rx.recv().await, Some(Callback::Failed(CallbackError::StateMismatch))));
    }

    #[tokio::test]
    async fn a_port_in_use_is_named() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = Loopback::bind(port).await.err().expect("bind must fail");
        assert_eq!(
            err.to_string(),
            format!(
                "port {port} is already in use — is another `infra login` running? Pass --listen-port to use another port \
                 (it must also be registered as a redirect URI)"
            )
        );
    }
}
