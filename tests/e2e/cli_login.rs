//! `infra login`, `whoami` and `logout` as a person runs them: the real binary with
//! `--no-browser`, its printed URL driven through the stand-in Okta by the headless browser, and
//! the loopback callback fetched like the browser would. Each test has its own INFRA_HOME and its
//! own listen port, so they run in parallel.

use std::io::{BufRead, BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::time::{Duration, Instant};

use serde_json::Value;
use url::Url;

use crate::browser::{self, Browser, ListenPort, listen_port, query_param, with_query_param};
use crate::harness::{Run, env, eventually, http, infra_with, unique};
use crate::idp;

const OPEN_URL: &str = "Open this URL to log in: ";

fn server() -> String {
    env().server_urls[0].clone()
}

/// A private INFRA_HOME, removed afterwards. The kubeconfig `infra login` writes is in it too
/// (`KUBECONFIG` points there), never the kubeconfig of whoever runs the tests.
pub struct Home(pub PathBuf);

impl Home {
    pub fn new() -> Self {
        // A directory that does not exist yet: `infra login` creates it (0700).
        Self(std::env::temp_dir().join(unique("infra-home")))
    }
    pub fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
    pub fn kubeconfig(&self) -> String {
        format!("{}/kubeconfig", self.path())
    }
    fn session_file(&self) -> PathBuf {
        self.0.join("session.json")
    }
    pub fn session(&self) -> Option<Value> {
        let text = std::fs::read_to_string(self.session_file()).ok()?;
        Some(serde_json::from_str(&text).expect("session.json is JSON"))
    }
    fn write_session(&self, server: &str, token: &str) {
        std::fs::create_dir_all(&self.0).unwrap();
        let body = serde_json::json!({
            "server": server, "provider": "okta", "user": "alice@example.com", "token": token, "expiresAt": "2099-01-01T00:00:00Z"
        });
        std::fs::write(self.session_file(), body.to_string()).unwrap();
    }
    /// `infra <args>` with this INFRA_HOME and kubeconfig.
    pub fn infra(&self, args: &[&str]) -> Run {
        infra_with(args, &[("INFRA_HOME", self.path()), ("KUBECONFIG", &self.kubeconfig())], None)
    }
}

impl Drop for Home {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A running `infra login`, its stderr read line by line as it comes.
pub struct Login {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Arc<Mutex<String>>,
    stdout: Arc<Mutex<String>>,
}

impl Login {
    pub fn start(home: &Home, args: &[&str]) -> Self {
        let mut child = Command::new(env!("CARGO_BIN_EXE_infra"))
            .arg("login")
            .args(args)
            .env("INFRA_HOME", home.path())
            .env("KUBECONFIG", home.kubeconfig())
            .env_remove("INFRA_SERVER_URL")
            .env_remove("DISPLAY")
            .env_remove("WAYLAND_DISPLAY")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("infra runs");
        let (tx, lines) = mpsc::channel();
        let stderr = Arc::new(Mutex::new(String::new()));
        let all = stderr.clone();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                all.lock().unwrap().push_str(&format!("{line}\n"));
                let _ = tx.send(line);
            }
        });
        let stdout = Arc::new(Mutex::new(String::new()));
        let out = stdout.clone();
        let mut pipe = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            let mut s = String::new();
            let _ = pipe.read_to_string(&mut s);
            out.lock().unwrap().push_str(&s);
        });
        Self { child, lines, stderr, stdout }
    }

    /// The URL from the `Open this URL to log in:` line.
    pub fn authorize_url(&self) -> Url {
        let url = self.line(OPEN_URL);
        Url::parse(url.trim()).unwrap_or_else(|e| panic!("bad URL {url:?}: {e}"))
    }

    /// The rest of the next stderr line that starts with `prefix` (earlier lines are skipped).
    pub fn line(&self, prefix: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            match self.lines.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    if let Some(rest) = line.strip_prefix(prefix) {
                        return rest.to_string();
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!("no `{prefix}` line; stderr so far:\n{}", self.stderr.lock().unwrap());
    }

    /// Waits for `infra login` to exit (killing it after `timeout`).
    pub async fn finish(mut self, timeout: Duration) -> Run {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                panic!("infra login still running after {timeout:?}; stderr:\n{}", self.stderr.lock().unwrap());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        // Let the reader threads drain the pipes.
        tokio::time::sleep(Duration::from_millis(200)).await;
        let stdout = self.stdout.lock().unwrap().clone();
        let stderr = self.stderr.lock().unwrap().clone();
        Run { status: status.code().unwrap_or(-1), stdout, stderr }
    }
}

pub fn login_args<'a>(port: &'a str, server: &'a str, provider: &'a str) -> Vec<&'a str> {
    vec!["--no-browser", "--listen-port", port, "--server", server, "--provider", provider]
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// GETs the loopback callback as the browser would, returning status and page.
async fn deliver(callback: &Url) -> (u16, String) {
    let page = Browser::new().get(callback.as_str()).await.unwrap_or_else(|e| panic!("GET {callback}: {e:#}"));
    (page.status, page.text)
}

#[tokio::test]
async fn login_whoami_logout_through_the_cli() {
    let home = Home::new();
    let port = listen_port();
    let (p, s) = (port.to_string(), server());
    let login = Login::start(&home, &login_args(&p, &s, "okta"));
    let url = login.authorize_url();
    let redirect_uri = format!("http://localhost:{port}");
    assert_eq!(query_param(&url, "redirect_uri").as_deref(), Some(redirect_uri.as_str()), "{url}");
    assert_eq!(query_param(&url, "response_type").as_deref(), Some("code"));
    assert_eq!(query_param(&url, "code_challenge_method").as_deref(), Some("S256"));
    assert!(query_param(&url, "state").is_some_and(|s| s.len() >= 32), "{url}");
    assert!(query_param(&url, "nonce").is_some_and(|s| s.len() >= 32), "{url}");
    assert!(query_param(&url, "scope").is_some_and(|s| s.split(' ').any(|x| x == "openid")), "{url}");

    let callback = browser::login_at_idp(url.as_str(), "alice@example.com", "alice-password", &redirect_uri).await.unwrap();
    assert!(query_param(&callback, "code").is_some(), "{callback}");
    let (status, page) = deliver(&callback).await;
    assert_eq!(status, 200, "{page}");
    assert!(page.contains("You are logged in to Infra as alice@example.com"), "{page}");
    assert!(page.contains("You can close this tab"), "{page}");

    let run = login.finish(Duration::from_secs(30)).await;
    assert_eq!(run.status, 0, "stdout:\n{}\nstderr:\n{}", run.stdout, run.stderr);
    assert!(run.stdout.contains("Logged in as alice@example.com through okta"), "{}", run.stdout);
    assert!(run.stdout.contains("admins") && run.stdout.contains("engineering"), "{}", run.stdout);

    // The session file: private, and holding a session token that is never printed.
    assert_eq!(mode(&home.0), 0o700);
    assert_eq!(mode(&home.session_file()), 0o600);
    let session = home.session().expect("session.json written");
    let token = session["token"].as_str().unwrap().to_string();
    assert!(token.starts_with("ist_"), "{session}");
    assert_eq!(session["server"], s.as_str());
    assert_eq!(session["provider"], "okta");
    assert_eq!(session["user"], "alice@example.com");
    assert!(session["expiresAt"].is_string());
    assert!(!run.stdout.contains(&token) && !run.stderr.contains(&token), "the token was printed");

    let me = home.infra(&["whoami"]).ok();
    assert!(me.stdout.contains("alice@example.com") && me.stdout.contains("okta") && me.stdout.contains("admins"), "{}", me.stdout);
    assert!(!me.stdout.contains(&token) && !me.stderr.contains(&token));
    let json: Value = serde_json::from_str(&home.infra(&["whoami", "-o", "json"]).ok().stdout).unwrap();
    assert_eq!(json["user"], "alice@example.com");
    assert_eq!(json["provider"], "okta");
    assert!(json["groups"].as_array().unwrap().iter().any(|g| g == "admins"), "{json}");

    // The session works on every server replica.
    for replica in &env().server_urls {
        let url = format!("{replica}/api/whoami");
        eventually(Duration::from_secs(10), &format!("the session to work on {replica}"), || {
            let (url, token) = (url.clone(), token.clone());
            async move { (http().get(&url).bearer_auth(&token).send().await.ok()?.status() == 200).then_some(()) }
        })
        .await;
    }

    let out = home.infra(&["logout"]).ok();
    assert!(out.stdout.contains("Logged out"), "{}", out.stdout);
    assert!(!home.session_file().exists(), "logout left the session file");
    // Revoked on the server, not only forgotten here.
    let resp = http().get(format!("{s}/api/whoami")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);

    let after = home.infra(&["whoami"]);
    assert_eq!(after.status, 1, "{}", after.stderr);
    assert!(after.stderr.contains("not logged in: run `infra login`"), "{}", after.stderr);
}

#[tokio::test]
async fn cancelling_at_the_provider_fails_with_access_denied() {
    let home = Home::new();
    let port = listen_port();
    let (p, s) = (port.to_string(), server());
    let login = Login::start(&home, &login_args(&p, &s, "okta"));
    let url = login.authorize_url();
    let callback = browser::cancel_at_idp(url.as_str(), &format!("http://localhost:{port}")).await.unwrap();
    assert_eq!(query_param(&callback, "error").as_deref(), Some("access_denied"), "{callback}");
    let (status, page) = deliver(&callback).await;
    assert_eq!(status, 400);
    assert!(page.contains("Login failed") && page.contains("denied the login"), "{page}");

    let run = login.finish(Duration::from_secs(30)).await;
    assert_ne!(run.status, 0);
    assert!(
        run.stderr.contains("the identity provider denied the login (access_denied: End-User cancelled the sign-in)"),
        "{}",
        run.stderr
    );
    assert!(home.session().is_none());
}

#[tokio::test]
async fn a_callback_with_another_state_is_refused() {
    let home = Home::new();
    let port = listen_port();
    let (p, s) = (port.to_string(), server());
    let login = Login::start(&home, &login_args(&p, &s, "okta"));
    let url = login.authorize_url();
    let callback =
        browser::login_at_idp(url.as_str(), "bob@example.com", "bob-password", &format!("http://localhost:{port}")).await.unwrap();
    let forged = with_query_param(&callback, "state", "not-the-state-of-this-login");
    let (status, page) = deliver(&forged).await;
    assert_eq!(status, 400);
    assert!(page.contains("state mismatch"), "{page}");

    let run = login.finish(Duration::from_secs(30)).await;
    assert_ne!(run.status, 0);
    assert!(run.stderr.contains("state mismatch: this response does not belong to this login; run infra login again"), "{}", run.stderr);
    assert!(home.session().is_none());
}

#[tokio::test]
async fn the_browser_page_shows_the_servers_refusal() {
    // The IdP signs this user's ID tokens for another audience, so the server refuses the code
    // exchange: the CLI must say why and the page must not claim success.
    let user = idp::new_user("cli-refused", &["engineering"]).await;
    idp::tamper(&user, Some("wrong_audience")).await;
    let home = Home::new();
    let port = listen_port();
    let (p, s) = (port.to_string(), server());
    let login = Login::start(&home, &login_args(&p, &s, "okta"));
    let url = login.authorize_url();
    let callback = browser::login_at_idp(url.as_str(), &user.email, &user.password, &format!("http://localhost:{port}")).await.unwrap();
    let (status, page) = deliver(&callback).await;
    assert_eq!(status, 400);
    assert!(page.contains("Login failed") && page.contains("the server refused the login"), "{page}");
    assert!(!page.contains("You are logged in"), "{page}");

    let run = login.finish(Duration::from_secs(30)).await;
    assert_ne!(run.status, 0);
    assert!(run.stderr.contains("the server refused the login: ") && run.stderr.contains("(login_failed)"), "{}", run.stderr);
    assert!(home.session().is_none());
}

#[tokio::test]
async fn a_listen_port_in_use_is_named() {
    let home = Home::new();
    let port = listen_port();
    let _taken = std::net::TcpListener::bind(("127.0.0.1", port.get())).unwrap();
    let run = home.infra(&["login", "--no-browser", "--listen-port", &port.to_string(), "--server", &server(), "--provider", "okta"]);
    assert_ne!(run.status, 0);
    let expected = format!(
        "port {port} is already in use — is another `infra login` running? Pass --listen-port to use another port \
         (it must also be registered as a redirect URI)"
    );
    assert!(run.stderr.contains(&expected), "{}", run.stderr);
    assert!(!run.stderr.contains(OPEN_URL), "the URL was printed although nothing listens: {}", run.stderr);
}

#[tokio::test]
async fn the_login_times_out() {
    let home = Home::new();
    let port: ListenPort = listen_port();
    let (p, s) = (port.to_string(), server());
    let mut args = login_args(&p, &s, "okta");
    args.extend(["--timeout", "2s"]);
    let started = Instant::now();
    let login = Login::start(&home, &args);
    login.authorize_url();
    let run = login.finish(Duration::from_secs(30)).await;
    assert_ne!(run.status, 0);
    assert!(run.stderr.contains("timed out after 2s"), "{}", run.stderr);
    assert!(started.elapsed() < Duration::from_secs(15), "took {:?}", started.elapsed());
    assert!(home.session().is_none());
}

#[tokio::test]
async fn an_unknown_provider_lists_the_available_ones() {
    let home = Home::new();
    let port = listen_port();
    let run =
        home.infra(&["login", "--no-browser", "--listen-port", &port.to_string(), "--server", &server(), "--provider", "no-such-provider"]);
    assert_ne!(run.status, 0);
    assert!(run.stderr.contains("no Ready identity provider named \"no-such-provider\""), "{}", run.stderr);
    assert!(run.stderr.contains("available: ") && run.stderr.contains("okta"), "{}", run.stderr);
}

#[tokio::test]
async fn whoami_with_an_ended_session_forgets_it() {
    let home = Home::new();
    let none = home.infra(&["whoami"]);
    assert_eq!(none.status, 1);
    assert!(none.stderr.contains("not logged in: run `infra login`"), "{}", none.stderr);

    home.write_session(&server(), &format!("ist_{}_{}", "a".repeat(12), "b".repeat(43)));
    let run = home.infra(&["whoami"]);
    assert_eq!(run.status, 1, "{}", run.stderr);
    assert!(run.stderr.contains("your session has ended (") && run.stderr.contains("run `infra login` again"), "{}", run.stderr);
    assert!(!home.session_file().exists(), "the stale session was kept");

    let logout = home.infra(&["logout"]).ok();
    assert!(logout.stderr.contains("Not logged in"), "{}", logout.stderr);
}

#[tokio::test]
async fn logout_keeps_the_session_when_the_server_cannot_end_it() {
    let home = Home::new();
    // A port nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    home.write_session(&format!("http://127.0.0.1:{closed}"), &format!("ist_{}_{}", "c".repeat(12), "d".repeat(43)));
    let run = home.infra(&["logout"]);
    assert_eq!(run.status, 1);
    assert!(run.stderr.contains("could not end your session on the server") && run.stderr.contains("--force"), "{}", run.stderr);
    assert!(home.session_file().exists(), "the session was forgotten although it was not ended");

    let forced = home.infra(&["logout", "--force"]).ok();
    assert!(forced.stderr.contains("stays valid there"), "{}", forced.stderr);
    assert!(!home.session_file().exists());
}

#[tokio::test]
async fn logout_of_a_session_the_server_already_ended() {
    let home = Home::new();
    home.write_session(&server(), &format!("ist_{}_{}", "e".repeat(12), "f".repeat(43)));
    let run = home.infra(&["logout"]).ok();
    assert!(run.stdout.contains("already ended"), "{}", run.stdout);
    assert!(!home.session_file().exists());
}
