//! SCIM keys: generation, the bearer authentication on every server replica, revocation, expiry
//! and provider binding.

use std::time::Duration;

use k8s_openapi::api::core::v1::Secret;
use kube::Api;
use kube::api::{Patch, PatchParams};

use crate::harness::*;

/// Adds a Ready provider through the CLI and returns its name.
async fn ready_provider(prefix: &str) -> String {
    let name = unique(prefix);
    infra(&["providers", "add", &name, "--url", &idp_domain_and_path(), "--client-id", "infra-e2e", "--client-secret", "infra-e2e-secret"])
        .ok();
    name
}

/// Creates a key with the CLI and returns (ScimKey name, bearer key).
fn create_key(provider: &str, extra: &[&str]) -> (String, String) {
    let name = unique("key");
    let mut args = vec!["scim-keys", "create", "--provider", provider, "--name", &name];
    args.extend_from_slice(extra);
    let run = infra(&args).ok();
    let token = printed_key(&run.stdout);
    assert!(run.stdout.contains("/api/scim/v2"), "{}", run.stdout);
    (name, token)
}

async fn spc(base: &str, auth: Option<&str>) -> (u16, serde_json::Value, Option<String>) {
    let mut req = http().get(format!("{base}/api/scim/v2/ServiceProviderConfig"));
    if let Some(a) = auth {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let content_type = resp.headers().get("content-type").map(|v| v.to_str().unwrap().to_string());
    let body = resp.json().await.unwrap_or(serde_json::Value::Null);
    (status, body, content_type)
}

/// Waits until every server replica answers `want` for this Authorization header.
async fn all_replicas_answer(auth: &str, want: u16, within: Duration) {
    for base in &env().server_urls {
        eventually(within, &format!("{base} to answer {want}"), || async move { (spc(base, Some(auth)).await.0 == want).then_some(()) })
            .await;
    }
}

#[tokio::test]
async fn a_key_authenticates_on_every_replica_until_revoked() {
    let provider = ready_provider("keys").await;
    let (name, token) = create_key(&provider, &["--description", "e2e"]);
    let auth = format!("Bearer {token}");
    all_replicas_answer(&auth, 200, Duration::from_secs(10)).await;
    let (_, body, content_type) = spc(&env().server_urls[0], Some(&auth)).await;
    assert_eq!(content_type.as_deref(), Some("application/scim+json"));
    assert_eq!(body["schemas"][0], "urn:ietf:params:scim:schemas:core:2.0:ServiceProviderConfig");

    // The status carries the key id, never the key; the Secret is owned by the ScimKey.
    let key = scim_keys().await.get(&name).await.unwrap();
    let status = key.status.clone().unwrap();
    let key_id = status.key_id.clone().unwrap();
    assert!(token.contains(&key_id));
    assert_eq!(status.phase, Some(infra::api::KeyPhase::Active));
    // The server authenticates with the hash in status (it reads no Secrets).
    assert_eq!(status.key_hash.as_deref(), Some(infra::keys::hash_hex(&token).as_str()));
    let yaml = kubectl(&["get", "scimkey", &name, "-n", &env().namespace, "-o", "yaml"]).ok().stdout;
    assert!(!yaml.contains(&token));
    let secrets: Api<Secret> = Api::namespaced(client().await, &env().namespace);
    let secret = secrets.get(status.secret_name.as_ref().unwrap()).await.unwrap();
    assert_eq!(secret.metadata.owner_references.clone().unwrap()[0].uid, key.metadata.uid.clone().unwrap());
    // The Secret keeps only the key's hash; the key was handed to the CLI sealed to its one-time
    // public key, and nothing anyone can read contains it.
    let data = secret.data.clone().unwrap();
    assert_eq!(data.keys().collect::<Vec<_>>(), vec![infra::api::KEY_HASH_DATA], "{data:?}");
    assert_eq!(String::from_utf8(data[infra::api::KEY_HASH_DATA].0.clone()).unwrap(), infra::keys::hash_hex(&token));
    let secret_yaml = kubectl(&["get", "secret", status.secret_name.as_ref().unwrap(), "-n", &env().namespace, "-o", "yaml"]).ok().stdout;
    assert!(!secret_yaml.contains(&token) && !secret_yaml.contains(&b64(&token)), "{secret_yaml}");
    assert!(status.sealed_key.is_some());
    let listed = infra(&["scim-keys", "list", "--provider", &provider]).ok().stdout;
    assert!(listed.contains(&key_id) && !listed.contains(&token), "{listed}");

    // The scheme is case-insensitive (RFC 7235).
    assert_eq!(spc(&env().server_urls[0], Some(&format!("bearer {token}"))).await.0, 200);

    infra(&["scim-keys", "revoke", &name]).ok();
    all_replicas_answer(&auth, 401, Duration::from_secs(5)).await;
    infra(&["providers", "remove", &provider]).ok();
}

#[tokio::test]
async fn malformed_and_unknown_credentials_get_rfc7644_401s() {
    let base = &env().server_urls[0];
    let forged = format!("Bearer isk_{}_{}", "a".repeat(12), "B".repeat(43));
    for auth in [None, Some("Basic dXNlcjpwYXNz"), Some("Bearer"), Some("Bearer not-a-key"), Some(forged.as_str())] {
        let (status, body, content_type) = spc(base, auth).await;
        assert_eq!(status, 401, "{auth:?}");
        assert_eq!(content_type.as_deref(), Some("application/scim+json"));
        assert_eq!(body["schemas"][0], "urn:ietf:params:scim:api:messages:2.0:Error");
        assert_eq!(body["status"], "401");
        assert!(body["detail"].as_str().is_some_and(|d| !d.is_empty()));
    }
}

#[tokio::test]
async fn expired_keys_are_refused() {
    let provider = ready_provider("expiry").await;
    let (name, token) = create_key(&provider, &["--expires-after", "4s"]);
    let auth = format!("Bearer {token}");
    let key = scim_keys().await.get(&name).await.unwrap();
    assert!(key.status.unwrap().expires_at.is_some());
    // Accepted before it expires (the window is short, so only the first replica is asked)...
    let first = spc(&env().server_urls[0], Some(&auth)).await.0;
    assert!(first == 200 || first == 401, "{first}");
    // ...and refused everywhere after, with a message that says why.
    tokio::time::sleep(Duration::from_secs(5)).await;
    all_replicas_answer(&auth, 401, Duration::from_secs(5)).await;
    let (_, body, _) = spc(&env().server_urls[0], Some(&auth)).await;
    assert!(body["detail"].as_str().unwrap().contains("expired"), "{body}");
    let api = scim_keys().await;
    eventually(Duration::from_secs(15), "phase Expired", || {
        let api = api.clone();
        let name = name.clone();
        async move { (api.get(&name).await.ok()?.status?.phase? == infra::api::KeyPhase::Expired).then_some(()) }
    })
    .await;
    infra(&["providers", "remove", &provider]).ok();
}

#[tokio::test]
async fn keys_stay_bound_to_their_provider() {
    let a = ready_provider("bind-a").await;
    let b = ready_provider("bind-b").await;
    let (key_a, token_a) = create_key(&a, &[]);
    let (_, token_b) = create_key(&b, &[]);
    all_replicas_answer(&format!("Bearer {token_a}"), 200, Duration::from_secs(10)).await;
    all_replicas_answer(&format!("Bearer {token_b}"), 200, Duration::from_secs(10)).await;

    // A key cannot be moved to another provider: the API server refuses the change.
    let err = scim_keys()
        .await
        .patch(
            &key_a,
            &PatchParams::apply("e2e").force(),
            &Patch::Apply(serde_json::json!({
                "apiVersion": "infrahq.com/v1alpha1", "kind": "ScimKey",
                "spec": {"providerRef": {"name": b}}
            })),
        )
        .await
        .unwrap_err();
    assert!(err.to_string().contains("immutable"), "{err}");

    // Removing provider B refuses B's key, and only B's.
    infra(&["providers", "remove", &b]).ok();
    all_replicas_answer(&format!("Bearer {token_b}"), 401, Duration::from_secs(10)).await;
    assert_eq!(spc(&env().server_urls[0], Some(&format!("Bearer {token_a}"))).await.0, 200);
    infra(&["providers", "remove", &a]).ok();
}

#[tokio::test]
async fn scim_keys_create_refuses_unknown_providers_and_bad_durations() {
    let run = infra(&["scim-keys", "create", "--provider", "no-such-provider"]);
    assert_ne!(run.status, 0);
    assert!(run.stderr.contains("not found"), "{}", run.stderr);
    let run = infra(&["scim-keys", "create", "--provider", "okta", "--expires-after", "soon"]);
    assert_ne!(run.status, 0);
    assert!(run.stderr.contains("not a duration"), "{}", run.stderr);
    let run = infra(&["scim-keys", "revoke", "no-such-key"]);
    assert_ne!(run.status, 0);
    assert!(run.stderr.contains("not found"), "{}", run.stderr);
}

#[tokio::test]
async fn write_methods_on_discovery_endpoints_are_405() {
    let (_, token) = create_key("okta", &[]);
    all_replicas_answer(&format!("Bearer {token}"), 200, Duration::from_secs(10)).await;
    let resp = http()
        .post(format!("{}/api/scim/v2/ServiceProviderConfig", env().server_urls[0]))
        .header("authorization", format!("Bearer {token}"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "405");
    let resp = http()
        .get(format!("{}/api/scim/v2/NoSuchThing", env().server_urls[0]))
        .header("authorization", format!("Bearer {token}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 404);
}

fn b64(s: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(s)
}

/// Secrets of earlier versions hold the key itself: it keeps working, and the controller replaces
/// it with its hash.
#[tokio::test]
async fn a_stored_key_from_an_earlier_version_keeps_working_and_is_hashed() {
    let provider = ready_provider("legacy").await;
    let (name, token) = create_key(&provider, &[]);
    let auth = format!("Bearer {token}");
    all_replicas_answer(&auth, 200, Duration::from_secs(10)).await;
    let key = scim_keys().await.get(&name).await.unwrap();
    let secret_name = key.status.unwrap().secret_name.unwrap();
    let secrets: Api<Secret> = Api::namespaced(client().await, &env().namespace);
    // Put the Secret back into the old form (the key itself under `key`), and the ScimKey's
    // status too (earlier versions published no hash there).
    let status = serde_json::json!({"status": {"keyHash": null}});
    scim_keys().await.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status)).await.unwrap();
    let old = serde_json::json!({"data": {infra::api::KEY_HASH_DATA: null, infra::api::LEGACY_KEY_DATA: b64(&token)}});
    secrets.patch(&secret_name, &PatchParams::default(), &Patch::Merge(&old)).await.unwrap();
    eventually(Duration::from_secs(20), "the controller to replace the stored key with its hash", || {
        let secrets = secrets.clone();
        let secret_name = secret_name.clone();
        async move {
            let data = secrets.get(&secret_name).await.ok()?.data?;
            (data.contains_key(infra::api::KEY_HASH_DATA) && !data.contains_key(infra::api::LEGACY_KEY_DATA)).then_some(())
        }
    })
    .await;
    all_replicas_answer(&auth, 200, Duration::from_secs(10)).await;
    let key = scim_keys().await.get(&name).await.unwrap();
    assert_eq!(key.status.unwrap().key_hash.as_deref(), Some(infra::keys::hash_hex(&token).as_str()), "the hash is published again");
    infra(&["providers", "remove", &provider]).ok();
}
