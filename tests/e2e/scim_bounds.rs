//! Bounded work per SCIM request (issue 9 §3 and §5): requests over the documented limits are
//! refused with a 400 and change nothing, a 10,000-member PATCH succeeds without holding up
//! `/healthz`, and a write the cluster refuses as too large is a permanent 413, never a 503.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use infra::api::{ProviderRef, User, UserSpec, labels};
use infra::directory::naming::{new_id, user_object_name};
use kube::api::{ObjectMeta, PostParams};
use kube::{Api, Resource};

use crate::harness::*;

fn emails(n: usize) -> Value {
    Value::Array((0..n).map(|i| json!({"value": format!("e{i}@example.com")})).collect())
}

fn members(ids: impl Iterator<Item = String>) -> Value {
    Value::Array(ids.map(|id| json!({"value": id})).collect())
}

/// The resource at `path` as it is now: its version and body, to compare after a refusal.
async fn snapshot(scim: &Scim, path: &str) -> (String, Value) {
    let r = scim.get(path).await;
    let body = r.expect(200).clone();
    (body["meta"]["version"].as_str().unwrap().to_string(), body)
}

#[track_caller]
fn refused(r: &Resp, names: &[&str]) {
    r.expect_error(400, Some("invalidValue"));
    let detail = r.body["detail"].as_str().unwrap();
    for n in names {
        assert!(detail.contains(n), "detail {detail:?} should name {n:?}");
    }
}

#[tokio::test]
async fn requests_over_the_limits_are_refused_and_change_nothing() {
    let p = ScimProvider::new("bounds-limits").await;
    let scim = p.client(0);
    let user_name = format!("limits@{}.example.com", p.name);
    let r = scim.post("/Users", &json!({"schemas": [USER_SCHEMA], "userName": user_name, "emails": emails(2)})).await;
    let uid = r.expect(201)["id"].as_str().unwrap().to_string();
    let r = scim.post("/Groups", &json!({"schemas": [GROUP_SCHEMA], "displayName": "limits", "members": [{"value": uid}]})).await;
    let gid = r.expect(201)["id"].as_str().unwrap().to_string();
    let (user_path, group_path) = (format!("/Users/{uid}"), format!("/Groups/{gid}"));
    let user_before = snapshot(&scim, &user_path).await;
    let group_before = snapshot(&scim, &group_path).await;

    // 10,001 members in one PATCH (refused before anyone looks them up).
    let too_many = members((0..10_001).map(|i| format!("00000000-0000-4000-8000-{i:012}")));
    let r = scim.patch(&group_path, &patch_op(json!([{"op": "add", "path": "members", "value": too_many}]))).await;
    refused(&r, &["members", "10001", "10000"]);
    // 101 emails, in one operation or spread over two.
    let r = scim.patch(&user_path, &patch_op(json!([{"op": "add", "path": "emails", "value": emails(101)}]))).await;
    refused(&r, &["emails", "100"]);
    let r = scim
        .patch(
            &user_path,
            &patch_op(json!([{"op": "add", "path": "emails", "value": emails(60)}, {"op": "replace", "value": {"emails": emails(41)}}])),
        )
        .await;
    refused(&r, &["emails", "101", "100"]);
    // 1,001 operations.
    let ops = Value::Array(vec![json!({"op": "replace", "path": "title", "value": "changed"}); 1_001]);
    let r = scim.patch(&user_path, &patch_op(ops)).await;
    refused(&r, &["Operations", "1001", "1000"]);
    // PUT and POST bodies are held to the same limits.
    let r =
        scim.put(&user_path, &json!({"schemas": [USER_SCHEMA], "userName": user_name, "title": "changed", "emails": emails(101)})).await;
    refused(&r, &["emails", "100"]);
    let r = scim.put(&group_path, &json!({"schemas": [GROUP_SCHEMA], "displayName": "changed", "members": too_many_members()})).await;
    refused(&r, &["members", "10000"]);
    let other = format!("other@{}.example.com", p.name);
    let r = scim.post("/Users", &json!({"schemas": [USER_SCHEMA], "userName": other, "emails": emails(101)})).await;
    refused(&r, &["emails", "100"]);
    let r = scim.post("/Groups", &json!({"schemas": [GROUP_SCHEMA], "displayName": "other", "members": too_many_members()})).await;
    refused(&r, &["members", "10000"]);

    // Nothing changed, and nothing was created.
    assert_eq!(snapshot(&scim, &user_path).await, user_before);
    assert_eq!(snapshot(&scim, &group_path).await, group_before);
    assert_eq!(scim.filter("Users", &format!("userName eq \"{other}\"")).await.expect(200)["totalResults"], 0);
    assert_eq!(scim.filter("Groups", "displayName eq \"other\"").await.expect(200)["totalResults"], 0);
    assert_eq!(p.objects("users").len(), 1);
    assert_eq!(p.objects("groups").len(), 1);

    // At the limits, the same requests succeed.
    let r = scim.patch(&user_path, &patch_op(json!([{"op": "replace", "path": "emails", "value": emails(100)}]))).await;
    assert_eq!(r.expect(200)["emails"].as_array().unwrap().len(), 100);
    // ... and a user that has 100 emails cannot get a 101st.
    let r = scim.patch(&user_path, &patch_op(json!([{"op": "add", "path": "emails", "value": {"value": "one.more@example.com"}}]))).await;
    refused(&r, &["emails", "101", "100"]);
}

fn too_many_members() -> Value {
    members((0..10_001).map(|i| format!("00000000-0000-4000-8000-{i:012}")))
}

/// Creates `n` users of provider `p` directly through the API server (as the server would store
/// them), `concurrency` at a time, and returns their SCIM ids.
async fn users_directly(p: &ScimProvider, n: usize, concurrency: usize) -> Vec<String> {
    let idp = providers().await.get(&p.name).await.unwrap();
    let mut owner = idp.controller_owner_ref(&()).unwrap();
    owner.controller = Some(false);
    let users: Api<User> = Api::namespaced(client().await, &env().namespace);
    let ids: Vec<String> = (0..n).map(|_| new_id().unwrap()).collect();
    let created: Vec<()> = futures::stream::iter(ids.iter().enumerate())
        .map(|(i, id)| {
            let (users, owner, provider) = (users.clone(), owner.clone(), p.name.clone());
            async move {
                let user_name = format!("member{i}@{provider}.example.com");
                let user = User {
                    metadata: ObjectMeta {
                        name: Some(user_object_name(&provider, &user_name)),
                        labels: Some(BTreeMap::from([
                            (labels::PROVIDER.to_string(), provider.clone()),
                            (labels::SCIM_ID.to_string(), id.clone()),
                            (labels::MANAGED_BY.to_string(), "infra-server".to_string()),
                        ])),
                        owner_references: Some(vec![owner]),
                        ..Default::default()
                    },
                    spec: UserSpec {
                        provider_ref: ProviderRef { name: provider },
                        user_name,
                        external_id: None,
                        display_name: None,
                        active: Some(true),
                        attributes: None,
                    },
                    status: None,
                };
                users.create(&PostParams::default(), &user).await.unwrap();
            }
        })
        .buffer_unordered(concurrency)
        .collect()
        .await;
    assert_eq!(created.len(), n);
    ids
}

// Its 10,000 users keep the garbage collector busy for minutes once the provider is removed (it
// deletes them one by one at the controller manager's API rate), and every other test's provider
// removal would wait behind them: e2e/test runs it alone, after the parallel suite.
#[tokio::test]
#[ignore = "creates 10,000 users: e2e/test runs it alone after the suite"]
async fn a_ten_thousand_member_patch_succeeds_and_healthz_keeps_answering() {
    let p = ScimProvider::new("bounds-big").await;
    // 10,000 members are 10,000 label writes (a membership is a label on each User): on this
    // 2-core machine that takes a minute or two, within the server's request timeout.
    let scim = p.client(0).with_timeout(Duration::from_secs(290));
    let ids = users_directly(&p, 10_000, 16).await;
    let r = scim.post("/Groups", &json!({"schemas": [GROUP_SCHEMA], "displayName": "everyone"})).await;
    let gid = r.expect(201)["id"].as_str().unwrap().to_string();

    // /healthz is polled while the PATCH runs; it must never wait behind it.
    let healthz = format!("{}/healthz", env().server_urls[0]);
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let poller = tokio::spawn(async move {
        let http = http();
        let mut worst = Duration::ZERO;
        let mut polls = 0;
        while !*stopped.borrow_and_update() {
            let start = Instant::now();
            assert_eq!(http.get(&healthz).send().await.unwrap().status(), 200);
            worst = worst.max(start.elapsed());
            polls += 1;
            tokio::select! { _ = tokio::time::sleep(Duration::from_millis(20)) => {}, _ = stopped.changed() => {} }
        }
        (worst, polls)
    });
    let body = patch_op(json!([{"op": "add", "path": "members", "value": members(ids.iter().cloned())}]));
    let started = Instant::now();
    let r = scim
        .send(reqwest::Method::PATCH, &format!("/Groups/{gid}?excludedAttributes=members"), Some(body.to_string().into_bytes()), &[])
        .await;
    let took = started.elapsed();
    stop.send(true).unwrap();
    r.expect(200);
    let (worst, polls) = poller.await.unwrap();
    println!("10,000-member PATCH: {took:?}; /healthz worst {worst:?} over {polls} polls");
    assert!(worst < Duration::from_secs(2), "/healthz took {worst:?} while the PATCH ran ({took:?})");

    let g = scim.get(&format!("/Groups/{gid}")).await;
    assert_eq!(g.expect(200)["members"].as_array().unwrap().len(), 10_000);
    // Adding them all again changes nothing (each member once).
    let r = scim.patch(&format!("/Groups/{gid}?attributes=displayName"), &body).await;
    r.expect(200);
    // Stored as a label on each member.
    let stored = kubectl(&["get", "users", "-n", &env().namespace, "-l", &format!("group.infrahq.com/{gid}"), "-o", "name"]).ok().stdout;
    assert_eq!(stored.lines().count(), 10_000);
}

/// A value a third of the server's body limit: three of them fit in one User (a 1.4 MB object),
/// a fourth takes it over etcd's 1.5 MiB request limit, though each request is well within the
/// server's 1 MiB body limit.
fn chunk() -> String {
    "x".repeat(450_000)
}

#[tokio::test]
async fn writes_too_large_for_the_cluster_are_a_permanent_413() {
    let p = ScimProvider::new("bounds-huge").await;
    let scim = p.client(0);
    let user_name = format!("huge@{}.example.com", p.name);
    let id = scim.create_user(&user_name).await;
    let path = format!("/Users/{id}");
    for attr in ["title", "displayName", "nickName"] {
        let r = scim.patch(&format!("{path}?attributes=id"), &patch_op(json!([{"op": "replace", "path": attr, "value": chunk()}]))).await;
        r.expect(200);
    }
    let before = snapshot(&scim, &path).await;
    // The fourth is refused by the cluster: a 413 the client will not retry, not a 503.
    let r = scim.patch(&path, &patch_op(json!([{"op": "replace", "path": "userType", "value": chunk()}]))).await;
    r.expect_error(413, None);
    assert!(r.body["detail"].as_str().unwrap().contains("too large"), "{}", r.text);
    assert!(r.header("retry-after").is_none());
    assert_eq!(snapshot(&scim, &path).await, before);
    // A PUT that replaces it with something as large is refused the same way.
    let put = json!({"schemas": [USER_SCHEMA], "userName": user_name, "title": chunk(), "displayName": chunk()});
    assert_eq!(scim.put(&path, &put).await.status, 200, "two chunks fit");
    let r = scim.patch(&path, &patch_op(json!([{"op": "add", "value": {"nickName": chunk(), "userType": chunk()}}]))).await;
    r.expect_error(413, None);
}
