//! Device login (`infra login --device`, RFC 8628) against the real API server and the stand-in
//! Okta: the CLI (or a client speaking the protocol) asks for a code, a person signed in to the
//! dashboard approves or denies it on `/device`, and the poller gets a session, `access_denied`,
//! `expired_token`, `slow_down` or `invalid_grant` for a code already used. Approvals are forms
//! with a CSRF token from an Infra page; user codes cannot be guessed quickly.

use std::time::{Duration, Instant};

use infra::api::{DeviceAuthorization, DeviceState};
use kube::Api;
use serde_json::Value;

use crate::browser::Browser;
use crate::cli_login::{Home, Login};
use crate::harness::{client, env, extra_server, http};
use crate::idp::{IdpUser, new_user};

const APPROVE_URL: &str = "Open this URL to approve the login: ";
const CODE: &str = "Code: ";
/// The page's one answer for a code that names no pending login.
const NOT_VALID: &str = "That code is not valid.";
const GRANT_TYPE: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// A server of the test's own, stopped when the test ends, passed or not (a server left running
/// would hold the suite's lock).
struct OwnServer(std::process::Child);

impl OwnServer {
    async fn start(port: u16, args: &[&str], log: &str) -> Self {
        Self(extra_server(port, args, &[], Some(log)).await)
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Answers as they are, redirects not followed.
fn raw() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(Duration::from_secs(10)).build().unwrap()
}

fn origin(server: &str) -> String {
    url::Url::parse(server).unwrap().origin().ascii_serialization()
}

/// A person signed in to the dashboard (their session cookie), who approves and denies.
struct Person {
    user: IdpUser,
    cookie: String,
}

impl Person {
    async fn sign_in(prefix: &str) -> Self {
        let user = new_user(prefix, &["engineering"]).await;
        let server = &env().server_urls[0];
        let browser = Browser::new();
        let callback = browser
            .login_at_idp(&format!("{server}/login?provider=okta"), &user.email, &user.password, &format!("{server}/login/callback"))
            .await
            .unwrap();
        let landed = browser.get(callback.as_str()).await.unwrap();
        assert_eq!(landed.status, 303, "{}", landed.text);
        let cookie = session_cookie(&landed.headers).expect("a session cookie");
        Self { user, cookie }
    }

    /// `GET /device?code=...` on `server` as this person; status and page.
    async fn open(&self, server: &str, code: &str, from: Option<&str>) -> (u16, String) {
        let mut req = raw().get(format!("{server}/device")).query(&[("code", code)]).header("cookie", &self.cookie);
        if let Some(ip) = from {
            req = req.header("x-forwarded-for", ip);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// Posts the approval form of `page` (a confirmation page) with `decision`, from `origin`
    /// with `csrf` (None: the page's own token).
    async fn post(&self, server: &str, code: &str, decision: &str, origin: Option<&str>, csrf: Option<&str>, page: &str) -> (u16, String) {
        let token = csrf.map(str::to_string).unwrap_or_else(|| csrf_of(page));
        let mut req = raw().post(format!("{server}/device")).header("cookie", &self.cookie).form(&[
            ("code", code),
            ("csrf", &token),
            ("decision", decision),
        ]);
        if let Some(o) = origin {
            req = req.header("origin", o);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.text().await.unwrap())
    }

    /// Opens the code's page and presses `decision` on it, as the page would post it.
    async fn decide(&self, server: &str, code: &str, decision: &str) -> String {
        let (status, page) = self.open(server, code, None).await;
        assert_eq!(status, 200, "{page}");
        assert!(page.contains("Approve this login?"), "{page}");
        let (status, done) = self.post(server, code, decision, Some(&origin(server)), None, &page).await;
        assert_eq!(status, 200, "{done}");
        done
    }
}

fn session_cookie(headers: &reqwest::header::HeaderMap) -> Option<String> {
    headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|c| c.starts_with("infra_session=") && !c.starts_with("infra_session=;"))
        .map(|c| c.split(';').next().unwrap().to_string())
}

fn csrf_of(page: &str) -> String {
    page.split("name=\"csrf\" value=\"").nth(1).and_then(|r| r.split('"').next()).expect("a CSRF token on the page").to_string()
}

/// `POST /api/device/authorize` on `server`.
async fn authorize(server: &str) -> Value {
    let resp = http()
        .post(format!("{server}/api/device/authorize"))
        .header("user-agent", "device-e2e/1")
        .form(&[("client_id", "infra-cli"), ("hostname", "e2e-host")])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    assert_eq!(resp.headers()["cache-control"], "no-store");
    resp.json().await.unwrap()
}

/// One poll of `POST /api/device/token`: status and body.
async fn poll(server: &str, device_code: &str) -> (u16, Value) {
    let resp = http()
        .post(format!("{server}/api/device/token"))
        .form(&[("grant_type", GRANT_TYPE), ("device_code", device_code)])
        .send()
        .await
        .unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

async fn device_api() -> Api<DeviceAuthorization> {
    Api::namespaced(client().await, &env().namespace)
}

/// The stored authorizations of `device_code` (found by its hash, all that is stored of it).
async fn stored(device_code: &str) -> Vec<DeviceAuthorization> {
    let list = device_api().await.list(&Default::default()).await.unwrap();
    list.items.into_iter().filter(|a| a.spec.device_code_hash == infra::keys::hash_hex(device_code)).collect()
}

#[tokio::test]
async fn the_cli_logs_in_once_a_signed_in_person_approves() {
    let person = new_user("device-approve", &["engineering"]).await;
    let server = env().server_urls[0].clone();
    let home = Home::new();
    let login = Login::start(&home, &["--device", "--server", &server]);
    let code = login.line(CODE);
    let url = login.line(APPROVE_URL);
    assert_eq!(url, format!("{server}/device?code={code}"));
    assert_eq!(code.len(), 9, "{code}");

    // A browser without a session is sent through the provider and back to this very page.
    let browser = Browser::new();
    let landed = browser.get(&url).await.unwrap();
    assert_eq!(landed.status, 303, "{}", landed.text);
    let to_login = landed.location().unwrap();
    assert_eq!(to_login.path(), "/login");
    assert_eq!(crate::browser::query_param(&to_login, "return").as_deref(), Some(format!("/device?code={code}").as_str()));
    // Other tests' providers may be Ready at this moment: then the sign-in page offers a choice,
    // and the person picks the provider, which keeps the way back.
    let sign_in = browser.get(to_login.as_str()).await.unwrap();
    let to_idp = match sign_in.status {
        200 => crate::browser::chooser_link(&sign_in, "okta").unwrap_or_else(|| panic!("no link to okta: {}", sign_in.text)),
        303 => sign_in.location().unwrap(),
        status => panic!("the sign-in page answered {status}: {}", sign_in.text),
    };
    let callback =
        browser.login_at_idp(to_idp.as_str(), &person.email, &person.password, &format!("{server}/login/callback")).await.unwrap();
    let back = browser.get(callback.as_str()).await.unwrap();
    assert_eq!(back.status, 303, "{}", back.text);
    assert_eq!(back.location().unwrap().as_str(), url, "the login returns to the device page");
    let cookie = session_cookie(&back.headers).unwrap();

    // The page says which machine asked.
    let page = raw().get(&url).header("cookie", &cookie).send().await.unwrap().text().await.unwrap();
    assert!(page.contains(&format!("<dd id=\"code\" class=\"mono\">{code}</dd>")), "{page}");
    assert!(page.contains("<dd id=\"address\" class=\"mono\">127.0.0.1</dd>"), "{page}");
    assert!(page.contains("id=\"hostname\""), "the CLI sends its host name: {page}");
    assert!(page.contains("infra-cli/"), "and its user agent: {page}");
    assert!(page.contains("<time id=\"requested\">"), "{page}");
    let approved = raw()
        .post(format!("{server}/device"))
        .header("cookie", &cookie)
        .header("origin", origin(&server))
        .form(&[("code", code.as_str()), ("csrf", &csrf_of(&page)), ("decision", "approve")])
        .send()
        .await
        .unwrap();
    assert_eq!(approved.status().as_u16(), 200);
    assert!(approved.text().await.unwrap().contains("Login approved"));

    let run = login.finish(Duration::from_secs(30)).await;
    assert_eq!(run.status, 0, "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(run.stderr.contains("Using device login: --device."), "{}", run.stderr);
    assert!(run.stdout.contains(&format!("Logged in as {} through okta", person.email)), "{}", run.stdout);
    assert!(run.stdout.contains("engineering"), "{}", run.stdout);
    let session = home.session().expect("session.json written");
    let token = session["token"].as_str().unwrap();
    assert!(token.starts_with("ist_") && !run.stdout.contains(token) && !run.stderr.contains(token));
    let me = home.infra(&["whoami"]).ok();
    assert!(me.stdout.contains(&person.email) && me.stdout.contains("okta"), "{}", me.stdout);
    // Its own session, not the browser's: signing out of the dashboard leaves the CLI logged in.
    let browser_token = cookie.trim_start_matches("infra_session=");
    assert_ne!(browser_token, token);
    let out = raw().post(format!("{server}/api/logout")).bearer_auth(browser_token).send().await.unwrap();
    assert_eq!(out.status().as_u16(), 204);
    home.infra(&["whoami"]).ok();

    // The code is used up: the page answers as for any wrong code.
    let again = raw().get(&url).header("cookie", format!("infra_session={token}")).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 400);
    assert!(again.text().await.unwrap().contains(NOT_VALID));
}

#[tokio::test]
async fn a_denied_login_fails_with_access_denied() {
    let person = Person::sign_in("device-deny").await;
    let server = env().server_urls[0].clone();
    let home = Home::new();
    let login = Login::start(&home, &["--device", "--server", &server]);
    let code = login.line(CODE);
    let done = person.decide(&server, &code, "deny").await;
    assert!(done.contains("Login denied"), "{done}");
    let run = login.finish(Duration::from_secs(30)).await;
    assert_ne!(run.status, 0);
    assert!(run.stderr.contains("the login was denied"), "{}", run.stderr);
    assert!(home.session().is_none(), "no session stored");
    let _ = person.user;
}

/// Codes expire (here after 3 seconds, `--device-code-lifetime`): the CLI says so, the poll is
/// `expired_token`, the page refuses the code, and the server deletes the authorization.
#[tokio::test]
async fn codes_expire() {
    const PORT: u16 = 18098;
    let _server = OwnServer::start(PORT, &["--device-code-lifetime=3s"], "server-device-expiry").await;
    let server = format!("http://127.0.0.1:{PORT}");

    let home = Home::new();
    let started = Instant::now();
    let login = Login::start(&home, &["--device", "--server", &server]);
    login.line(CODE);
    let run = login.finish(Duration::from_secs(30)).await;
    assert_ne!(run.status, 0);
    assert!(run.stderr.contains("expired before anyone approved it") && run.stderr.contains("new code"), "{}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());

    let start = authorize(&server).await;
    assert_eq!(start["expires_in"], 3);
    let device_code = start["device_code"].as_str().unwrap();
    let user_code = start["user_code"].as_str().unwrap();
    tokio::time::sleep(Duration::from_secs(4)).await;
    // A signed-in person (sessions work on every replica) finds the code refused.
    let person = Person::sign_in("device-expiry").await;
    let (status, page) = person.open(&server, user_code, None).await;
    assert_eq!(status, 400);
    assert!(page.contains(NOT_VALID), "{page}");
    let (status, body) = poll(&server, device_code).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "the page's access deleted it: {body}");

    let start = authorize(&server).await;
    let device_code = start["device_code"].as_str().unwrap();
    assert_eq!(stored(device_code).await.len(), 1);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (status, body) = poll(&server, device_code).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("expired_token")), "{body}");
    assert!(stored(device_code).await.is_empty(), "the server deletes what it finds expired");
}

/// Polling faster than the interval gets `slow_down` (and a longer interval); an approval on one
/// replica is seen by a poll on the other; the session is the approver's; the device code and the
/// user code work once.
#[tokio::test]
async fn slow_down_replicas_and_single_use() {
    let person = Person::sign_in("device-reuse").await;
    let (first, second) = (env().server_urls[0].clone(), env().server_urls[1].clone());
    let start = authorize(&first).await;
    for key in ["device_code", "user_code", "verification_uri", "verification_uri_complete"] {
        assert!(start[key].is_string(), "{key}: {start}");
    }
    assert_eq!(start["expires_in"], 600);
    assert_eq!(start["interval"], 5);
    assert_eq!(start["verification_uri"], format!("{first}/device"));
    let (device_code, user_code) = (start["device_code"].as_str().unwrap(), start["user_code"].as_str().unwrap());
    assert!(device_code.len() >= 40, "high entropy: {device_code}");

    let (status, body) = poll(&first, device_code).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("authorization_pending")), "{body}");
    let (status, body) = poll(&second, device_code).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("slow_down")), "{body}");
    let found = stored(device_code).await;
    let auth = found.first().expect("stored by hash");
    assert_eq!(auth.spec.interval, 10, "slow_down adds 5 seconds");
    assert_eq!(auth.spec.state, DeviceState::Pending);
    let text = serde_json::to_string(auth).unwrap();
    assert!(!text.contains(device_code) && !text.contains(user_code), "only hashes are stored: {text}");

    // Lower case and without the dash, on the other replica.
    let typed = user_code.replace('-', "").to_lowercase();
    let done = person.decide(&second, &typed, "approve").await;
    assert!(done.contains("Login approved"), "{done}");
    let (status, body) = poll(&first, device_code).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["user"], person.user.email.as_str());
    assert_eq!(body["provider"], "okta");
    assert_eq!(body["token_type"], "Bearer");
    let token = body["access_token"].as_str().unwrap();
    assert_eq!(body["token"], token);
    let me = http().get(format!("{second}/api/whoami")).bearer_auth(token).send().await.unwrap();
    assert_eq!(me.status().as_u16(), 200);
    assert_eq!(me.json::<Value>().await.unwrap()["user"], person.user.email.as_str());

    // Used up: the device code again, and the user code on the page.
    let (status, body) = poll(&first, device_code).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    assert!(body["error_description"].as_str().unwrap().contains("already used"), "{body}");
    let (status, page) = person.open(&first, user_code, None).await;
    assert_eq!(status, 400);
    assert!(page.contains(NOT_VALID), "{page}");
    // A code that never existed gets the same page, and a made-up device code the same error.
    let (_, never) = person.open(&first, "BCDF-GHJK", None).await;
    assert_eq!(error_text(&never), error_text(&page));
    let (status, body) = poll(&first, &format!("idc_{}_{}", "0".repeat(32), "a".repeat(43))).await;
    assert_eq!((status, body["error"].as_str()), (400, Some("invalid_grant")), "{body}");
    let (status, body) = http()
        .post(format!("{first}/api/device/token"))
        .form(&[("grant_type", "password")])
        .send()
        .await
        .map(|r| (r.status().as_u16(), r))
        .unwrap();
    assert_eq!(status, 400);
    assert_eq!(body.json::<Value>().await.unwrap()["error"], "unsupported_grant_type");
}

fn error_text(page: &str) -> String {
    page.split("id=\"error\"").nth(1).and_then(|r| r.split("</p>").next()).unwrap_or_default().to_string()
}

/// The approval is a form: without its CSRF token, with another, or from another origin it
/// changes nothing.
#[tokio::test]
async fn approvals_need_the_csrf_token_and_this_origin() {
    let person = Person::sign_in("device-csrf").await;
    let server = env().server_urls[0].clone();
    let start = authorize(&server).await;
    let (device_code, code) = (start["device_code"].as_str().unwrap(), start["user_code"].as_str().unwrap());
    let (status, page) = person.open(&server, code, None).await;
    assert_eq!(status, 200, "{page}");
    let ours = origin(&server);
    for (origin, csrf, why) in [
        (Some("https://evil.example"), None, "another origin"),
        (None, None, "no Origin or Referer"),
        (Some(ours.as_str()), Some(""), "no CSRF token"),
        (Some(ours.as_str()), Some("x".repeat(43).as_str()), "a CSRF token of no session"),
    ] {
        let (status, text) = person.post(&server, code, "approve", origin, csrf, &page).await;
        assert_eq!(status, 403, "{why}: {text}");
        assert!(text.contains("nothing was changed"), "{why}: {text}");
        let (status, body) = poll(&server, device_code).await;
        assert_eq!(status, 400, "{why}: {body}");
        assert!(matches!(body["error"].as_str(), Some("authorization_pending" | "slow_down")), "{why}: still pending: {body}");
    }
    // Another person's token is not this person's.
    let other = Person::sign_in("device-csrf-other").await;
    let (_, other_page) = other.open(&server, code, None).await;
    let (status, _) = person.post(&server, code, "approve", Some(&ours), Some(&csrf_of(&other_page)), &page).await;
    assert_eq!(status, 403);
    // The real form works.
    let (status, done) = person.post(&server, code, "approve", Some(&ours), None, &page).await;
    assert_eq!(status, 200, "{done}");
}

/// Entering user codes is limited per client (20 a minute, burst 6) and for everyone together
/// (here 30 a minute, burst 10), before any lookup: over the limit even the right code is not
/// looked up. Wrong codes say only that they are wrong.
#[tokio::test]
async fn guessing_user_codes_is_rate_limited() {
    const PORT: u16 = 18099;
    let _server = OwnServer::start(
        PORT,
        &["--trusted-proxy-hops=1", "--device-code-global-guess-limit=30", "--login-rate-limit=1000"],
        "server-device-guesses",
    )
    .await;
    let server = format!("http://127.0.0.1:{PORT}");
    let person = Person::sign_in("device-guess").await;
    let real = authorize(&server).await["user_code"].as_str().unwrap().to_string();

    let mut statuses = vec![];
    for guess in ["BCDF-BCDF", "bcdf-bcdg", "XXXX-XXXX", "not a code", "BCDF-BCDH", "BCDF-BCDJ", "BCDF-BCDK"] {
        let (status, page) = person.open(&server, guess, Some("203.0.113.1")).await;
        if status == 400 {
            assert!(page.contains(NOT_VALID), "{page}");
        }
        statuses.push(status);
    }
    assert_eq!(statuses[..6], [400; 6], "{statuses:?}");
    assert_eq!(statuses[6], 429, "{statuses:?}");
    let (status, page) = person.open(&server, &real, Some("203.0.113.1")).await;
    assert_eq!(status, 429, "the right code is not looked up over the limit: {page}");
    assert!(page.contains("Too many codes"), "{page}");
    // Another client has its own allowance, until everyone's together (10, 7 of them spent) runs out.
    let mut other = vec![];
    for i in 0..8 {
        other.push(person.open(&server, &format!("BCDF-BCF{}", ["B", "C", "D", "F", "G", "H", "J", "K"][i]), Some("203.0.113.2")).await.0);
    }
    assert_eq!(other[0], 400, "{other:?}");
    assert!(other.contains(&429), "the global limit: {other:?}");
}

/// The same in a real headless Chromium: the link `infra login --device` prints, opened signed
/// out, goes through the provider and back to the confirmation page (saved as
/// `e2e/.state/screenshots/device-confirm.png`), whose buttons approve or deny the login.
#[tokio::test]
async fn chromium_approves_and_denies_device_logins() {
    let server = env().server_urls[0].clone();
    let shots = format!("{}/screenshots", std::env::var("INFRA_STATE_DIR").unwrap());
    std::fs::create_dir_all(&shots).unwrap();
    for decision in ["approve", "deny"] {
        let person = new_user(&format!("device-chromium-{decision}"), &[]).await;
        let home = Home::new();
        let login = Login::start(&home, &["--device", "--server", &server]);
        let code = login.line(CODE);
        let url = login.line(APPROVE_URL);
        let shot = format!("{shots}/device-confirm.png");
        let mut args = vec!["device", "--url", &url, "--user", &person.email, "--password", &person.password, "--decision", decision];
        if decision == "approve" {
            args.extend(["--screenshot", &shot]);
        }
        let seen = tokio::task::spawn_blocking({
            let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
            move || crate::dashboard::browser(&args.iter().map(String::as_str).collect::<Vec<_>>())
        })
        .await
        .unwrap();
        assert_eq!(seen["confirmURL"], url.as_str(), "back on the link after signing in: {seen}");
        assert_eq!(seen["confirmHeading"], "Approve this login?", "{seen}");
        assert_eq!(seen["code"], code.as_str(), "{seen}");
        assert_eq!(seen["address"], "127.0.0.1", "{seen}");
        assert_eq!(seen["status"], 200, "{seen}");
        let run = login.finish(Duration::from_secs(30)).await;
        if decision == "approve" {
            assert_eq!(seen["heading"], "Login approved", "{seen}");
            assert!(std::fs::metadata(&shot).unwrap().len() > 1000, "a screenshot");
            assert_eq!(run.status, 0, "{}", run.stderr);
            assert!(run.stdout.contains(&format!("Logged in as {}", person.email)), "{}", run.stdout);
        } else {
            assert_eq!(seen["heading"], "Login denied", "{seen}");
            assert_ne!(run.status, 0);
            assert!(run.stderr.contains("the login was denied"), "{}", run.stderr);
        }
    }
}

/// Authorizations nobody polled again are swept by the leader controller once they are past
/// their expiry and its grace period (it sweeps every minute); unexpired ones stay.
#[tokio::test]
async fn the_controller_sweeps_expired_device_logins() {
    use infra::api::{DeviceAuthorizationSpec, DeviceRequester};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use k8s_openapi::jiff::{SignedDuration, Timestamp};
    let api = device_api().await;
    let now = Timestamp::now();
    let object = |name: &str, expires: Timestamp| {
        DeviceAuthorization::new(
            name,
            DeviceAuthorizationSpec {
                device_code_hash: "0".repeat(64),
                expires_at: Time(expires),
                interval: 5,
                last_poll_time: None,
                requester: DeviceRequester { address: "203.0.113.9".into(), hostname: None, user_agent: None, requested_at: Time(now) },
                state: DeviceState::Pending,
                decided_by: None,
            },
        )
    };
    let suffix = crate::harness::unique("sweep").replace(|c: char| !c.is_ascii_alphanumeric(), "");
    let (old, fresh) = (format!("infra-device-old-{suffix}"), format!("infra-device-fresh-{suffix}"));
    let pp = Default::default();
    api.create(&pp, &object(&old, now - SignedDuration::from_mins(10))).await.unwrap();
    api.create(&pp, &object(&fresh, now + SignedDuration::from_mins(10))).await.unwrap();
    crate::harness::eventually(Duration::from_secs(90), "the sweep to delete the expired authorization", || {
        let api = api.clone();
        let old = old.clone();
        async move { api.get_opt(&old).await.unwrap().is_none().then_some(()) }
    })
    .await;
    assert!(api.get_opt(&fresh).await.unwrap().is_some(), "an unexpired one stays");
    api.delete(&fresh, &Default::default()).await.unwrap();
}
