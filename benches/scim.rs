//! SCIM speed and memory, measured against the local environment `e2e/up` starts (run it with
//! `e2e/bench`). Every target is compared with a baseline measured in the same run:
//!
//! - import: N users with Okta's sequence (filter by userName, then POST) at concurrency C, against
//!   the same number of equivalent User objects created directly through the API server at the
//!   same concurrency. Target: SCIM rate ≥ 0.8 × direct rate.
//! - lookups with 10,000 users stored: `filter=userName eq`, GET by id, a page of 100; p50 and p99.
//!   Target: p99 < 5 ms.
//! - server resident memory with 10,000 users and 500 groups cached, against the same server's
//!   memory before they were loaded. Target: < 64 MiB.
//! - a PATCH adding 10,000 members to a group, against one adding 1,000 in the same run: the
//!   ratio is about 10 when the work is linear (it was quadratic). `/healthz` is polled while the
//!   big PATCH runs; its worst latency shows whether the request held up the async workers.
//!   Target: ratio < 15, /healthz worst < 100 ms.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use infra::api::{annotations, labels, GroupMember, GroupSpec, IdentityProvider, ProviderRef, User, UserSpec};
use infra::directory::naming::{group_object_name, new_id, user_object_name};
use kube::api::{DeleteParams, ObjectMeta, PostParams};
use kube::{Api, Client, Resource, ResourceExt};
use serde_json::json;

struct Args {
    users: usize,
    concurrency: usize,
    stored: usize,
    groups: usize,
    samples: usize,
    members: usize,
}

fn args() -> Args {
    let mut a = Args { users: 2000, concurrency: 16, stored: 10_000, groups: 500, samples: 1000, members: 10_000 };
    let argv: Vec<String> = std::env::args().collect();
    let mut i = 1;
    while i < argv.len() {
        let next = || argv.get(i + 1).and_then(|v| v.parse().ok()).unwrap_or_else(|| panic!("{} needs a number", argv[i]));
        match argv[i].as_str() {
            "--users" => a.users = next(),
            "--concurrency" => a.concurrency = next(),
            "--stored" => a.stored = next(),
            "--groups" => a.groups = next(),
            "--samples" => a.samples = next(),
            "--members" => a.members = next(),
            _ => {
                i += 1;
                continue;
            }
        }
        i += 2;
    }
    a
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set; run the benchmark with e2e/bench"))
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = std::process::Command::new(cmd).args(args).output().expect("command runs");
    assert!(out.status.success(), "{cmd} {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", infra::keys::name_suffix(5).unwrap())
}

/// A provider and its SCIM key, through the CLI as an admin would.
fn provider_with_key(name: &str, idp: &str) -> String {
    run("infra", &["providers", "add", name, "--url", idp, "--client-id", "infra-e2e", "--client-secret", "infra-e2e-secret"]);
    let out = run("infra", &["scim-keys", "create", "--provider", name]);
    out.lines().find_map(|l| l.trim().strip_prefix("API Token: Bearer ")).expect("key printed").to_string()
}

fn scim_user(user_name: &str) -> serde_json::Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": user_name,
        "name": {"givenName": "Bench", "familyName": "User"},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": "Bench User",
        "active": true,
        "password": "not-stored",
    })
}

/// The User object the server would store for `user_name`, for direct creation.
fn user_object(provider: &IdentityProvider, user_name: &str) -> User {
    let p = provider.name_any();
    let now = k8s_openapi::jiff::Timestamp::now().to_string();
    let mut owner = provider.controller_owner_ref(&()).unwrap();
    owner.controller = Some(false);
    let attributes = json!({
        "name": {"givenName": "Bench", "familyName": "User"},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
    });
    User {
        metadata: ObjectMeta {
            name: Some(user_object_name(&p, user_name)),
            labels: Some(BTreeMap::from([
                (labels::PROVIDER.to_string(), p.clone()),
                (labels::SCIM_ID.to_string(), new_id().unwrap()),
                (labels::MANAGED_BY.to_string(), "infra-server".to_string()),
            ])),
            annotations: Some(BTreeMap::from([
                (annotations::CREATED.to_string(), now.clone()),
                (annotations::LAST_MODIFIED.to_string(), now),
            ])),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: UserSpec {
            provider_ref: ProviderRef { name: p },
            user_name: user_name.into(),
            external_id: None,
            display_name: Some("Bench User".into()),
            active: Some(true),
            attributes: attributes.as_object().cloned(),
        },
        status: None,
    }
}

/// Runs `job(i)` for i in 0..n on `concurrency` workers; returns the elapsed time.
async fn parallel<F, Fut>(n: usize, concurrency: usize, job: F) -> Duration
where
    F: Fn(usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let job = Arc::new(job);
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (job, next) = (job.clone(), next.clone());
        tasks.spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                job(i).await;
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    start.elapsed()
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn rss_mib(pid_file: &str) -> f64 {
    let pid = std::fs::read_to_string(pid_file).expect("server pid file").trim().to_string();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("server process");
    let kib: f64 = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap().trim().trim_end_matches("kB").trim().parse().unwrap();
    kib / 1024.0
}

#[tokio::main]
async fn main() {
    let a = args();
    let server = var("INFRA_SERVER_URL");
    let namespace = var("INFRA_NAMESPACE");
    let state = var("INFRA_STATE_DIR");
    let idp = var("INFRA_IDP_URL").trim_start_matches("https://").to_string();
    let client = Client::try_default().await.expect("kubeconfig");
    // The direct baseline writes with the server's own ServiceAccount, so authentication and RBAC
    // cost the same on both paths (the admin's system:masters would skip RBAC altogether).
    let operator_config = kube::config::Kubeconfig::read_from(format!("{}/server.kubeconfig", var("INFRA_STATE_DIR"))).expect("server kubeconfig");
    let operator_client = Client::try_from(kube::Config::from_custom_kubeconfig(operator_config, &Default::default()).await.unwrap()).unwrap();
    let operator_users: Api<User> = Api::namespaced(operator_client, &namespace);
    let users: Api<User> = Api::namespaced(client.clone(), &namespace);
    let providers: Api<IdentityProvider> = Api::namespaced(client.clone(), &namespace);
    let http = reqwest::Client::builder().pool_max_idle_per_host(a.concurrency).build().unwrap();
    let pid_file = format!("{state}/pids/server-0.pid");
    let rss_before = rss_mib(&pid_file);

    println!("SCIM benchmark: {} users at concurrency {}, lookups with {} stored users and {} groups", a.users, a.concurrency, a.stored, a.groups);

    // ---- import -------------------------------------------------------------------------------
    let scim_provider = unique("bench-scim");
    let key = provider_with_key(&scim_provider, &idp);
    let direct_provider = unique("bench-direct");
    run("infra", &["providers", "add", &direct_provider, "--url", &idp, "--client-id", "infra-e2e", "--client-secret", "infra-e2e-secret"]);
    let direct_idp = providers.get(&direct_provider).await.unwrap();

    // Interleaved rounds, so that a cluster slowing down (etcd growing, garbage collection of an
    // earlier run) weighs on both paths alike.
    const ROUNDS: usize = 4;
    let per_round = a.users / ROUNDS;
    let (mut scim_elapsed, mut direct_elapsed) = (Duration::ZERO, Duration::ZERO);
    for round in 0..ROUNDS {
        let offset = round * per_round;
        scim_elapsed += {
            let (http, server, key, p) = (http.clone(), server.clone(), key.clone(), scim_provider.clone());
            parallel(per_round, a.concurrency, move |i| {
                let (http, server, key, p) = (http.clone(), server.clone(), key.clone(), p.clone());
                async move {
                    let user_name = format!("user{}@{p}.example.com", offset + i);
                    let filter = format!("userName eq \"{user_name}\"");
                    let found: serde_json::Value = http
                        .get(format!("{server}/api/scim/v2/Users"))
                        .query(&[("filter", filter.as_str()), ("startIndex", "1"), ("count", "100")])
                        .bearer_auth(&key)
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    assert_eq!(found["totalResults"], 0);
                    let resp =
                        http.post(format!("{server}/api/scim/v2/Users")).bearer_auth(&key).json(&scim_user(&user_name)).send().await.unwrap();
                    assert_eq!(resp.status(), 201, "{}", resp.text().await.unwrap());
                }
            })
            .await
        };
        direct_elapsed += {
            let (users, idp) = (operator_users.clone(), Arc::new(direct_idp.clone()));
            parallel(per_round, a.concurrency, move |i| {
                let (users, idp) = (users.clone(), idp.clone());
                async move {
                    let user = user_object(&idp, &format!("user{}@direct.example.com", offset + i));
                    let params = PostParams { field_manager: Some("infra-server".into()), ..Default::default() };
                    users.create(&params, &user).await.unwrap();
                }
            })
            .await
        };
    }
    let imported = per_round * ROUNDS;
    let scim_rate = imported as f64 / scim_elapsed.as_secs_f64();
    let direct_rate = imported as f64 / direct_elapsed.as_secs_f64();
    let ratio = scim_rate / direct_rate;
    println!("import via SCIM (filter + POST): {scim_rate:8.1} users/s ({:.1}s)", scim_elapsed.as_secs_f64());
    println!("direct API server creates:       {direct_rate:8.1} users/s ({:.1}s)", direct_elapsed.as_secs_f64());
    println!("ratio: {ratio:.2} (target >= 0.80) {}", if ratio >= 0.8 { "PASS" } else { "FAIL" });

    // ---- lookups with many users ----------------------------------------------------------------
    let scim_idp = Arc::new(providers.get(&scim_provider).await.unwrap());
    let extra = a.stored.saturating_sub(imported);
    let fill = parallel(extra, a.concurrency, {
        let (users, idp, p) = (users.clone(), scim_idp.clone(), scim_provider.clone());
        move |i| {
            let (users, idp, p) = (users.clone(), idp.clone(), p.clone());
            async move {
                users.create(&PostParams::default(), &user_object(&idp, &format!("stored{i}@{p}.example.com"))).await.unwrap();
            }
        }
    })
    .await;
    println!("stored {extra} more users directly in {:.1}s", fill.as_secs_f64());
    let page: serde_json::Value = http
        .get(format!("{server}/api/scim/v2/Users?count=1000"))
        .bearer_auth(&key)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<String> = page["Resources"].as_array().unwrap().iter().map(|u| u["id"].as_str().unwrap().to_string()).collect();
    let groups: Api<infra::api::Group> = Api::namespaced(client.clone(), &namespace);
    parallel(a.groups, a.concurrency, {
        let (groups, idp, ids) = (groups.clone(), scim_idp.clone(), Arc::new(ids.clone()));
        move |i| {
            let (groups, idp, ids) = (groups.clone(), idp.clone(), ids.clone());
            async move {
                let id = new_id().unwrap();
                let mut owner = idp.controller_owner_ref(&()).unwrap();
                owner.controller = Some(false);
                let members = (0..20).map(|k| GroupMember { value: ids[(i * 7 + k) % ids.len()].clone(), ..Default::default() }).collect();
                let group = infra::api::Group {
                    metadata: ObjectMeta {
                        name: Some(group_object_name(&id)),
                        labels: Some(BTreeMap::from([(labels::PROVIDER.to_string(), idp.name_any()), (labels::SCIM_ID.to_string(), id)])),
                        owner_references: Some(vec![owner]),
                        ..Default::default()
                    },
                    spec: GroupSpec { provider_ref: ProviderRef { name: idp.name_any() }, display_name: format!("group {i}"), external_id: None, members },
                    status: None,
                };
                groups.create(&PostParams::default(), &group).await.unwrap();
            }
        }
    })
    .await;
    // Wait until the server's directory holds them all.
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let list: serde_json::Value =
            http.get(format!("{server}/api/scim/v2/Users?count=0")).bearer_auth(&key).send().await.unwrap().json().await.unwrap();
        if list["totalResults"].as_u64() == Some(a.stored as u64) {
            break;
        }
        assert!(Instant::now() < deadline, "the server never saw all {} users: {}", a.stored, list["totalResults"]);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let measure = |label: &'static str, urls: Vec<String>| {
        let (http, key) = (http.clone(), key.clone());
        async move {
            let mut ms = vec![];
            for url in urls {
                let start = Instant::now();
                let resp = http.get(&url).bearer_auth(&key).send().await.unwrap();
                assert_eq!(resp.status(), 200, "{url}");
                resp.bytes().await.unwrap();
                ms.push(start.elapsed().as_secs_f64() * 1000.0);
            }
            ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
            let (p50, p99) = (percentile(&ms, 0.5), percentile(&ms, 0.99));
            println!("{label:<28} p50 {p50:6.2} ms   p99 {p99:6.2} ms   (target p99 < 5 ms) {}", if p99 < 5.0 { "PASS" } else { "FAIL" });
        }
    };
    let n = a.samples;
    measure(
        "filter userName eq",
        (0..n).map(|i| format!("{server}/api/scim/v2/Users?filter=userName%20eq%20%22user{}%40{scim_provider}.example.com%22", (i * 37) % imported)).collect(),
    )
    .await;
    measure("GET /Users/{id}", (0..n).map(|i| format!("{server}/api/scim/v2/Users/{}", ids[(i * 13) % ids.len()])).collect()).await;
    measure(
        "page of 100",
        (0..n).map(|i| format!("{server}/api/scim/v2/Users?startIndex={}&count=100", 1 + (i * 101) % (a.stored - 100))).collect(),
    )
    .await;

    let rss_after = rss_mib(&pid_file);
    println!(
        "server RSS: {rss_before:.1} MiB before, {rss_after:.1} MiB with {} users and {} groups cached (target < 64 MiB) {}",
        a.stored + imported,
        a.groups,
        if rss_after < 64.0 { "PASS" } else { "FAIL" }
    );

    // ---- a big membership PATCH -------------------------------------------------------------
    let mut member_ids = vec![];
    while member_ids.len() < a.members.min(a.stored) {
        let page: serde_json::Value = http
            .get(format!("{server}/api/scim/v2/Users?attributes=id&count=1000&startIndex={}", member_ids.len() + 1))
            .bearer_auth(&key)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let got = page["Resources"].as_array().unwrap();
        assert!(!got.is_empty(), "ran out of users at {}", member_ids.len());
        member_ids.extend(got.iter().map(|u| u["id"].as_str().unwrap().to_string()));
    }
    member_ids.truncate(a.members.min(a.stored));
    let patch_members = |n: usize| {
        let (http, server, key, ids) = (http.clone(), server.clone(), key.clone(), member_ids.clone());
        async move {
            let group = json!({"schemas": ["urn:ietf:params:scim:schemas:core:2.0:Group"], "displayName": format!("bench members {n}")});
            let created: serde_json::Value =
                http.post(format!("{server}/api/scim/v2/Groups")).bearer_auth(&key).json(&group).send().await.unwrap().json().await.unwrap();
            let gid = created["id"].as_str().unwrap().to_string();
            let members: Vec<serde_json::Value> = ids[..n].iter().map(|id| json!({"value": id})).collect();
            let body = json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "add", "path": "members", "value": members}]});
            let start = Instant::now();
            let resp = http
                .patch(format!("{server}/api/scim/v2/Groups/{gid}?excludedAttributes=members"))
                .bearer_auth(&key)
                .json(&body)
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 200, "{}", resp.text().await.unwrap());
            start.elapsed()
        }
    };
    let big = member_ids.len();
    let small = big / 10;
    let small_took = patch_members(small).await;
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let poller = tokio::spawn({
        let (http, url) = (http.clone(), format!("{server}/healthz"));
        async move {
            let mut ms = vec![];
            while !*stopped.borrow() {
                let start = Instant::now();
                assert_eq!(http.get(&url).send().await.unwrap().status(), 200);
                ms.push(start.elapsed().as_secs_f64() * 1000.0);
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            ms.sort_by(|a, b| a.partial_cmp(b).unwrap());
            ms
        }
    });
    let big_took = patch_members(big).await;
    stop.send(true).unwrap();
    let healthz = poller.await.unwrap();
    let ratio = big_took.as_secs_f64() / small_took.as_secs_f64();
    println!("PATCH adding {small:>6} members:      {:8.1} ms", small_took.as_secs_f64() * 1000.0);
    println!("PATCH adding {big:>6} members:      {:8.1} ms", big_took.as_secs_f64() * 1000.0);
    println!("ratio: {ratio:.1} (linear is about {:.0}; target < 15) {}", big as f64 / small as f64, if ratio < 15.0 { "PASS" } else { "FAIL" });
    let worst = healthz.last().copied().unwrap_or(0.0);
    println!(
        "/healthz during the big PATCH: {} polls, p50 {:.2} ms, worst {worst:.2} ms (target < 100 ms) {}",
        healthz.len(),
        if healthz.is_empty() { 0.0 } else { percentile(&healthz, 0.5) },
        if worst < 100.0 { "PASS" } else { "FAIL" }
    );

    // The garbage collector removes the users and groups with their providers; waiting for it
    // leaves the next run a clean cluster.
    for p in [&scim_provider, &direct_provider] {
        let _ = providers.delete(p, &DeleteParams::foreground()).await;
    }
    let start = Instant::now();
    while providers.get_opt(&scim_provider).await.unwrap().is_some() || providers.get_opt(&direct_provider).await.unwrap().is_some() {
        assert!(start.elapsed() < Duration::from_secs(600), "cleanup did not finish");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    println!("cleaned up in {:.1}s", start.elapsed().as_secs_f64());
}
