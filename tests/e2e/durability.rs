//! A server killed with SIGKILL in the middle of an import loses nothing it acknowledged and
//! duplicates nothing, while the client retries the way Okta does (look the user up, then POST
//! again if it is not there).

use std::process::{Child, Command, Stdio};
use std::time::Duration;

use infra::api::User;
use kube::Api;
use kube::api::ListParams;
use serde_json::json;

use crate::harness::*;

const PORT: u16 = 18090;

/// A server replica of our own, so killing it disturbs no other test.
fn start_server() -> Child {
    let state = std::env::var("INFRA_STATE_DIR").expect("INFRA_STATE_DIR");
    Command::new(env!("CARGO_BIN_EXE_infra-operator"))
        .args(["server", "--listen-addr", &format!("127.0.0.1:{PORT}"), "--metrics-addr", "127.0.0.1:0"])
        .env("KUBECONFIG", format!("{state}/server.kubeconfig"))
        .env("INFRA_NAMESPACE", &env().namespace)
        .env("INFRA_EXTERNAL_URL", format!("http://127.0.0.1:{PORT}"))
        .env("INFRA_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("server starts")
}

async fn wait_ready(base: &str) {
    let url = format!("{base}/readyz");
    eventually(Duration::from_secs(30), "the server to be ready", || {
        let url = url.clone();
        async move { http().get(&url).send().await.ok().filter(|r| r.status() == 200).map(|_| ()) }
    })
    .await;
}

/// Okta's assign step, retried until it gets an answer: filter by userName; if absent, POST.
/// Returns true once the user is known to exist (201, or found by the filter after a retry).
async fn assign(base: &str, key: &str, user_name: &str) -> bool {
    let client = http();
    for _ in 0..200 {
        let filter = format!("userName eq \"{user_name}\"");
        let found = client
            .get(format!("{base}/api/scim/v2/Users"))
            .query(&[("filter", filter.as_str()), ("startIndex", "1"), ("count", "100")])
            .bearer_auth(key)
            .send()
            .await;
        let Ok(found) = found else {
            tokio::time::sleep(Duration::from_millis(100)).await;
            continue;
        };
        let Ok(list) = found.json::<serde_json::Value>().await else { continue };
        if list["totalResults"].as_u64() == Some(1) {
            return true;
        }
        let created = client
            .post(format!("{base}/api/scim/v2/Users"))
            .bearer_auth(key)
            .header("content-type", "application/scim+json; charset=utf-8")
            .json(&json!({
                "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
                "userName": user_name,
                "name": {"givenName": "Load", "familyName": "Test"},
                "emails": [{"primary": true, "value": user_name, "type": "work"}],
                "active": true,
                "password": "not-stored",
            }))
            .send()
            .await;
        match created.map(|r| r.status().as_u16()) {
            Ok(201) => return true,
            // Created by an earlier attempt whose answer was lost: the next filter finds it.
            Ok(409) | Ok(_) | Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    false
}

#[tokio::test]
async fn sigkill_mid_import_loses_and_duplicates_nothing() {
    let provider = unique("durable");
    infra(&[
        "providers",
        "add",
        &provider,
        "--url",
        &idp_domain_and_path(),
        "--client-id",
        "infra-e2e",
        "--client-secret",
        "infra-e2e-secret",
    ])
    .ok();
    let run = infra(&["scim-keys", "create", "--provider", &provider]).ok();
    let key = printed_key(&run.stdout);
    let base = format!("http://127.0.0.1:{PORT}");
    let mut server = start_server();
    wait_ready(&base).await;

    const USERS: usize = 400;
    let names: Vec<String> = (0..USERS).map(|i| format!("durable-{i}@{provider}.example.com")).collect();
    let progress = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let import = {
        let (base, key, names, progress) = (base.clone(), key.clone(), names.clone(), progress.clone());
        tokio::spawn(async move {
            let mut acknowledged = vec![];
            let mut tasks = tokio::task::JoinSet::new();
            for chunk in names.chunks(USERS / 4) {
                let (base, key, chunk, progress) = (base.clone(), key.clone(), chunk.to_vec(), progress.clone());
                tasks.spawn(async move {
                    let mut ok = vec![];
                    for name in chunk {
                        if assign(&base, &key, &name).await {
                            ok.push(name);
                            progress.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        }
                    }
                    ok
                });
            }
            while let Some(done) = tasks.join_next().await {
                acknowledged.extend(done.unwrap());
            }
            acknowledged
        })
    };
    // Kill the server while the import runs, then bring it back on the same port.
    let started = progress.clone();
    eventually(Duration::from_secs(30), "a quarter of the import", || {
        let started = started.clone();
        async move { (started.load(std::sync::atomic::Ordering::Relaxed) >= USERS / 4).then_some(()) }
    })
    .await;
    server.kill().expect("SIGKILL");
    server.wait().unwrap();
    let users: Api<User> = Api::namespaced(client().await, &env().namespace);
    let selector = format!("infrahq.com/provider={provider}");
    let at_kill = users.list(&ListParams::default().labels(&selector)).await.unwrap().items.len();
    assert!(at_kill > 0 && at_kill < USERS, "the kill must land mid-import ({at_kill} of {USERS} stored)");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut server = start_server();
    wait_ready(&base).await;
    let acknowledged = import.await.unwrap();
    server.kill().ok();
    server.wait().ok();
    assert_eq!(acknowledged.len(), USERS, "every user was eventually acknowledged");

    let stored = users.list(&ListParams::default().labels(&selector)).await.unwrap().items;
    for name in &acknowledged {
        let copies = stored.iter().filter(|u| u.spec.user_name.eq_ignore_ascii_case(name)).count();
        assert_eq!(copies, 1, "{name} is stored {copies} times");
    }
    assert_eq!(stored.len(), USERS, "no user beyond those imported");
    infra(&["providers", "remove", &provider]).ok();
}
