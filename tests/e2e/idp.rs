//! The stand-in IdP's admin endpoints (e2e/idp/README.md): users made for one test, and switches
//! that make the IdP misbehave for that user only, so tests running in parallel never disturb
//! each other.

use crate::harness::{env, unique};
use serde_json::{Value, json};

const ADMIN_TOKEN: &str = "e2e-admin";

/// An HTTP client that trusts the stand-in IdP's test CA.
pub fn idp_http() -> reqwest::Client {
    let ca = std::fs::read(std::env::var("INFRA_IDP_CA_FILE").expect("INFRA_IDP_CA_FILE set by e2e/up")).expect("CA readable");
    reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(15))
        .build()
        .unwrap()
}

/// `https://localhost:18443` (the IdP's origin, where `/__admin/` lives).
fn origin() -> String {
    let u = url::Url::parse(&env().idp_url).unwrap();
    u.origin().ascii_serialization()
}

async fn admin(path: &str, body: Value) -> (u16, Value) {
    let resp = idp_http()
        .post(format!("{}/__admin/{path}", origin()))
        .header("x-admin-token", ADMIN_TOKEN)
        .json(&body)
        .send()
        .await
        .expect("IdP admin endpoint reachable");
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

pub struct IdpUser {
    pub email: String,
    pub password: String,
}

/// A new user at the IdP with `groups`, unique to the calling test.
pub async fn new_user(prefix: &str, groups: &[&str]) -> IdpUser {
    let email = format!("{}@example.com", unique(prefix));
    let password = format!("{}-pw", unique("secret"));
    let (status, body) = admin("users", json!({"email": email, "password": password, "groups": groups})).await;
    assert_eq!(status, 201, "creating IdP user {email}: {body}");
    IdpUser { email, password }
}

/// A new user whose email address the IdP marks unverified (`email_verified: false`).
pub async fn new_unverified_user(prefix: &str) -> IdpUser {
    let email = format!("{}@example.com", unique(prefix));
    let password = format!("{}-pw", unique("secret"));
    let (status, body) = admin("users", json!({"email": email, "password": password, "groups": [], "email_verified": false})).await;
    assert_eq!(status, 201, "creating IdP user {email}: {body}");
    assert_eq!(body["email_verified"], false, "{body}");
    IdpUser { email, password }
}

/// From now on the IdP alters every ID token it issues for `user` (`None` stops it).
pub async fn tamper(user: &IdpUser, mode: Option<&str>) {
    let (status, body) = admin(&format!("users/{}/tamper", user.email), json!({"mode": mode})).await;
    assert_eq!(status, 200, "tamper {mode:?}: {body}");
}

/// Disables `user` at the IdP: logins are refused and refresh tokens stop working.
pub async fn disable(user: &IdpUser) {
    let (status, body) = admin(&format!("users/{}/disable", user.email), json!({})).await;
    assert!((200..300).contains(&status), "disable: {status} {body}");
}

pub async fn set_groups(user: &IdpUser, groups: &[&str]) {
    let (status, body) = admin(&format!("users/{}/groups", user.email), json!(groups)).await;
    assert!((200..300).contains(&status), "groups: {status} {body}");
}
