//! `infra login`, `infra whoami` and `infra logout`.
//!
//! Login is the OAuth 2.0 authorization code flow for native apps (RFC 8252) with PKCE: the CLI
//! listens on a loopback port, sends the browser to the provider, receives the code there, and has
//! the Infra server exchange it (the server holds the client secret and validates the ID token).
//! The server answers with an Infra session token, which is kept in `~/.infra/session.json`.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use k8s_openapi::jiff::Timestamp;
use serde_json::Value;
use tokio::sync::watch;

use super::authorize::LoginSecrets;
use super::device;
use super::loopback::{Callback, Loopback, PageOutcome};
use super::output::{self, Format};
use super::server_api::{self, ApiError, LoginRequest, LoginResponse, ProviderInfo, ServerApi};
use super::session_file::{self, Session};
use super::spinner;
use crate::oidc::authorize::{AuthorizeRequest, authorize_url};

/// The line `infra login` prints when the person has to open the URL themselves. Scripts and
/// tests look for it, so it does not change.
pub const OPEN_URL_PREFIX: &str = "Open this URL to log in: ";

#[derive(Args, Debug)]
pub struct LoginArgs {
    /// The Infra server's URL, such as https://infra.example.com (default: $INFRA_SERVER_URL, then
    /// the server of your last login).
    #[arg(long, env = "INFRA_SERVER_URL")]
    pub server: Option<String>,
    /// The identity provider to log in through (asked when the server offers several).
    #[arg(long)]
    pub provider: Option<String>,
    /// The local port the browser is sent back to. Another port must also be registered as a
    /// redirect URI (http://localhost:PORT) at the provider and on the server.
    #[arg(long, default_value_t = 8301, value_parser = clap::value_parser!(u16).range(1..))]
    pub listen_port: u16,
    /// Print the URL instead of opening a browser (and use the loopback login even over SSH or
    /// without a display).
    #[arg(long, conflicts_with = "device")]
    pub no_browser: bool,
    /// Log in from a machine without a browser: print a code and a link to the server's /device
    /// page, where a signed-in person approves the login on any device. Chosen on its own over
    /// SSH and on Linux without a display.
    #[arg(long)]
    pub device: bool,
    /// How long to wait for the login in the browser, such as 90s or 5m.
    #[arg(long, default_value = "5m", value_parser = crate::config::parse_span)]
    pub timeout: Duration,
    /// PEM file of CA certificates for a server behind a private CA.
    #[arg(long, env = "INFRA_CA_FILE")]
    pub ca_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct WhoamiArgs {
    /// Fail unless the stored session belongs to this server.
    #[arg(long)]
    pub server: Option<String>,
    /// Output format: table, json or yaml.
    #[arg(short, long, value_enum, default_value_t = Format::Table)]
    pub output: Format,
    /// PEM file of CA certificates for a server behind a private CA.
    #[arg(long, env = "INFRA_CA_FILE")]
    pub ca_file: Option<PathBuf>,
}

#[derive(Args, Debug)]
pub struct LogoutArgs {
    /// Forget the session on this computer even when the server cannot be told to end it.
    #[arg(long)]
    pub force: bool,
    /// PEM file of CA certificates for a server behind a private CA.
    #[arg(long, env = "INFRA_CA_FILE")]
    pub ca_file: Option<PathBuf>,
}

// ---- login ------------------------------------------------------------------------------------

pub async fn login(args: LoginArgs) -> anyhow::Result<()> {
    let home = session_file::infra_home()?;
    // A previous session only supplies the default server; an unreadable one is replaced.
    let previous = session_file::load(&home).ok().flatten();
    let raw_server = args.server.clone().or_else(|| previous.as_ref().map(|s| s.server.clone())).ok_or_else(|| {
        anyhow::anyhow!("which Infra server? Pass --server URL (such as --server https://infra.example.com) or set INFRA_SERVER_URL")
    })?;
    let server = server_api::normalize_server(&raw_server).map_err(|e| anyhow::anyhow!("--server: {e}"))?;
    if server_api::is_cleartext_remote(&server) {
        eprintln!("warning: {server} is plain http; the login and your session token cross the network unencrypted");
    }
    let api = ServerApi::new(&server, args.ca_file.as_deref())?;

    // macOS and Windows always have a browser; elsewhere it takes a display.
    let needs_display = cfg!(all(unix, not(target_os = "macos")));
    let response = match device::choose(args.device, args.no_browser, |v| std::env::var(v).ok(), !needs_display, is_wsl()) {
        device::Choice::Device(why) => {
            eprintln!("Using device login: {why}.");
            let response = device::login(&api).await?;
            store(&home, &server, &response)?;
            response
        }
        device::Choice::Loopback => loopback_login(&args, &api, &home, &server).await?,
    };
    println!("Logged in as {} through {}", response.user, response.provider);
    if response.groups.is_empty() {
        println!("Groups: (none)");
    } else {
        println!("Groups: {}", response.groups.join(", "));
    }
    println!("Session expires {}", expiry(&response.expires_at));
    // The login stands even when the kubeconfig cannot be written: say so and go on.
    match super::kube::write_kubeconfig(&api, &server, args.ca_file.as_deref()).await {
        Ok(Some(line)) => println!("{line}"),
        Ok(None) => {}
        Err(e) => eprintln!("warning: could not write the kubeconfig context for this cluster: {e:#}"),
    }

    // The session this one replaces is no longer stored anywhere: end it on its server.
    if let Some(old) = previous.filter(|old| old.token != response.token)
        && let Ok(old_api) = ServerApi::new(&old.server, args.ca_file.as_deref())
    {
        let _ = tokio::time::timeout(Duration::from_secs(5), old_api.logout(&old.token)).await;
    }
    Ok(())
}

/// Keeps a new session in `~/.infra/session.json`.
fn store(home: &std::path::Path, server: &str, response: &LoginResponse) -> anyhow::Result<()> {
    let session = Session {
        server: server.to_string(),
        provider: response.provider.clone(),
        user: response.user.clone(),
        token: response.token.clone(),
        expires_at: response.expires_at.clone(),
    };
    session_file::save(home, &session).map(|_| ()).map_err(|e| e.context("Infra accepted the login, but the session could not be stored"))
}

/// The browser login: the provider's page, the code back on the loopback listener, redeemed by
/// the server.
async fn loopback_login(args: &LoginArgs, api: &ServerApi, home: &std::path::Path, server: &str) -> anyhow::Result<LoginResponse> {
    let server = server.to_string();
    let providers = listed_providers(api, args.provider.as_deref()).await?;
    let provider = match pick_provider(&providers, args.provider.as_deref(), &server)? {
        Pick::One(p) => p,
        Pick::Ask(choices) if std::io::stdin().is_terminal() => ask_provider(&choices)?,
        Pick::Ask(choices) => anyhow::bail!("{server} offers several identity providers ({}); pass --provider NAME", names(&choices)),
    };
    let endpoint = provider.authorization_endpoint.clone().ok_or_else(|| {
        anyhow::anyhow!("the server does not know provider {:?}'s authorization endpoint yet; try again in a moment", provider.name)
    })?;

    let secrets = LoginSecrets::generate()?;
    let redirect_uri = format!("http://localhost:{}", args.listen_port);
    let url = authorize_url(&AuthorizeRequest {
        authorization_endpoint: &endpoint,
        client_id: &provider.client_id,
        redirect_uri: &redirect_uri,
        scopes: &provider.scopes,
        state: &secrets.state,
        nonce: &secrets.nonce,
        code_challenge: &secrets.challenge(),
    })
    .map_err(anyhow::Error::msg)?;

    // Listening before the browser opens, so the callback can never arrive at a closed port.
    let loopback = Loopback::bind(args.listen_port).await?;
    let (stop, stopped) = watch::channel(false);
    let (mut callbacks, servers) = loopback.serve(secrets.state.clone(), provider.issuer.clone(), stopped);

    let opened = !args.no_browser && open_browser(url.as_str()).await;
    if opened {
        eprintln!("Your browser has been opened to log in through {}. If it did not open, visit:\n  {url}", provider.name);
    } else {
        eprintln!("{OPEN_URL_PREFIX}{url}");
    }

    let spin = spinner::start(format!("Waiting for you to log in through {}", provider.name));
    let flow = Flow { api, home, server: &server, provider: &provider, redirect_uri: &redirect_uri, secrets: &secrets };
    let result = flow.wait(&mut callbacks, args.timeout).await;
    spin.finish_and_clear();

    // Lets the browser's request finish (it carries the outcome), then stops listening.
    let _ = stop.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(5), futures::future::join_all(servers)).await;
    result
}

struct Flow<'a> {
    api: &'a ServerApi,
    home: &'a std::path::Path,
    server: &'a str,
    provider: &'a ProviderInfo,
    redirect_uri: &'a str,
    secrets: &'a LoginSecrets,
}

impl Flow<'_> {
    /// Waits for the browser, exchanges the code and stores the session.
    async fn wait(&self, callbacks: &mut tokio::sync::mpsc::Receiver<Callback>, timeout: Duration) -> anyhow::Result<LoginResponse> {
        let callback = tokio::select! {
            cb = callbacks.recv() => cb.ok_or_else(|| anyhow::anyhow!("the local listener stopped unexpectedly"))?,
            _ = tokio::time::sleep(timeout) => anyhow::bail!(
                "timed out after {} waiting for the login in the browser; run infra login again (--timeout waits longer)",
                human_duration(timeout)
            ),
            _ = tokio::signal::ctrl_c() => anyhow::bail!("login cancelled"),
        };
        let (code, reply) = match callback {
            Callback::Failed(err) => return Err(err.into()),
            Callback::Code { code, reply } => (code, reply),
        };
        let request = LoginRequest {
            provider: &self.provider.name,
            code: &code,
            redirect_uri: self.redirect_uri,
            code_verifier: &self.secrets.verifier,
            nonce: &self.secrets.nonce,
        };
        let exchanged = tokio::select! {
            r = self.api.login(&request) => r,
            _ = tokio::signal::ctrl_c() => {
                let _ = reply.send(PageOutcome::Failed { reason: "The login was cancelled in the terminal.".into() });
                anyhow::bail!("login cancelled");
            }
        };
        let response = match exchanged {
            Ok(r) => r,
            Err(e) => {
                let reason = exchange_error(&e, self.server);
                let _ = reply.send(PageOutcome::Failed { reason: reason.clone() });
                anyhow::bail!(reason);
            }
        };
        if let Err(e) = store(self.home, self.server, &response) {
            let _ = reply.send(PageOutcome::Failed {
                reason: "Infra accepted the login, but the session could not be saved on this computer; see the terminal.".into(),
            });
            return Err(e);
        }
        let _ = reply.send(PageOutcome::LoggedIn { user: response.user.clone() });
        Ok(response)
    }
}

/// What to say when `POST /api/login` fails: the server's own message and error code.
fn exchange_error(err: &ApiError, server: &str) -> String {
    match err {
        ApiError::Server { error, message, .. } => format!("the server refused the login: {message} ({error})"),
        ApiError::Unreachable { detail, .. } => format!("could not reach the Infra server at {server} to finish the login: {detail}"),
        ApiError::Unexpected(text) => format!("the login could not be finished: {text}"),
    }
}

/// How long `--provider NAME` waits for the server to list NAME. `infra providers add` returns once
/// the controller has marked the provider Ready, and the server learns of it through its watch a
/// moment later (milliseconds; seconds on a loaded cluster), so `infra providers add okta && infra
/// login --provider okta` must not fail in between. A misspelt name costs this long before its error.
const PROVIDER_LISTED_WAIT: Duration = Duration::from_secs(5);

/// The server's Ready providers; with `wanted`, asked again until it is among them or
/// [`PROVIDER_LISTED_WAIT`] has passed.
async fn listed_providers(api: &ServerApi, wanted: Option<&str>) -> anyhow::Result<Vec<ProviderInfo>> {
    let deadline = tokio::time::Instant::now() + PROVIDER_LISTED_WAIT;
    loop {
        let providers = api.providers().await.map_err(|e| anyhow::anyhow!("listing the server's identity providers: {e}"))?;
        let listed = wanted.is_none_or(|name| providers.iter().any(|p| p.name == name));
        if listed || tokio::time::Instant::now() >= deadline {
            return Ok(providers);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[derive(Debug, PartialEq)]
enum Pick {
    One(ProviderInfo),
    Ask(Vec<ProviderInfo>),
}

fn names(providers: &[ProviderInfo]) -> String {
    providers.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
}

/// The provider to log in through, or the choices to ask about.
fn pick_provider(providers: &[ProviderInfo], wanted: Option<&str>, server: &str) -> anyhow::Result<Pick> {
    if providers.is_empty() {
        anyhow::bail!(
            "{server} has no identity provider that is Ready, so nobody can log in yet; an administrator can see why with \
             `kubectl get idp` (or `infra providers list`)"
        );
    }
    match wanted {
        Some(name) => match providers.iter().find(|p| p.name == name) {
            Some(p) => Ok(Pick::One(p.clone())),
            None => anyhow::bail!("{server} has no Ready identity provider named {name:?}; available: {}", names(providers)),
        },
        None if providers.len() == 1 => Ok(Pick::One(providers[0].clone())),
        None => Ok(Pick::Ask(providers.to_vec())),
    }
}

/// Asks on the terminal: a numbered list on stderr, the answer (number or name) on stdin.
fn ask_provider(choices: &[ProviderInfo]) -> anyhow::Result<ProviderInfo> {
    eprintln!("Log in through which identity provider?");
    for (i, p) in choices.iter().enumerate() {
        let kind = p.kind.as_deref().map(|k| format!(" ({k})")).unwrap_or_default();
        eprintln!("  {}) {}{kind}", i + 1, p.name);
    }
    let stdin = std::io::stdin();
    for _ in 0..3 {
        eprint!("Enter a number [1-{}]: ", choices.len());
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        if stdin.lock().read_line(&mut line)? == 0 {
            anyhow::bail!("no provider chosen; pass --provider NAME ({})", names(choices));
        }
        if let Some(p) = choose(choices, &line) {
            return Ok(p.clone());
        }
        eprintln!("{:?} is not one of the choices", line.trim());
    }
    anyhow::bail!("no provider chosen; pass --provider NAME ({})", names(choices))
}

fn choose<'a>(choices: &'a [ProviderInfo], answer: &str) -> Option<&'a ProviderInfo> {
    let answer = answer.trim();
    match answer.parse::<usize>() {
        Ok(n) if (1..=choices.len()).contains(&n) => Some(&choices[n - 1]),
        Ok(_) => None,
        Err(_) => choices.iter().find(|p| p.name == answer),
    }
}

/// Opens `url` in the person's browser. False when no browser could be started (no launcher,
/// no graphical session, or the launcher failed), so the caller prints the URL instead.
async fn open_browser(url: &str) -> bool {
    let url = url.to_string();
    tokio::task::spawn_blocking(move || launch_browser(&url)).await.unwrap_or(false)
}

fn launch_browser(url: &str) -> bool {
    // Over SSH or on a server there is nothing to open a browser on, unless the person named one
    // ($BROWSER) or Windows' browser is at hand (WSL). macOS and Windows always have one.
    let desktop = ["DISPLAY", "WAYLAND_DISPLAY", "BROWSER"].iter().any(|v| std::env::var_os(v).is_some_and(|v| !v.is_empty()));
    if cfg!(all(unix, not(target_os = "macos"))) && !desktop && !is_wsl() {
        return false;
    }
    webbrowser::open(url).is_ok()
}

/// Windows Subsystem for Linux, where the browser is Windows' (the `webbrowser` crate opens it).
fn is_wsl() -> bool {
    std::fs::read_to_string("/proc/sys/kernel/osrelease").is_ok_and(|r| r.to_ascii_lowercase().contains("microsoft"))
}

fn human_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        s if s >= 3600 && s % 3600 == 0 => format!("{}h", s / 3600),
        s if s >= 60 && s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// `2026-11-29T14:00:00Z (in 8h)`, or the raw value when it is not a timestamp.
fn expiry(raw: &str) -> String {
    expiry_at(raw, Timestamp::now())
}

fn expiry_at(raw: &str, now: Timestamp) -> String {
    match raw.parse::<Timestamp>() {
        Ok(at) if at <= now => format!("{raw} (expired)"),
        Ok(at) => format!("{raw} (in {})", output::age(Some(now), at)),
        Err(_) => raw.to_string(),
    }
}

// ---- whoami -----------------------------------------------------------------------------------

fn not_logged_in() -> anyhow::Error {
    anyhow::anyhow!("not logged in: run `infra login`")
}

pub async fn whoami(args: WhoamiArgs) -> anyhow::Result<()> {
    let home = session_file::infra_home()?;
    let session = session_file::load(&home)?.ok_or_else(not_logged_in)?;
    if let Some(wanted) = &args.server {
        let wanted = server_api::normalize_server(wanted).map_err(|e| anyhow::anyhow!("--server: {e}"))?;
        if wanted != session.server {
            anyhow::bail!("not logged in to {wanted} (your session is for {}): run `infra login --server {wanted}`", session.server);
        }
    }
    let api = ServerApi::new(&session.server, args.ca_file.as_deref())?;
    let me = match api.whoami(&session.token).await {
        Ok(v) => v,
        Err(e) if e.status() == Some(401) => {
            session_file::remove(&home)?;
            anyhow::bail!("your session has ended ({}); run `infra login` again", e.message());
        }
        Err(e) => anyhow::bail!("{e}"),
    };
    match args.output {
        Format::Table => print!("{}", describe(&me, &session.server, Timestamp::now())),
        format => print!("{}", output::structured(format, &me)?),
    }
    Ok(())
}

/// The human form of `GET /api/whoami`'s answer.
fn describe(me: &Value, server: &str, now: Timestamp) -> String {
    let text = |k: &str| me[k].as_str().unwrap_or("?").to_string();
    let groups: Vec<&str> = me["groups"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
    let mut rows = vec![
        ("User", text("user")),
        ("Provider", text("provider")),
        ("Groups", if groups.is_empty() { "(none)".into() } else { groups.join(", ") }),
        ("Server", server.to_string()),
        ("Expires", expiry_at(&text("expiresAt"), now)),
    ];
    if let Some(idle) = me["idleExpiresAt"].as_str() {
        rows.push(("Idle until", expiry_at(idle, now)));
    }
    rows.iter().map(|(k, v)| format!("{:<12}{v}\n", format!("{k}:"))).collect()
}

// ---- logout -----------------------------------------------------------------------------------

pub async fn logout(args: LogoutArgs) -> anyhow::Result<()> {
    let home = session_file::infra_home()?;
    let result = end_session(&args, &home).await;
    if !session_file::path_in(&home).exists() {
        match super::kube::forget(&home) {
            Ok(removed) if !removed.is_empty() => println!("Removed kubeconfig contexts {}", removed.join(", ")),
            Ok(_) => {}
            Err(e) => eprintln!("warning: could not remove Infra's kubeconfig entries: {e:#}"),
        }
    }
    result
}

async fn end_session(args: &LogoutArgs, home: &std::path::Path) -> anyhow::Result<()> {
    let home = home.to_path_buf();
    let session = match session_file::load(&home) {
        Ok(Some(s)) => s,
        Ok(None) => {
            eprintln!("Not logged in; nothing to do.");
            return Ok(());
        }
        Err(e) if args.force => {
            session_file::remove(&home)?;
            eprintln!("warning: {e:#}; removed it");
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let ended = match ServerApi::new(&session.server, args.ca_file.as_deref()) {
        Ok(api) => api.logout(&session.token).await.map_err(|e| (e.status(), e.to_string())),
        Err(e) => Err((None, format!("{e:#}"))),
    };
    match ended {
        Ok(()) => {
            session_file::remove(&home)?;
            println!("Logged out {} from {}", session.user, session.server);
        }
        Err((Some(401), _)) => {
            session_file::remove(&home)?;
            println!("Your session had already ended on {}; removed it from this computer", session.server);
        }
        Err((_, e)) if args.force => {
            session_file::remove(&home)?;
            eprintln!(
                "warning: the server did not end the session ({e}); it stays valid there until {}. Removed it from this computer.",
                session.expires_at
            );
        }
        Err((_, e)) => anyhow::bail!(
            "could not end your session on the server: {e}\nThe session is still valid and still stored on this computer. \
             Try again, or pass --force to forget it here without ending it on the server (it then stays valid until {}).",
            session.expires_at
        ),
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn provider(name: &str) -> ProviderInfo {
        ProviderInfo {
            name: name.into(),
            kind: Some("okta".into()),
            issuer: Some("https://idp.example.com".into()),
            authorization_endpoint: Some("https://idp.example.com/authorize".into()),
            client_id: "c".into(),
            scopes: vec!["openid".into()],
        }
    }

    const SERVER: &str = "https://infra.example.com";

    #[test]
    fn picking_a_provider() {
        let err = pick_provider(&[], None, SERVER).unwrap_err().to_string();
        assert!(err.contains("no identity provider that is Ready") && err.contains("kubectl get idp"), "{err}");

        let one = [provider("okta")];
        assert_eq!(pick_provider(&one, None, SERVER).unwrap(), Pick::One(provider("okta")));
        assert_eq!(pick_provider(&one, Some("okta"), SERVER).unwrap(), Pick::One(provider("okta")));

        let two = [provider("google"), provider("okta")];
        assert_eq!(pick_provider(&two, None, SERVER).unwrap(), Pick::Ask(two.to_vec()));
        assert_eq!(pick_provider(&two, Some("okta"), SERVER).unwrap(), Pick::One(provider("okta")));
        let err = pick_provider(&two, Some("nope"), SERVER).unwrap_err().to_string();
        assert!(err.contains("\"nope\"") && err.contains("available: google, okta"), "{err}");
    }

    #[test]
    fn answers_to_the_provider_question() {
        let two = [provider("google"), provider("okta")];
        assert_eq!(choose(&two, "2\n").map(|p| p.name.as_str()), Some("okta"));
        assert_eq!(choose(&two, " google ").map(|p| p.name.as_str()), Some("google"));
        for bad in ["0", "3", "", "azure"] {
            assert!(choose(&two, bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn exchange_errors_show_the_server_message_and_code() {
        let e = ApiError::Server { status: 400, error: "invalid_grant".into(), message: "The authorization code has expired.".into() };
        assert_eq!(exchange_error(&e, SERVER), "the server refused the login: The authorization code has expired. (invalid_grant)");
    }

    #[test]
    fn durations_and_expiry() {
        assert_eq!(human_duration(Duration::from_secs(300)), "5m");
        assert_eq!(human_duration(Duration::from_secs(2)), "2s");
        assert_eq!(human_duration(Duration::from_secs(7200)), "2h");
        assert_eq!(human_duration(Duration::from_secs(90)), "90s");
        let now: Timestamp = "2026-11-29T06:00:00Z".parse().unwrap();
        assert_eq!(expiry_at("2026-11-29T14:00:00Z", now), "2026-11-29T14:00:00Z (in 8h)");
        assert_eq!(expiry_at("2026-11-29T05:00:00Z", now), "2026-11-29T05:00:00Z (expired)");
        assert_eq!(expiry_at("soon", now), "soon");
    }

    #[test]
    fn whoami_text() {
        let me = serde_json::json!({
            "user": "alice@example.com", "provider": "okta", "groups": ["admins", "engineering"],
            "expiresAt": "2026-11-29T14:00:00Z", "idleExpiresAt": "2026-11-29T07:00:00Z"
        });
        let now: Timestamp = "2026-11-29T06:00:00Z".parse().unwrap();
        let text = describe(&me, SERVER, now);
        assert_eq!(
            text,
            "User:       alice@example.com\n\
             Provider:   okta\n\
             Groups:     admins, engineering\n\
             Server:     https://infra.example.com\n\
             Expires:    2026-11-29T14:00:00Z (in 8h)\n\
             Idle until: 2026-11-29T07:00:00Z (in 60m)\n"
        );
    }
}
