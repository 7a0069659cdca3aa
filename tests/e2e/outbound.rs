//! Requests to provider URLs are bounded: a size cap on what is read, coarse failure messages that
//! do not map internal ports, and an operator flag that refuses internal addresses.

use serde_json::json;

use crate::harness::*;

/// A provider of kind `oidc` at `url`, applied with kubectl; deleted on drop.
struct Provider(String);

impl Provider {
    fn apply(prefix: &str, url: &str) -> Self {
        let name = unique(prefix);
        kubectl_apply(&format!(
            "apiVersion: infrahq.com/v1alpha1\nkind: IdentityProvider\nmetadata:\n  name: {name}\nspec:\n  kind: oidc\n  url: {url}\n  clientID: infra-e2e\n  clientSecretRef:\n    name: {name}-secret\n---\n{}",
            client_secret_manifest(&format!("{name}-secret"), "infra-e2e-secret")
        ))
        .ok();
        Self(name)
    }
}

impl Drop for Provider {
    fn drop(&mut self) {
        let ns = &env().namespace;
        kubectl(&["delete", "identityprovider", &self.0, "-n", ns, "--ignore-not-found"]);
        kubectl(&["delete", "secret", &format!("{}-secret", self.0), "-n", ns, "--ignore-not-found"]);
    }
}

fn idp_origin() -> String {
    // https://localhost:18443/oauth2/default -> localhost:18443
    env().idp_url.trim_start_matches("https://").split('/').next().unwrap().to_string()
}

#[tokio::test]
async fn a_huge_discovery_document_is_refused_without_reading_it() {
    let p = Provider::apply("huge", &format!("https://{}/huge", idp_origin()));
    let (status, reason, message) = settled_condition(&p.0, "DiscoverySucceeded").await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "InvalidDocument"), "{message}");
    assert!(message.contains("larger than 1024 KiB"), "{message}");
    // The controllers are still alive and well (they did not buffer 150 MB each).
    let controllers: Vec<String> = std::env::var("INFRA_CONTROLLER_URLS").unwrap().split_whitespace().map(String::from).collect();
    for c in controllers {
        assert!(http().get(format!("{c}/healthz")).send().await.unwrap().status().is_success(), "{c}");
    }
}

#[tokio::test]
async fn failures_do_not_tell_closed_ports_from_other_hosts() {
    // A closed port on loopback and a path that is not an OpenID provider: the conditions say
    // "unreachable" and "not an OpenID provider", never a raw connection error or HTTP status.
    let closed = Provider::apply("closed", "https://localhost:9/x");
    let (status, reason, message) = settled_condition(&closed.0, "DiscoverySucceeded").await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Unreachable"), "{message}");
    for leak in ["refused", "tcp", "os error", "connect error"] {
        assert!(!message.to_lowercase().contains(leak), "{leak:?} in {message}");
    }
    let not_oidc = Provider::apply("notoidc", &format!("https://{}/nothing-here", idp_origin()));
    let (status, reason, message) = settled_condition(&not_oidc.0, "DiscoverySucceeded").await;
    assert_eq!((status.as_str(), reason.as_str()), ("False", "NotOpenIDProvider"), "{message}");
    assert!(!message.contains("404") && !message.to_lowercase().contains("not found"), "{message}");
}

/// With `--deny-internal-provider-addresses=true` (the chart's default), the sample provider on
/// localhost is refused before any connection: a login's code is never sent to its token endpoint.
/// The controller's login broker redeems codes, so the flag is the controller's: a server whose
/// broker denies internal addresses answers the refusal.
#[tokio::test]
async fn a_broker_that_denies_internal_addresses_does_not_contact_a_loopback_provider() {
    const PORT: u16 = 18096;
    const BROKER_PORT: u16 = 18095;
    let state = std::env::var("INFRA_STATE_DIR").unwrap();
    let mut controller = extra_controller(BROKER_PORT, &["--deny-internal-provider-addresses=true"], "controller-deny-internal").await;
    let mut server = extra_server(
        PORT,
        &[],
        &[
            ("INFRA_EXTRA_CA_FILE", format!("{state}/idp/ca.crt")),
            ("INFRA_CLI_REDIRECT_URIS", "http://localhost:8301".into()),
            ("INFRA_BROKER_URLS", format!("http://127.0.0.1:{BROKER_PORT}")),
        ],
        Some("server-deny-internal"),
    )
    .await;
    let nonce = unique("nonce");
    let login = json!({"provider": "okta", "code": "some-code", "redirectURI": "http://localhost:8301", "codeVerifier": "v".repeat(43), "nonce": nonce});
    let resp = http().post(format!("http://127.0.0.1:{PORT}/api/login")).json(&login).send().await.unwrap();
    let status = resp.status().as_u16();
    let body: serde_json::Value = resp.json().await.unwrap();
    for child in [&mut server, &mut controller] {
        child.kill().unwrap();
        child.wait().unwrap();
    }
    assert_eq!(status, 502, "{body}");
    assert_eq!(body["error"], "idp_unreachable", "{body}");
    assert!(body["message"].as_str().unwrap().contains("not a public address"), "{body}");
    // The same request to a replica without the flag reaches the provider, which refuses the code.
    let mut again = login.clone();
    again["nonce"] = json!(unique("nonce"));
    let resp = http().post(format!("{}/api/login", env().server_urls[0])).json(&again).send().await.unwrap();
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"], "invalid_grant", "{body}");
}
