//! `infra login --device`: device login (RFC 8628) for machines without a browser. The CLI asks
//! the server for a code, prints it with the server's `/device` page, and polls until a signed-in
//! person approves or denies it there, or it expires. Chosen on its own when no browser can open
//! here: over SSH, or on Linux without a display.

use std::time::Duration;

use super::server_api::{ApiError, DeviceStart, LoginResponse, ServerApi};
use super::spinner;
use crate::device::{SLOW_DOWN_STEP_SECS, TokenError};

/// The line `infra login --device` prints with the approval link. Scripts and tests look for it,
/// so it does not change.
pub const APPROVE_URL_PREFIX: &str = "Open this URL to approve the login: ";
/// The line with the code to enter.
pub const CODE_PREFIX: &str = "Code: ";

/// Which login to run.
#[derive(Debug, PartialEq, Eq)]
pub enum Choice {
    /// The browser (or a printed URL) and the loopback listener.
    Loopback,
    /// Device login, and why it was chosen.
    Device(String),
}

/// Picks the login from the flags and the environment (`var` reads it). `--device` asks for
/// device login and `--no-browser` for the loopback one; otherwise device login is chosen where
/// a browser could not open on this machine: over SSH (the browser would open, if at all, on the
/// far side), or on Linux and the BSDs without a display, unless `$BROWSER` names one or this is
/// WSL (whose browser is Windows'). Pure.
pub fn choose(device: bool, no_browser: bool, var: impl Fn(&str) -> Option<String>, desktop_os: bool, wsl: bool) -> Choice {
    let set = |name: &str| var(name).is_some_and(|v| !v.is_empty());
    if device {
        return Choice::Device("--device".into());
    }
    if no_browser {
        return Choice::Loopback;
    }
    if let Some(v) = ["SSH_CONNECTION", "SSH_TTY"].into_iter().find(|v| set(v)) {
        return Choice::Device(format!("this is an SSH session (${v} is set), so a browser would not open here"));
    }
    if !desktop_os && !wsl && !set("DISPLAY") && !set("WAYLAND_DISPLAY") && !set("BROWSER") {
        return Choice::Device("there is no display here ($DISPLAY and $WAYLAND_DISPLAY are not set)".into());
    }
    Choice::Loopback
}

/// One answer of the token endpoint, as the poller sees it.
#[derive(Debug)]
pub enum Poll {
    Approved(Box<LoginResponse>),
    /// An RFC 8628 error, with the server's description.
    Refused(TokenError, String),
    /// No usable answer now (unreachable, an outage, rate limited): try again later.
    Transient(String),
    /// An answer that will not change by asking again.
    Failed(String),
}

impl Poll {
    pub fn from_result(result: Result<LoginResponse, ApiError>) -> Self {
        match result {
            Ok(r) => Self::Approved(Box::new(r)),
            Err(ApiError::Server { status, error, message }) => match TokenError::from_code(&error) {
                Some(e) => Self::Refused(e, message),
                None if status == 429 || status >= 500 => Self::Transient(format!("{message} (HTTP {status})")),
                None => Self::Failed(format!("the server refused the device login: {message} ({error})")),
            },
            Err(e @ ApiError::Unreachable { .. }) => Self::Transient(e.to_string()),
            Err(ApiError::Unexpected(m)) => Self::Failed(m),
        }
    }
}

/// What to do after a poll.
#[derive(Debug, PartialEq)]
pub enum Step {
    /// Poll again after this long.
    Wait(Duration),
    Done(LoginResponse),
    Fail(String),
}

/// The polling state machine (RFC 8628 §3.5): the interval, grown by `slow_down`, and how long
/// the code is good for. Pure.
#[derive(Debug)]
pub struct Poller {
    pub interval: Duration,
    /// Time left until the code expires.
    pub remaining: Duration,
}

impl Poller {
    pub fn new(interval: Duration, expires_in: Duration) -> Self {
        Self { interval: interval.max(Duration::from_secs(1)), remaining: expires_in }
    }

    /// `waited` is how long passed since the previous step.
    pub fn next(&mut self, poll: Poll, waited: Duration) -> Step {
        self.remaining = self.remaining.saturating_sub(waited);
        match poll {
            Poll::Approved(r) => Step::Done(*r),
            Poll::Refused(TokenError::AuthorizationPending, _) => self.wait(),
            Poll::Refused(TokenError::SlowDown, _) => {
                self.interval += Duration::from_secs(SLOW_DOWN_STEP_SECS);
                self.wait()
            }
            Poll::Refused(TokenError::AccessDenied, m) => {
                Step::Fail(format!("the login was denied ({m}); run `infra login` again if that was a mistake"))
            }
            Poll::Refused(TokenError::ExpiredToken, m) => Step::Fail(format!("{m}; run `infra login` again for a new code")),
            Poll::Refused(TokenError::InvalidGrant, m) => {
                Step::Fail(format!("the server no longer knows this login ({m}); run `infra login` again"))
            }
            Poll::Refused(e, m) => Step::Fail(format!("the server refused the device login: {m} ({})", e.code())),
            Poll::Transient(_) => {
                // Back off as if told to slow down: the server is struggling or limiting us.
                self.interval += Duration::from_secs(SLOW_DOWN_STEP_SECS);
                self.wait()
            }
            Poll::Failed(m) => Step::Fail(m),
        }
    }

    fn wait(&self) -> Step {
        if self.remaining.is_zero() {
            return Step::Fail("the code expired before it was approved; run `infra login` again for a new code".into());
        }
        Step::Wait(self.interval.min(self.remaining))
    }
}

/// This machine's name, as the approval page shows it. Best effort.
fn hostname() -> Option<String> {
    let from_file = std::fs::read_to_string("/proc/sys/kernel/hostname").or_else(|_| std::fs::read_to_string("/etc/hostname"));
    from_file.ok().or_else(|| std::env::var("HOSTNAME").ok()).or_else(|| std::env::var("COMPUTERNAME").ok()).map(|h| h.trim().to_string())
}

/// Runs a device login against `api` and returns the session once approved.
pub async fn login(api: &ServerApi) -> anyhow::Result<LoginResponse> {
    let start: DeviceStart = api
        .device_authorize(hostname().as_deref())
        .await
        .map_err(|e| anyhow::anyhow!("could not start a device login at {}: {e}", api.base))?;
    eprintln!("To log in, open {} in a browser on any device, sign in, and enter this code:", start.verification_uri);
    eprintln!("{CODE_PREFIX}{}", start.user_code);
    if let Some(complete) = &start.verification_uri_complete {
        eprintln!("{APPROVE_URL_PREFIX}{complete}");
    }
    let spin = spinner::start(format!("Waiting for approval of code {}", start.user_code));
    let mut poller = Poller::new(Duration::from_secs(start.interval), Duration::from_secs(start.expires_in));
    let mut wait = poller.interval;
    // A passing outage is reported once.
    let mut warned = false;
    let result = loop {
        tokio::select! {
            _ = tokio::time::sleep(wait) => {}
            _ = tokio::signal::ctrl_c() => break Err(anyhow::anyhow!("login cancelled")),
        }
        let started = std::time::Instant::now();
        let poll = Poll::from_result(api.device_token(&start.device_code).await);
        if let Poll::Transient(m) = &poll
            && !std::mem::replace(&mut warned, true)
        {
            eprintln!("warning: {m}; still waiting");
        }
        match poller.next(poll, wait + started.elapsed()) {
            Step::Wait(next) => wait = next,
            Step::Done(response) => break Ok(response),
            Step::Fail(message) => break Err(anyhow::anyhow!(message)),
        }
    };
    spin.finish_and_clear();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| vars.iter().find(|(k, _)| *k == name).map(|(_, v)| v.to_string())
    }

    #[test]
    fn device_login_is_chosen_without_a_display_or_over_ssh() {
        let linux = |vars, wsl| choose(false, false, env(vars), false, wsl);
        assert!(matches!(linux(&[], false), Choice::Device(why) if why.contains("no display")));
        assert_eq!(linux(&[("DISPLAY", ":0")], false), Choice::Loopback);
        assert_eq!(linux(&[("WAYLAND_DISPLAY", "wayland-0")], false), Choice::Loopback);
        assert_eq!(linux(&[("DISPLAY", "")], false), linux(&[], false), "an empty DISPLAY is no display");
        assert_eq!(linux(&[("BROWSER", "w3m")], false), Choice::Loopback, "$BROWSER names a browser");
        assert_eq!(linux(&[], true), Choice::Loopback, "WSL opens Windows' browser");
        let ssh = linux(&[("DISPLAY", "localhost:10.0"), ("SSH_CONNECTION", "203.0.113.9 50000 10.0.0.2 22")], false);
        assert!(matches!(&ssh, Choice::Device(why) if why.contains("SSH") && why.contains("SSH_CONNECTION")), "{ssh:?}");
        assert!(matches!(linux(&[("SSH_TTY", "/dev/pts/1")], false), Choice::Device(_)));
        // macOS and Windows always have a browser, except over SSH.
        assert_eq!(choose(false, false, env(&[]), true, false), Choice::Loopback);
        assert!(matches!(choose(false, false, env(&[("SSH_TTY", "/dev/pts/1")]), true, false), Choice::Device(_)));
        // The flags decide over the environment.
        assert_eq!(choose(true, false, env(&[("DISPLAY", ":0")]), true, false), Choice::Device("--device".into()));
        assert_eq!(choose(false, true, env(&[("SSH_TTY", "/dev/pts/1")]), false, false), Choice::Loopback);
    }

    fn response() -> LoginResponse {
        serde_json::from_value(serde_json::json!({
            "token": "ist_aaaaaaaaaaaa_secret", "user": "alice@example.com", "provider": "okta", "expiresAt": "2099-01-01T00:00:00Z"
        }))
        .unwrap()
    }

    fn refused(e: TokenError) -> Poll {
        Poll::Refused(e, "m".into())
    }

    #[test]
    fn polling_waits_slows_down_and_stops() {
        let s = Duration::from_secs;
        let mut p = Poller::new(s(5), s(600));
        assert_eq!(p.next(refused(TokenError::AuthorizationPending), s(5)), Step::Wait(s(5)));
        assert_eq!(p.next(refused(TokenError::SlowDown), s(5)), Step::Wait(s(10)), "slow_down adds 5 s");
        assert_eq!(p.next(refused(TokenError::AuthorizationPending), s(10)), Step::Wait(s(10)), "for all later polls");
        assert_eq!(p.next(refused(TokenError::SlowDown), s(10)), Step::Wait(s(15)));
        assert_eq!(p.next(Poll::Transient("down".into()), s(15)), Step::Wait(s(20)), "outages back off");
        match p.next(Poll::Approved(Box::new(response())), s(20)) {
            Step::Done(r) => assert_eq!(r.user, "alice@example.com"),
            other => panic!("{other:?}"),
        }
        // Never waits past the code's expiry, and gives up once it has passed.
        let mut p = Poller::new(s(5), s(7));
        assert_eq!(p.next(refused(TokenError::AuthorizationPending), s(5)), Step::Wait(s(2)));
        assert!(matches!(p.next(refused(TokenError::AuthorizationPending), s(2)), Step::Fail(m) if m.contains("expired")));
    }

    #[test]
    fn rfc_errors_end_the_login_with_a_clear_message() {
        let s = Duration::from_secs;
        let fail = |e| match Poller::new(s(5), s(600)).next(refused(e), s(5)) {
            Step::Fail(m) => m,
            other => panic!("{e:?}: {other:?}"),
        };
        assert!(fail(TokenError::AccessDenied).contains("denied"));
        assert!(fail(TokenError::ExpiredToken).contains("new code"));
        assert!(fail(TokenError::InvalidGrant).contains("no longer knows"));
        assert!(fail(TokenError::UnsupportedGrantType).contains("unsupported_grant_type"));
    }

    #[test]
    fn server_answers_map_to_polls() {
        let server = |status, error: &str| ApiError::Server { status, error: error.into(), message: "m".into() };
        assert!(matches!(Poll::from_result(Err(server(400, "authorization_pending"))), Poll::Refused(TokenError::AuthorizationPending, _)));
        assert!(matches!(Poll::from_result(Err(server(400, "slow_down"))), Poll::Refused(TokenError::SlowDown, _)));
        assert!(matches!(Poll::from_result(Err(server(400, "access_denied"))), Poll::Refused(TokenError::AccessDenied, _)));
        assert!(matches!(Poll::from_result(Err(server(400, "expired_token"))), Poll::Refused(TokenError::ExpiredToken, _)));
        assert!(matches!(Poll::from_result(Err(server(503, "unavailable"))), Poll::Transient(_)));
        assert!(matches!(Poll::from_result(Err(server(429, "rate_limited"))), Poll::Transient(_)));
        assert!(matches!(Poll::from_result(Err(server(404, "not_found"))), Poll::Failed(_)));
        let down = ApiError::Unreachable { server: "s".into(), detail: "refused".into() };
        assert!(matches!(Poll::from_result(Err(down)), Poll::Transient(_)));
        assert!(matches!(Poll::from_result(Ok(response())), Poll::Approved(_)));
    }
}
