//! The dashboard login in a real headless Chromium (Debian's chromium driven by playwright-core,
//! e2e/browser/dashboard.mjs), against the stand-in Okta over HTTPS.

use std::process::Command;

use crate::dashboard_admin::bind;
use crate::harness::{GROUP_SCHEMA, Scim, Value, env, idp_domain_and_path, providers, unique};
use crate::idp::new_user;

/// Runs one scenario of the browser driver and returns what it observed.
pub fn browser(args: &[&str]) -> Value {
    browser_within(args, 30)
}

/// [`browser`], with `seconds` for the scenario.
fn browser_within(args: &[&str], seconds: u32) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/e2e/browser/dashboard.mjs");
    let out = Command::new("node")
        .arg(script)
        .args(args)
        .env("INFRA_SERVER_URL", &env().server_urls[0])
        .env("INFRA_BROWSER_TIMEOUT", seconds.to_string())
        .output()
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser driver failed ({:?})\nstdout:\n{stdout}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("driver output is not JSON ({e}): {stdout}"))
}

#[tokio::test]
async fn chromium_logs_in_lands_on_the_dashboard_and_signs_out() {
    let user = new_user("dash", &["engineering", "admins"]).await;
    let seen = browser(&["login", "--provider", "okta", "--user", &user.email, "--password", &user.password]);
    let server = &env().server_urls[0];
    assert_eq!(seen["finalURL"], format!("{server}/"), "{seen}");
    assert_eq!(seen["status"], 200, "{seen}");
    assert_eq!(seen["user"], user.email.as_str(), "{seen}");
    assert_eq!(seen["provider"], "okta");
    assert_eq!(seen["groups"], serde_json::json!(["admins", "engineering"]));
    // The session cookie: HttpOnly, SameSite=Lax, whole site; not Secure because this server's
    // external URL is plain http on loopback.
    let cookies = seen["cookies"].as_array().unwrap();
    let session = cookies.iter().find(|c| c["name"] == "infra_session").unwrap_or_else(|| panic!("no session cookie: {seen}"));
    assert_eq!(session["httpOnly"], true);
    assert_eq!(session["sameSite"], "Lax");
    assert_eq!(session["path"], "/");
    assert_eq!(session["secure"], false);
    assert!(!cookies.iter().any(|c| c["name"] == "infra_login"), "the login cookie is cleared: {seen}");
    // The callback went through the server, never to a success page before the code exchange.
    let paths: Vec<String> = seen["navigations"].as_array().unwrap().iter().map(|n| n["url"].as_str().unwrap().to_string()).collect();
    assert!(paths.iter().any(|p| p.ends_with("/login/callback")), "{paths:?}");
    // Signing out ends the session and shows the sign-in links again.
    assert_eq!(seen["signedOut"], true, "{seen}");
    assert_eq!(seen["cookiesAfterLogout"], serde_json::json!([]), "{seen}");
}

#[tokio::test]
async fn chromium_cancel_at_the_provider_shows_a_failure_page_with_retry() {
    let seen = browser(&["cancel", "--provider", "okta"]);
    assert_eq!(seen["status"], 403, "{seen}");
    assert_eq!(seen["heading"], "Login failed", "{seen}");
    let reason = seen["reason"].as_str().unwrap();
    assert!(reason.contains("access_denied"), "{reason}");
    assert_eq!(seen["retryHref"], "/login?provider=okta", "{seen}");
}

#[tokio::test]
async fn chromium_wrong_state_is_refused() {
    let user = new_user("dash-state", &[]).await;
    let seen = browser(&["bad-state", "--provider", "okta", "--user", &user.email, "--password", &user.password]);
    assert_eq!(seen["stateChanged"], true, "{seen}");
    assert_eq!(seen["status"], 400, "{seen}");
    assert_eq!(seen["heading"], "Login failed", "{seen}");
    assert!(seen["reason"].as_str().unwrap().contains("state"), "{seen}");
}

/// The login state lives in the browser's signed cookie, so a login started on one replica
/// finishes on another (behind a load balancer, the callback may land anywhere). Replayed, the
/// callback is refused: the code is spent, and the login cookie is gone.
#[tokio::test]
async fn a_login_started_on_one_replica_finishes_on_another() {
    let user = new_user("dash-replica", &["engineering"]).await;
    let (first, second) = (&env().server_urls[0], &env().server_urls[1]);
    let browser = crate::browser::Browser::new();
    let callback = browser
        .login_at_idp(&format!("{first}/login?provider=okta"), &user.email, &user.password, &format!("{first}/login/callback"))
        .await
        .expect("login at the IdP");
    let mut on_second = callback.clone();
    on_second.set_port(url::Url::parse(second).unwrap().port()).unwrap();
    let landed = browser.get(on_second.as_str()).await.unwrap();
    assert_eq!(landed.status, 303, "{}", landed.text);
    assert_eq!(landed.location().map(|u| u.path().to_string()).as_deref(), Some("/"));
    let home = browser.get(&format!("{first}/")).await.unwrap();
    assert!(home.text.contains(&format!("<span id=\"user\">{}</span>", user.email)), "{}", home.text);
    // The same callback again: no login cookie any more, so it is refused with a page, not a session.
    let replay = browser.get(callback.as_str()).await.unwrap();
    assert_eq!(replay.status, 400, "{}", replay.text);
    assert!(replay.text.contains("Login failed") && replay.text.contains("id=\"retry\""), "{}", replay.text);
}

/// The Okta guide's steps in the browser: an admin adds a provider through the form (it turns
/// Ready, the page shows the redirect URIs and the SCIM URL with copy buttons), generates a SCIM
/// key, an Okta-style SCIM client provisions users and a group with it, and they appear on
/// /users and /groups, where search finds them. No page breaks the Content-Security-Policy.
/// Screenshots of every page go to target/e2e-artifacts/.
#[tokio::test]
async fn chromium_an_admin_adds_a_provider_generates_a_scim_key_and_finds_the_provisioned_users() {
    let admin = new_user("dash-tour", &[]).await;
    bind(&admin, "admin");
    let server = &env().server_urls[0];
    let name = unique("tour");
    let url = idp_domain_and_path();
    let seen = browser_within(
        &[
            "add-provider",
            "--user",
            &admin.email,
            "--password",
            &admin.password,
            "--name",
            &name,
            "--url",
            &url,
            "--client-id",
            "infra-e2e",
            "--client-secret",
            "infra-e2e-secret",
        ],
        150,
    );
    assert_eq!(seen["providerStatus"], 200, "{seen}");
    assert_eq!(seen["phase"], "Ready", "{seen}");
    let uris: Vec<&str> = seen["redirectURIs"].as_array().unwrap().iter().map(|u| u.as_str().unwrap()).collect();
    assert!(uris.contains(&format!("{server}/login/callback").as_str()), "{seen}");
    assert_eq!(seen["scimURL"], format!("{server}/api/scim/v2"), "{seen}");
    assert!(seen["copyButtons"].as_u64().unwrap() >= 2, "the script shows the copy buttons: {seen}");
    assert_eq!(seen["keyPage"]["status"], 200, "{seen}");
    let key = seen["keyPage"]["key"].as_str().unwrap().strip_prefix("Bearer ").expect("Bearer <key>").to_string();
    assert_eq!(seen["cspViolations"], serde_json::json!([]), "{seen}");

    let scim = Scim::new(server, &key).okta();
    let prefix = unique("tourist");
    let a = scim.create_user(&format!("{prefix}-a@example.com")).await;
    let b = scim.create_user(&format!("{prefix}-b@example.com")).await;
    let group = format!("{prefix} team");
    scim.post("/Groups", &serde_json::json!({"schemas": [GROUP_SCHEMA], "displayName": group, "members": [{"value": a}, {"value": b}]}))
        .await
        .expect(201);
    let seen = browser(&["lists", "--user", &admin.email, "--password", &admin.password, "--search", &prefix]);
    assert_eq!(seen["users"], serde_json::json!([format!("{prefix}-a@example.com"), format!("{prefix}-b@example.com")]), "{seen}");
    assert_eq!(seen["groups"], serde_json::json!([group]), "{seen}");
    assert_eq!(seen["grantsStatus"], 200, "{seen}");
    assert_eq!(seen["cspViolations"], serde_json::json!([]), "{seen}");
    providers().await.delete(&name, &Default::default()).await.unwrap();
}

/// A person with no rights: their own page, no links to the admin pages, 403 on each of them.
#[tokio::test]
async fn chromium_a_person_without_rights_sees_no_admin_links_and_gets_403() {
    let person = new_user("dash-plain", &[]).await;
    let seen = browser(&["no-rights", "--user", &person.email, "--password", &person.password]);
    assert_eq!(seen["nav"], serde_json::json!(["nav-home"]), "{seen}");
    for path in ["/providers", "/users", "/groups", "/grants"] {
        assert_eq!(seen["statuses"][path], 403, "{path}: {seen}");
    }
    assert_eq!(seen["forms"], 0, "no forms on the 403 page: {seen}");
}
