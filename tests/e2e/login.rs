//! Login through the provider as the CLI does it (the code comes back to a loopback redirect URI
//! and is redeemed through `POST /api/login`), driven headlessly, against the stand-in Okta over
//! HTTPS: identity and groups, linking to SCIM users, every rejection the issue lists, and the
//! life of sessions (logout, deactivation, refresh failures, an unreachable provider).

use std::time::Duration;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::browser::{self, Browser};
use crate::harness::{ScimProvider, USER_SCHEMA, env, eventually, http, idp_domain_and_path, infra, unique};
use crate::idp::{self, IdpUser, new_user};

/// One authorization at the IdP: what the CLI would hold when its loopback listener gets the code.
pub(crate) struct Authorized {
    code: String,
    verifier: String,
    nonce: String,
    redirect_uri: String,
}

fn b64(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

/// Logs `user` in at the IdP for `provider` (its public info from `/api/providers`) and returns
/// the code sent to a loopback redirect URI.
pub(crate) async fn authorize(provider: &str, user: &IdpUser) -> Authorized {
    authorize_with_nonce(provider, user, &b64(&rand_bytes())).await
}

fn rand_bytes() -> [u8; 32] {
    let mut b = [0u8; 32];
    getrandom::fill(&mut b).unwrap();
    b
}

/// The provider as `/api/providers` lists it, once the server's watch has seen it Ready (the CLI
/// that added it saw that a moment earlier, through its own watch).
async fn public_info(provider: &str) -> Value {
    eventually(Duration::from_secs(15), &format!("{provider} in /api/providers"), || async move {
        let body: Value = http().get(format!("{}/api/providers", env().server_urls[0])).send().await.ok()?.json().await.ok()?;
        body["items"].as_array()?.iter().find(|p| p["name"] == provider).cloned()
    })
    .await
}

async fn authorize_with_nonce(provider: &str, user: &IdpUser, nonce: &str) -> Authorized {
    let info = public_info(provider).await;
    let port = browser::login_port();
    let redirect_uri = format!("http://localhost:{port}");
    let verifier = b64(&rand_bytes());
    let challenge = b64(&Sha256::digest(verifier.as_bytes()));
    let state = b64(&rand_bytes());
    let mut url = url::Url::parse(info["authorizationEndpoint"].as_str().unwrap()).unwrap();
    let scopes: Vec<&str> = info["scopes"].as_array().unwrap().iter().map(|s| s.as_str().unwrap()).collect();
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", info["clientID"].as_str().unwrap())
        .append_pair("redirect_uri", &redirect_uri)
        .append_pair("scope", &scopes.join(" "))
        .append_pair("state", &state)
        .append_pair("nonce", nonce)
        .append_pair("code_challenge", &challenge)
        .append_pair("code_challenge_method", "S256");
    let landed = Browser::new().login_at_idp(url.as_str(), &user.email, &user.password, &redirect_uri).await.expect("login at the IdP");
    let q: std::collections::HashMap<String, String> = landed.query_pairs().into_owned().collect();
    assert_eq!(q.get("state"), Some(&state), "{landed}");
    Authorized {
        code: q.get("code").cloned().unwrap_or_else(|| panic!("no code in {landed}")),
        verifier,
        nonce: nonce.to_string(),
        redirect_uri,
    }
}

impl Authorized {
    /// The body of `POST /api/login` that redeems this authorization.
    pub(crate) fn login_body(&self, provider: &str) -> Value {
        json!({"provider": provider, "code": self.code, "redirectURI": self.redirect_uri, "codeVerifier": self.verifier, "nonce": self.nonce})
    }
}

pub(crate) async fn redeem(server: &str, provider: &str, a: &Authorized) -> (u16, Value) {
    post_login(server, a.login_body(provider)).await
}

async fn post_login(server: &str, body: Value) -> (u16, Value) {
    let resp = http().post(format!("{server}/api/login")).json(&body).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

async fn whoami(server: &str, token: &str) -> (u16, Value) {
    let resp = http().get(format!("{server}/api/whoami")).bearer_auth(token).send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap_or(Value::Null))
}

/// Logs in and returns the session token and the login response.
pub(crate) async fn login(provider: &str, user: &IdpUser) -> (String, Value) {
    let a = authorize(provider, user).await;
    let (status, body) = redeem(&env().server_urls[0], provider, &a).await;
    assert_eq!(status, 201, "{body}");
    (body["token"].as_str().unwrap().to_string(), body)
}

pub(crate) fn refusal(status: u16, body: &Value, want_status: u16, want_code: &str) {
    assert_eq!((status, body["error"].as_str().unwrap_or("")), (want_status, want_code), "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.len() > 10), "a sentence for a person: {body}");
}

/// A provider of its own for a test (client `infra-e2e` unless said otherwise), Ready.
struct TestProvider(String);

impl TestProvider {
    fn add(prefix: &str, extra: &[&str]) -> Self {
        Self::add_client(prefix, "infra-e2e", "infra-e2e-secret", extra)
    }

    fn add_client(prefix: &str, client_id: &str, secret: &str, extra: &[&str]) -> Self {
        let name = unique(prefix);
        let mut args =
            vec!["providers", "add", &name, "--url", &idp_domain_and_path_owned(), "--client-id", client_id, "--client-secret", secret];
        args.extend_from_slice(extra);
        infra(&args).ok();
        Self(name)
    }
}

fn idp_domain_and_path_owned() -> &'static str {
    Box::leak(idp_domain_and_path().into_boxed_str())
}

impl Drop for TestProvider {
    fn drop(&mut self) {
        let _ = infra(&["providers", "remove", &self.0]);
    }
}

// ---- identity and groups ---------------------------------------------------------------------

#[tokio::test]
async fn login_returns_a_session_with_groups_from_the_id_token_valid_on_every_replica() {
    let user = new_user("cli", &["engineering", "admins"]).await;
    let (token, body) = login("okta", &user).await;
    assert!(token.starts_with("ist_"), "{body}");
    assert_eq!(body["user"], user.email.as_str());
    assert_eq!(body["provider"], "okta");
    assert_eq!(body["groups"], json!(["admins", "engineering"]));
    assert!(body["expiresAt"].as_str().is_some(), "{body}");
    for server in &env().server_urls {
        let (status, who) = whoami(server, &token).await;
        assert_eq!(status, 200, "{server}: {who}");
        assert_eq!(who["user"], user.email.as_str());
        assert_eq!(who["groups"], json!(["admins", "engineering"]));
    }
    // The User was created (SCIM never saw this person) and records the login.
    let listed = infra(&["users", "list", "--provider", "okta"]).ok().stdout;
    assert!(listed.contains(&user.email), "{listed}");
    // Only a hash of the token is stored.
    for kind in ["sessions", "secrets"] {
        let stored = crate::harness::kubectl(&["get", kind, "-n", &env().namespace, "-l", "infrahq.com/session", "-o", "yaml"]).ok().stdout;
        assert!(!stored.contains(&token) && !stored.contains(&b64(token.as_bytes())), "the token itself is never stored in {kind}");
    }
}

#[tokio::test]
async fn groups_come_from_userinfo_when_the_id_token_is_thin() {
    let p = TestProvider::add_client("thin", "infra-e2e-thin", "infra-e2e-thin-secret", &[]);
    let user = new_user("thin", &["ops", "engineering"]).await;
    let (_, body) = login(&p.0, &user).await;
    assert_eq!(body["groups"], json!(["engineering", "ops"]), "{body}");
}

#[tokio::test]
async fn groups_filter_applies_and_groups_no_longer_asserted_are_removed() {
    let p = TestProvider::add("filter", &["--groups-filter", "eng.*|ops"]);
    let user = new_user("filter", &["engineering", "admins", "platform-eng", "ops"]).await;
    let (_, body) = login(&p.0, &user).await;
    assert_eq!(body["groups"], json!(["engineering", "ops"]), "whole-name match: {body}");
    idp::set_groups(&user, &["engineering"]).await;
    let (token, body) = login(&p.0, &user).await;
    assert_eq!(body["groups"], json!(["engineering"]), "{body}");
    let (_, who) = whoami(&env().server_urls[1], &token).await;
    assert_eq!(who["groups"], json!(["engineering"]));
}

#[tokio::test]
async fn a_scim_provisioned_user_logs_in_as_the_same_user_and_keeps_scim_groups() {
    let p = ScimProvider::new("linked").await;
    let user = new_user("linked", &["engineering"]).await;
    let scim = p.client(0);
    // Okta provisions the person first (userName is the login email, in another case).
    let id = scim.create_user(&user.email.to_uppercase()).await;
    let group = scim
        .post(
            "/Groups",
            &json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": "scim-only", "members": [{"value": id}]}),
        )
        .await;
    group.expect(201);
    let (token, body) = login(&p.name, &user).await;
    assert_eq!(body["groups"], json!(["engineering", "scim-only"]), "{body}");
    // Still one user, with the SCIM id.
    let objects = p.objects("users");
    assert_eq!(objects.len(), 1, "{objects:?}");
    let got = scim.get(&format!("/Users/{id}")).await;
    got.expect(200);
    assert!(whoami(&env().server_urls[1], &token).await.0 == 200);
}

#[tokio::test]
async fn a_user_scim_marked_inactive_is_refused() {
    let p = ScimProvider::new("inactive").await;
    let user = new_user("inactive", &[]).await;
    let created = p.client(0).post("/Users", &json!({"schemas": [USER_SCHEMA], "userName": user.email, "active": false})).await;
    created.expect(201);
    let a = authorize(&p.name, &user).await;
    let (status, body) = redeem(&env().server_urls[0], &p.name, &a).await;
    refusal(status, &body, 403, "user_inactive");
    assert!(body["message"].as_str().unwrap().contains("deactivated"), "{body}");
}

// ---- rejections ------------------------------------------------------------------------------

#[tokio::test]
async fn tampered_and_invalid_id_tokens_are_rejected() {
    let user = new_user("tamper", &["engineering"]).await;
    for (mode, needle) in [
        ("expired", "xpired"),
        ("wrong_audience", "audience"),
        ("unknown_key", "key the provider does not publish"),
        ("tampered", "signature"),
        ("no_nonce", "nonce"),
        ("wrong_nonce", "nonce"),
        ("bad_at_hash", "at_hash"),
    ] {
        idp::tamper(&user, Some(mode)).await;
        let a = authorize("okta", &user).await;
        let (status, body) = redeem(&env().server_urls[0], "okta", &a).await;
        refusal(status, &body, 401, "login_failed");
        assert!(body["message"].as_str().unwrap().contains(needle), "{mode}: {body}");
    }
    idp::tamper(&user, None).await;
    login("okta", &user).await;
}

#[tokio::test]
async fn nonce_mismatch_reuse_and_absence_are_rejected() {
    let user = new_user("nonce", &[]).await;
    // The CLI sends a nonce other than the one in the authorize request.
    let mut a = authorize("okta", &user).await;
    a.nonce = b64(&rand_bytes());
    let (status, body) = redeem(&env().server_urls[0], "okta", &a).await;
    refusal(status, &body, 401, "login_failed");
    // The same nonce twice: the second login is refused even with a fresh code.
    let nonce = b64(&rand_bytes());
    let first = authorize_with_nonce("okta", &user, &nonce).await;
    assert_eq!(redeem(&env().server_urls[0], "okta", &first).await.0, 201);
    let again = authorize_with_nonce("okta", &user, &nonce).await;
    let (status, body) = redeem(&env().server_urls[1], "okta", &again).await;
    refusal(status, &body, 400, "nonce_reused");
    // No nonce at all.
    let a = authorize("okta", &user).await;
    let (status, body) = post_login(
        &env().server_urls[0],
        json!({"provider": "okta", "code": a.code, "redirectURI": a.redirect_uri, "codeVerifier": a.verifier}),
    )
    .await;
    refusal(status, &body, 400, "invalid_request");
}

#[tokio::test]
async fn a_code_used_twice_a_wrong_verifier_and_bad_requests_are_rejected() {
    let user = new_user("replay", &[]).await;
    let a = authorize("okta", &user).await;
    assert_eq!(redeem(&env().server_urls[0], "okta", &a).await.0, 201);
    // The exact request again is refused before the provider is asked (its nonce is spent)...
    let (status, body) = redeem(&env().server_urls[1], "okta", &a).await;
    refusal(status, &body, 400, "nonce_reused");
    // ...and with a fresh nonce, the provider refuses the spent code.
    let fresh = Authorized { nonce: b64(&rand_bytes()), ..a };
    let (status, body) = redeem(&env().server_urls[1], "okta", &fresh).await;
    refusal(status, &body, 400, "invalid_grant");
    // PKCE: the code is bound to the challenge of the authorize request.
    let mut b = authorize("okta", &user).await;
    b.verifier = b64(&rand_bytes());
    let (status, body) = redeem(&env().server_urls[0], "okta", &b).await;
    refusal(status, &body, 400, "invalid_grant");
    // A redirect URI that is not registered never reaches the provider.
    let c = authorize("okta", &user).await;
    for uri in ["https://evil.example/callback", "http://localhost:9", "http://127.0.0.1:18080/login/callback"] {
        let (status, body) = post_login(
            &env().server_urls[0],
            json!({"provider": "okta", "code": c.code, "redirectURI": uri, "codeVerifier": c.verifier, "nonce": c.nonce}),
        )
        .await;
        refusal(status, &body, 400, "redirect_uri_not_allowed");
    }
    // The code was not spent by those refusals.
    assert_eq!(redeem(&env().server_urls[0], "okta", &c).await.0, 201);
    // Unknown provider, not JSON, missing fields.
    let (status, body) = post_login(
        &env().server_urls[0],
        json!({"provider": "nope", "code": "x", "redirectURI": c.redirect_uri, "codeVerifier": c.verifier, "nonce": "n"}),
    )
    .await;
    refusal(status, &body, 404, "unknown_provider");
    let resp = http().post(format!("{}/api/login", env().server_urls[0])).body("{").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 400);
}

/// Rotating the stand-in IdP's keys races the logins of every other test (a token signed by the
/// new key can reach a replica within the 2 s refetch limit of an earlier fetch), so it runs alone.
#[tokio::test]
#[ignore = "rotates the stand-in IdP's keys under everyone: e2e/test runs it alone after the suite"]
async fn key_rotation_at_the_provider_does_not_break_logins() {
    let user = new_user("rotate", &[]).await;
    login("okta", &user).await;
    let resp = idp::idp_http()
        .post(format!("{}/__admin/keys/rotate", url::Url::parse(&env().idp_url).unwrap().origin().ascii_serialization()))
        .header("x-admin-token", "e2e-admin")
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    login("okta", &user).await;
}

// ---- sessions --------------------------------------------------------------------------------

#[tokio::test]
async fn logout_revokes_on_every_replica_at_once() {
    let user = new_user("logout", &[]).await;
    let (token, _) = login("okta", &user).await;
    let resp = http().post(format!("{}/api/logout", env().server_urls[0])).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 204);
    for server in &env().server_urls {
        let (status, body) = whoami(server, &token).await;
        refusal(status, &body, 401, "unauthenticated");
    }
    let again = http().post(format!("{}/api/logout", env().server_urls[1])).bearer_auth(&token).send().await.unwrap();
    assert_eq!(again.status().as_u16(), 401);
    // Forged and malformed tokens.
    for bad in [format!("ist_{}_{}", "a".repeat(12), "B".repeat(43)), "nonsense".into(), token.replace("ist_", "isk_")] {
        assert_eq!(whoami(&env().server_urls[0], &bad).await.0, 401, "{bad}");
    }
    assert_eq!(http().get(format!("{}/api/whoami", env().server_urls[0])).send().await.unwrap().status().as_u16(), 401);
}

#[tokio::test]
async fn deactivation_through_scim_ends_existing_sessions() {
    let p = ScimProvider::new("deactivate").await;
    let user = new_user("deactivate", &[]).await;
    let id = p.client(0).create_user(&user.email).await;
    let (token, _) = login(&p.name, &user).await;
    assert_eq!(whoami(&env().server_urls[1], &token).await.0, 200);
    p.client(1)
        .patch(
            &format!("/Users/{id}"),
            &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "replace", "value": {"active": false}}]}),
        )
        .await
        .expect(200);
    for server in &env().server_urls {
        let (status, body) = whoami(server, &token).await;
        refusal(status, &body, 401, "unauthenticated");
    }
    // Deleting a user through SCIM ends its sessions too.
    let other = new_user("deleted", &[]).await;
    let other_id = p.client(0).create_user(&other.email).await;
    let (token, _) = login(&p.name, &other).await;
    p.client(0).delete(&format!("/Users/{other_id}")).await.expect_ok_or_no_content();
    let (status, body) = whoami(&env().server_urls[1], &token).await;
    refusal(status, &body, 401, "unauthenticated");
}

#[tokio::test]
async fn removing_the_provider_ends_its_sessions() {
    let p = TestProvider::add("gone", &[]);
    let user = new_user("gone", &[]).await;
    let (token, _) = login(&p.0, &user).await;
    infra(&["providers", "remove", &p.0]).ok();
    eventually(Duration::from_secs(10), "the session to end with its provider", || {
        let token = token.clone();
        async move { (whoami(&env().server_urls[1], &token).await.0 == 401).then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn a_refresh_refused_by_the_provider_ends_the_session() {
    let user = new_user("refresh", &[]).await;
    let (token, _) = login("okta", &user).await;
    // The controller re-checks sessions every 3 s here; while the IdP vouches, they stay.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(whoami(&env().server_urls[0], &token).await.0, 200);
    idp::disable(&user).await;
    eventually(Duration::from_secs(30), "the session to end after the IdP refused its refresh token", || {
        let token = token.clone();
        async move { (whoami(&env().server_urls[1], &token).await.0 == 401).then_some(()) }
    })
    .await;
}

/// The loopback redirect URIs the suite's logins use (comma-separated), as e2e/up registered them.
fn loopback_uris() -> String {
    let ports = std::env::var("INFRA_LOGIN_PORTS").expect("INFRA_LOGIN_PORTS set by e2e/up");
    ports.split_whitespace().map(|p| format!("http://localhost:{p}")).collect::<Vec<_>>().join(",")
}

/// A second stand-in IdP, of this test's own, that the test can take down.
struct OwnIdp {
    child: std::process::Child,
    port: u16,
}

impl OwnIdp {
    async fn start(port: u16) -> Self {
        let state = std::env::var("INFRA_STATE_DIR").unwrap();
        let log = std::fs::File::create(format!("{state}/logs/idp-{port}.log")).unwrap();
        let child = std::process::Command::new("node")
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/idp/server.mjs"))
            .env("IDP_PORT", port.to_string())
            .env("STATE_DIR", &state)
            .env("IDP_EXTRA_REDIRECT_URIS", loopback_uris())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("node runs");
        let me = Self { child, port };
        let discovery = format!("https://localhost:{port}/oauth2/default/.well-known/openid-configuration");
        crate::harness::wait_until_up(&idp::idp_http(), &discovery, "the second IdP to start").await;
        me
    }
}

impl Drop for OwnIdp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn an_unreachable_provider_does_not_end_sessions() {
    let mut own = OwnIdp::start(18544).await;
    let name = unique("down");
    let url = format!("localhost:{}/oauth2/default", own.port);
    infra(&["providers", "add", &name, "--url", &url, "--client-id", "infra-e2e", "--client-secret", "infra-e2e-secret"]).ok();
    let p = TestProvider(name);
    let alice = IdpUser { email: "alice@example.com".into(), password: "alice-password".into() };
    let (token, _) = login(&p.0, &alice).await;
    // A confirmed re-check first, then the provider goes away.
    tokio::time::sleep(Duration::from_secs(4)).await;
    own.child.kill().unwrap();
    own.child.wait().unwrap();
    // Several re-check intervals (3 s here) pass with the provider unreachable...
    let logs = || -> String {
        let state = std::env::var("INFRA_STATE_DIR").unwrap();
        ["controller-0", "controller-1"]
            .iter()
            .map(|c| std::fs::read_to_string(format!("{state}/logs/{c}.log")).unwrap_or_default())
            .collect()
    };
    eventually(Duration::from_secs(30), "the controller to log that it could not re-check the session", || {
        let found = logs().lines().any(|l| l.contains("could not re-check the session") && l.contains(&p.0));
        async move { found.then_some(()) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    // ...and the session survives.
    let (status, who) = whoami(&env().server_urls[1], &token).await;
    assert_eq!(status, 200, "{who}");
}

/// A session's refresh token belongs to the issuer that granted it: when the provider is pointed at
/// another issuer, its sessions end instead of their tokens being sent to the new one.
#[tokio::test]
async fn re_pointing_a_provider_at_another_issuer_ends_its_sessions() {
    let own = OwnIdp::start(18545).await;
    let p = TestProvider::add("moved", &[]);
    let alice = IdpUser { email: "alice@example.com".into(), password: "alice-password".into() };
    let (token, _) = login(&p.0, &alice).await;
    assert_eq!(whoami(&env().server_urls[0], &token).await.0, 200);
    infra(&["providers", "edit", &p.0, "--url", &format!("localhost:{}/oauth2/default", own.port)]).ok();
    let body = eventually(Duration::from_secs(15), "the session to end after its provider moved", || {
        let token = token.clone();
        async move {
            let (status, body) = whoami(&env().server_urls[1], &token).await;
            (status == 401).then_some(body)
        }
    })
    .await;
    refusal(401, &body, 401, "unauthenticated");
    // Ended because the provider moved (by the server or by the controller's re-check, whichever
    // came first), not because the new issuer refused a refresh token it was sent.
    let state = std::env::var("INFRA_STATE_DIR").unwrap();
    eventually(Duration::from_secs(10), "a log line saying the session ended because the provider moved", || {
        let found = ["server-0", "server-1", "controller-0", "controller-1"]
            .iter()
            .flat_map(|r| {
                std::fs::read_to_string(format!("{state}/logs/{r}.log")).unwrap_or_default().lines().map(String::from).collect::<Vec<_>>()
            })
            .any(|l| l.contains("session ended") && l.contains(&p.0) && l.contains("provider_changed"));
        async move { found.then_some(()) }
    })
    .await;
    drop(own);
}

#[tokio::test]
async fn an_invalid_groups_filter_is_reported_and_refuses_logins() {
    let name = unique("badfilter");
    // The Secret first, so that the filter is the only thing wrong from the first reconcile on.
    let manifest = format!(
        "{}---\napiVersion: infrahq.com/v1alpha1\nkind: IdentityProvider\nmetadata:\n  name: {name}\nspec:\n  kind: okta\n  url: {}\n  clientID: infra-e2e\n  clientSecretRef:\n    name: {name}-secret\n  groupsFilter: \"eng(\"\n",
        crate::harness::client_secret_manifest(&format!("{name}-secret"), "infra-e2e-secret"),
        idp_domain_and_path()
    );
    crate::harness::kubectl_apply(&manifest).ok();
    let p = TestProvider(name);
    let (status, reason, message) = crate::harness::settled_condition(&p.0, "SettingsValid").await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "InvalidGroupsFilter"), "{message}");
    let (ready, _, ready_message) = crate::harness::settled_condition(&p.0, "Ready").await;
    assert_eq!(ready, "False");
    assert!(ready_message.contains("groupsFilter"), "{ready_message}");
}

/// A server replica of this test's own with short session lifetimes.
struct ShortSessionServer {
    child: std::process::Child,
    url: String,
}

impl ShortSessionServer {
    async fn start(port: u16, lifetime: &str, idle: &str) -> Self {
        let state = std::env::var("INFRA_STATE_DIR").unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let child = crate::harness::extra_server(
            port,
            &["--session-lifetime", lifetime, "--session-idle-timeout", idle],
            &[("INFRA_EXTRA_CA_FILE", format!("{state}/idp/ca.crt")), ("INFRA_CLI_REDIRECT_URIS", loopback_uris())],
            Some(&format!("server-short-{port}")),
        )
        .await;
        Self { child, url }
    }
}

impl Drop for ShortSessionServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[tokio::test]
async fn sessions_end_after_the_idle_timeout_and_after_their_lifetime() {
    let server = ShortSessionServer::start(18092, "8s", "3s").await;
    let user = new_user("lifetime", &[]).await;
    let log_in = || async {
        let a = authorize("okta", &user).await;
        let (status, body) = redeem(&server.url, "okta", &a).await;
        assert_eq!(status, 201, "{body}");
        body["token"].as_str().unwrap().to_string()
    };
    // Idle: unused for longer than the idle timeout.
    let idle = log_in().await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (status, body) = whoami(&server.url, &idle).await;
    refusal(status, &body, 401, "unauthenticated");
    assert!(body["message"].as_str().unwrap().contains("inactivity"), "{body}");
    // Lifetime: used every second, so never idle, and still over at 8 s.
    let busy = log_in().await;
    let start = std::time::Instant::now();
    loop {
        let (status, body) = whoami(&server.url, &busy).await;
        if status == 401 {
            // Either this server saw it expire, or the controller deleted it at its expiry first.
            let message = body["message"].as_str().unwrap();
            assert!(message.contains("expired") || message.contains("not valid"), "{body}");
            assert!(start.elapsed() >= Duration::from_secs(6), "ended too early: {:?}", start.elapsed());
            break;
        }
        assert_eq!(status, 200, "{body}");
        assert!(start.elapsed() < Duration::from_secs(15), "the session outlived its lifetime");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

#[tokio::test]
async fn metrics_count_logins_refusals_and_sessions() {
    let user = new_user("metrics", &[]).await;
    login("okta", &user).await;
    let (status, _) = post_login(&env().server_urls[0], json!({"provider": "okta"})).await;
    assert_eq!(status, 400);
    let text = http().get(format!("{}/metrics", env().server_metrics_urls[0])).send().await.unwrap().text().await.unwrap();
    assert!(text.contains("infra_logins_total{outcome=\"success\"}"), "{text}");
    // The leader controller reports how many sessions are stored.
    let controllers: Vec<String> = std::env::var("INFRA_CONTROLLER_URLS").unwrap().split_whitespace().map(String::from).collect();
    eventually(Duration::from_secs(30), "the leader to report stored sessions", || {
        let controllers = controllers.clone();
        async move {
            for c in &controllers {
                let text = http().get(format!("{c}/metrics")).send().await.ok()?.text().await.ok()?;
                let leader = text.lines().any(|l| l == "infra_controller_leader 1");
                let sessions = text.lines().find_map(|l| l.strip_prefix("infra_sessions ")).and_then(|v| v.trim().parse::<i64>().ok());
                if leader && sessions.is_some_and(|n| n >= 1) {
                    return Some(());
                }
            }
            None
        }
    })
    .await;
}
