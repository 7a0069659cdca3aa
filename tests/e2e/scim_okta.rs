//! Okta's SCIM 2.0 client, request for request: the bodies, headers and sequences of Okta's
//! "SCIM 2.0 protocol reference" (developer.okta.com/docs/api/openapi/okta-scim/guides/scim-20)
//! and of the SCIM 2.0 Test App's Runscope tests (`Content-Type: application/scim+json;
//! charset=utf-8`, `Accept: application/scim+json`).

use std::collections::HashSet;
use std::time::Duration;

use crate::harness::*;

/// The user Okta creates in "Create the User" of its SCIM 2.0 reference, with our own userName.
fn okta_user(user_name: &str, external_id: &str) -> Value {
    json!({
        "schemas": [USER_SCHEMA],
        "userName": user_name,
        "name": {"givenName": "Test", "familyName": "User"},
        "emails": [{"primary": true, "value": user_name, "type": "work"}],
        "displayName": "Test User",
        "locale": "en-US",
        "externalId": external_id,
        "groups": [],
        "password": "1mz050nq",
        "active": true
    })
}

/// Okta's lookup before a create: `filter=userName eq "..."&startIndex=1&count=100`.
async fn okta_lookup(scim: &Scim, user_name: &str) -> Resp {
    scim.get(&format!("/Users?filter={}&startIndex=1&count=100", enc(&format!("userName eq \"{user_name}\"")))).await
}

#[track_caller]
fn assert_list(r: &Resp, total: u64, start: u64, items: usize) {
    let body = r.expect(200);
    assert_eq!(r.header("content-type"), Some(SCIM_JSON));
    assert_eq!(body["schemas"], json!([LIST_RESPONSE]), "{body}");
    assert!(body["totalResults"].is_u64() && body["itemsPerPage"].is_u64() && body["startIndex"].is_u64(), "integer counts: {body}");
    assert_eq!(body["totalResults"], json!(total), "{body}");
    assert_eq!(body["startIndex"], json!(start), "{body}");
    assert_eq!(body["itemsPerPage"], json!(items), "{body}");
    assert_eq!(body["Resources"].as_array().map(Vec::len), Some(items), "Resources must be an array: {body}");
}

fn member_ids(group: &Value) -> HashSet<String> {
    group["members"].as_array().map(|a| a.iter().map(|m| m["value"].as_str().unwrap().to_string()).collect()).unwrap_or_default()
}

fn group_ids(user: &Value) -> HashSet<String> {
    user["groups"].as_array().map(|a| a.iter().map(|g| g["value"].as_str().unwrap().to_string()).collect()).unwrap_or_default()
}

#[tokio::test]
async fn okta_test_connector_gets_a_list_response_with_integer_counts() {
    let p = ScimProvider::new("okta-connect").await;
    let okta = p.client(0).okta();
    // "Test Connector Configuration": GET /Users?startIndex=1&count=2, then the groups.
    let r = okta.get("/Users?startIndex=1&count=2").await;
    assert_list(&r, 0, 1, 0);
    assert_list(&okta.get("/Groups?startIndex=1&count=100").await, 0, 1, 0);
    for i in 0..3 {
        okta.post("/Users", &okta_user(&format!("u{i}@{}.example.com", p.name), &format!("00u{i}"))).await.expect(201);
    }
    let r = okta.get("/Users?startIndex=1&count=2").await;
    assert_list(&r, 3, 1, 2);
    p.remove();
}

#[tokio::test]
async fn okta_assign_looks_up_by_user_name_then_creates_and_never_keeps_the_password() {
    let p = ScimProvider::new("okta-assign").await;
    let okta = p.client(0).okta();
    let user_name = format!("test.user@{}.okta.local", p.name);

    // Determine if the user already exists: an empty, complete ListResponse.
    assert_list(&okta_lookup(&okta, &user_name).await, 0, 1, 0);

    // Create the user.
    let r = okta.post("/Users", &okta_user(&user_name, "00ujl29u0le5T6Aj10h7")).await;
    let created = r.expect(201).clone();
    assert_eq!(r.header("content-type"), Some(SCIM_JSON));
    let id = created["id"].as_str().expect("id").to_string();
    assert!(!id.is_empty());
    assert!(created.get("password").is_none(), "password returned: {created}");
    assert!(!r.text.contains("1mz050nq"), "password echoed: {}", r.text);
    assert!(created["schemas"].as_array().unwrap().contains(&json!(USER_SCHEMA)), "{created}");
    assert_eq!(created["userName"], json!(user_name));
    assert_eq!(created["name"], json!({"givenName": "Test", "familyName": "User"}));
    assert_eq!(created["emails"], json!([{"primary": true, "value": user_name, "type": "work"}]));
    assert_eq!(created["displayName"], "Test User");
    assert_eq!(created["locale"], "en-US");
    assert_eq!(created["externalId"], "00ujl29u0le5T6Aj10h7");
    assert_eq!(created["active"], true);
    assert_eq!(created["meta"]["resourceType"], "User");
    assert!(created["meta"]["created"].is_string() && created["meta"]["lastModified"].is_string(), "{created}");
    let location = r.header("location").expect("Location header").to_string();
    assert_eq!(created["meta"]["location"], json!(location));
    assert!(location.ends_with(&format!("/Users/{id}")), "{location}");
    assert_eq!(r.header("etag"), created["meta"]["version"].as_str(), "ETag is meta.version");

    // Okta reads the user back and finds it by userName from now on.
    let got = okta.get(&format!("/Users/{id}")).await;
    assert!(got.expect(200).get("password").is_none(), "{}", got.text);
    assert_eq!(got.body["userName"], json!(user_name));
    let found = okta_lookup(&okta, &user_name).await;
    assert_list(&found, 1, 1, 1);
    assert_eq!(found.ids(), vec![id.clone()]);
    assert!(!found.text.contains("1mz050nq"));

    // The User object holds the profile but never the password.
    let yaml = object_yaml_by_scim_id("users", &id);
    assert!(yaml.contains(&user_name), "{yaml}");
    assert!(!yaml.contains("1mz050nq") && !yaml.contains("password"), "password stored:\n{yaml}");
    let listed = infra(&["users", "list", "--provider", &p.name]).ok().stdout;
    assert!(listed.contains(&user_name), "{listed}");
    p.remove();
}

#[tokio::test]
async fn okta_import_pages_by_100_and_sees_every_user_once_in_a_stable_order() {
    let p = ScimProvider::new("okta-import").await;
    let okta = p.client(0).okta();
    let mut tasks = tokio::task::JoinSet::new();
    let sem = std::sync::Arc::new(tokio::sync::Semaphore::new(16));
    for i in 0..250 {
        let (c, name, sem) = (okta.clone(), format!("import-{i:03}@{}.example.com", p.name), sem.clone());
        tasks.spawn(async move {
            let _permit = sem.acquire().await.unwrap();
            let r = c.post("/Users", &okta_user(&name, &format!("00u{i:03}"))).await;
            r.expect(201)["id"].as_str().unwrap().to_string()
        });
    }
    let created: HashSet<String> = tasks.join_all().await.into_iter().collect();
    assert_eq!(created.len(), 250);

    async fn all_pages(c: &Scim) -> Vec<String> {
        let mut ids = vec![];
        for (start, items) in [(1, 100), (101, 100), (201, 50)] {
            let r = c.get(&format!("/Users?startIndex={start}&count=100")).await;
            assert_list(&r, 250, start, items);
            ids.extend(r.ids());
        }
        // Past the end: an empty page that still counts everything.
        assert_list(&c.get("/Users?startIndex=301&count=100").await, 250, 301, 0);
        ids
    }
    let first = all_pages(&okta).await;
    assert_eq!(first.len(), 250);
    assert_eq!(first.iter().cloned().collect::<HashSet<_>>(), created, "every user exactly once");
    assert_eq!(all_pages(&okta).await, first, "the order is stable");

    // The other replica pages through the same users in the same order once its watch caught up.
    let other = p.client(1).okta();
    eventually(Duration::from_secs(15), "replica 1 to hold all 250 users", || {
        let other = other.clone();
        async move { (other.get("/Users?count=0").await.body["totalResults"] == json!(250)).then_some(()) }
    })
    .await;
    assert_eq!(all_pages(&other).await, first, "both replicas page in the same order");
    p.remove();
}

#[tokio::test]
async fn okta_profile_update_is_a_get_then_a_full_put_with_read_only_attributes() {
    let p = ScimProvider::new("okta-put").await;
    let okta = p.client(0).okta();
    let user_name = format!("test.user@{}.okta.local", p.name);
    let created = okta.post("/Users", &okta_user(&user_name, "00ujl29u0le5T6Aj10h7")).await.expect(201).clone();
    let id = created["id"].as_str().unwrap();

    // Okta GETs the user, then PUTs it back whole with the changes, id, meta and groups included.
    let current = okta.get(&format!("/Users/{id}")).await.expect(200).clone();
    let mut put = current.clone();
    put["name"] = json!({"givenName": "Another", "middleName": "Middle", "familyName": "User"});
    put["displayName"] = json!("Another User");
    put["groups"] = json!([]);
    put["emails"] = json!([{"primary": true, "value": user_name, "type": "work"}]);
    let r = okta.put(&format!("/Users/{id}"), &put).await;
    let updated = r.expect(200).clone();
    assert_eq!(updated["id"], json!(id));
    assert_eq!(updated["name"], json!({"givenName": "Another", "middleName": "Middle", "familyName": "User"}));
    assert_eq!(updated["displayName"], "Another User");
    assert_eq!(updated["locale"], "en-US");
    assert_eq!(updated["meta"]["created"], current["meta"]["created"], "created does not move");
    assert_ne!(updated["meta"]["version"], current["meta"]["version"], "a new version");
    assert_eq!(r.header("etag"), updated["meta"]["version"].as_str());

    let again = okta.get(&format!("/Users/{id}")).await.expect(200).clone();
    assert_eq!(again["name"]["middleName"], "Middle");
    assert_eq!(again["displayName"], "Another User");
    assert!(again.get("password").is_none());
    p.remove();
}

#[tokio::test]
async fn okta_deactivates_and_reactivates_with_a_pathless_replace() {
    let p = ScimProvider::new("okta-active").await;
    let okta = p.client(0).okta();
    let user_name = format!("test.user@{}.okta.local", p.name);
    let id = okta.post("/Users", &okta_user(&user_name, "00u1")).await.expect(201)["id"].as_str().unwrap().to_string();

    // "Update a specific User (PATCH)": deactivate.
    let deactivate = patch_op(json!([{"op": "replace", "value": {"active": false}}]));
    let r = okta.patch(&format!("/Users/{id}"), &deactivate).await;
    assert_eq!(r.expect(200)["active"], false);
    // Still there, for GET and for the lookup by userName, marked inactive.
    assert_eq!(okta.get(&format!("/Users/{id}")).await.expect(200)["active"], false);
    let found = okta_lookup(&okta, &user_name).await;
    assert_eq!(found.ids(), vec![id.clone()]);
    assert_eq!(found.body["Resources"][0]["active"], false);
    assert_eq!(okta.filter("Users", "active eq false").await.ids(), vec![id.clone()]);
    let yaml = object_yaml_by_scim_id("users", &id);
    assert!(yaml.contains("active: false"), "{yaml}");

    // Reactivate.
    let r = okta.patch(&format!("/Users/{id}"), &patch_op(json!([{"op": "replace", "value": {"active": true}}]))).await;
    assert_eq!(r.expect(200)["active"], true);
    assert_eq!(okta.get(&format!("/Users/{id}")).await.expect(200)["active"], true);
    assert!(okta.filter("Users", "active eq false").await.ids().is_empty());

    // Password sync sends the new password the same way; it is accepted and not kept.
    let r = okta.patch(&format!("/Users/{id}"), &patch_op(json!([{"op": "replace", "value": {"password": "t1meMa$heen"}}]))).await;
    r.expect(200);
    assert!(!r.text.contains("t1meMa$heen"));
    assert!(!object_yaml_by_scim_id("users", &id).contains("t1meMa$heen"));
    p.remove();
}

#[tokio::test]
async fn okta_group_push_links_creates_renames_changes_members_and_deletes() {
    let p = ScimProvider::new("okta-push").await;
    let okta = p.client(0).okta();
    let mut users = vec![];
    for i in 0..3 {
        let name = format!("push-{i}@{}.okta.local", p.name);
        let id = okta.post("/Users", &okta_user(&name, &format!("00u{i}"))).await.expect(201)["id"].as_str().unwrap().to_string();
        users.push((id, name));
    }
    let (u0, u1, u2) = (&users[0], &users[1], &users[2]);
    let display = format!("Test SCIMv2 {}", p.name);

    // Link: look the group up by displayName first.
    let lookup = |name: String| {
        let okta = okta.clone();
        async move { okta.get(&format!("/Groups?filter={}&startIndex=1&count=100", enc(&format!("displayName eq \"{name}\"")))).await }
    };
    assert_list(&lookup(display.clone()).await, 0, 1, 0);

    // Create it with its first member.
    let r = okta
        .post("/Groups", &json!({"schemas": [GROUP_SCHEMA], "displayName": display, "members": [{"value": u0.0, "display": u0.1}]}))
        .await;
    let group = r.expect(201).clone();
    let gid = group["id"].as_str().unwrap().to_string();
    assert_eq!(group["displayName"], json!(display));
    assert_eq!(member_ids(&group), HashSet::from([u0.0.clone()]));
    assert_eq!(group["meta"]["resourceType"], "Group");
    assert_eq!(r.header("location"), group["meta"]["location"].as_str());
    assert_eq!(lookup(display.clone()).await.ids(), vec![gid.clone()]);
    assert_eq!(group_ids(okta.get(&format!("/Users/{}", u0.0)).await.expect(200)), HashSet::from([gid.clone()]));

    // Rename: a path-less replace that carries the group's own id.
    let renamed = format!("Test SCIMv2 renamed {}", p.name);
    let r =
        okta.patch(&format!("/Groups/{gid}"), &patch_op(json!([{"op": "replace", "value": {"id": gid, "displayName": renamed}}]))).await;
    assert!(r.status == 200 || r.status == 204, "rename: {} {}", r.status, r.text);
    assert_eq!(okta.get(&format!("/Groups/{gid}")).await.expect(200)["displayName"], json!(renamed));
    assert!(lookup(display.clone()).await.ids().is_empty());
    assert_eq!(lookup(renamed.clone()).await.ids(), vec![gid.clone()]);
    let user0 = okta.get(&format!("/Users/{}", u0.0)).await.expect(200).clone();
    assert_eq!(user0["groups"][0]["display"], json!(renamed), "the user's groups follow the rename: {user0}");

    // Add a member.
    let r = okta
        .patch(&format!("/Groups/{gid}"), &patch_op(json!([{"op": "add", "path": "members", "value": [{"value": u1.0, "display": u1.1}]}])))
        .await;
    assert!(r.status == 200 || r.status == 204, "add: {} {}", r.status, r.text);
    let g = okta.get(&format!("/Groups/{gid}")).await.expect(200).clone();
    assert_eq!(member_ids(&g), HashSet::from([u0.0.clone(), u1.0.clone()]));
    // Okta re-sends memberships it is not sure about: adding a member twice lists it once.
    okta.patch(
        &format!("/Groups/{gid}"),
        &patch_op(json!([{"op": "add", "path": "members", "value": [{"value": u1.0, "display": u1.1}]}])),
    )
    .await
    .expect_ok_or_no_content();
    assert_eq!(okta.get(&format!("/Groups/{gid}")).await.expect(200)["members"].as_array().unwrap().len(), 2);

    // Remove a member by value filter.
    let path = format!("members[value eq \"{}\"]", u0.0);
    let r = okta.patch(&format!("/Groups/{gid}"), &patch_op(json!([{"op": "remove", "path": path}]))).await;
    assert!(r.status == 200 || r.status == 204, "remove: {} {}", r.status, r.text);
    let g = okta.get(&format!("/Groups/{gid}")).await.expect(200).clone();
    assert_eq!(member_ids(&g), HashSet::from([u1.0.clone()]));
    assert!(group_ids(okta.get(&format!("/Users/{}", u0.0)).await.expect(200)).is_empty());

    // Replace all members, then with none.
    let r = okta
        .patch(
            &format!("/Groups/{gid}"),
            &patch_op(json!([{"op": "replace", "path": "members", "value": [{"value": u2.0, "display": u2.1}]}])),
        )
        .await;
    assert!(r.status == 200 || r.status == 204, "replace: {} {}", r.status, r.text);
    assert_eq!(member_ids(okta.get(&format!("/Groups/{gid}")).await.expect(200)), HashSet::from([u2.0.clone()]));
    let r = okta.patch(&format!("/Groups/{gid}"), &patch_op(json!([{"op": "replace", "path": "members", "value": []}]))).await;
    assert!(r.status == 200 || r.status == 204, "replace with []: {} {}", r.status, r.text);
    assert!(member_ids(okta.get(&format!("/Groups/{gid}")).await.expect(200)).is_empty());
    assert!(group_ids(okta.get(&format!("/Users/{}", u2.0)).await.expect(200)).is_empty());

    // Delete the group.
    okta.delete(&format!("/Groups/{gid}")).await.expect(204);
    okta.get(&format!("/Groups/{gid}")).await.expect_error(404, None);
    assert!(lookup(renamed).await.ids().is_empty());

    // Removing the provider removes its users and groups (a second group keeps one to collect).
    okta.post("/Groups", &json!({"schemas": [GROUP_SCHEMA], "displayName": "left behind", "members": [{"value": u1.0}]})).await.expect(201);
    assert_eq!(p.objects("users").len(), 3);
    assert_eq!(p.objects("groups").len(), 1);
    p.remove();
    eventually(Duration::from_secs(30), "the provider's users and groups to be garbage-collected", || async {
        (p.objects("users").is_empty() && p.objects("groups").is_empty()).then_some(())
    })
    .await;
    eventually(Duration::from_secs(10), "the key to be refused", || {
        let okta = okta.clone();
        async move { (okta.get("/Users").await.status == 401).then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn okta_user_name_change_by_put_keeps_the_id_and_frees_the_old_name() {
    let p = ScimProvider::new("okta-rename").await;
    let okta = p.client(0).okta();
    let old = format!("old.name@{}.okta.local", p.name);
    let new = format!("new.name@{}.okta.local", p.name);
    let created = okta.post("/Users", &okta_user(&old, "00u1")).await.expect(201).clone();
    let id = created["id"].as_str().unwrap().to_string();
    let gid =
        okta.post("/Groups", &json!({"schemas": [GROUP_SCHEMA], "displayName": "Renamers", "members": [{"value": id}]})).await.expect(201)
            ["id"]
            .as_str()
            .unwrap()
            .to_string();

    let mut put = okta.get(&format!("/Users/{id}")).await.expect(200).clone();
    put["userName"] = json!(new);
    put["emails"] = json!([{"primary": true, "value": new, "type": "work"}]);
    let r = okta.put(&format!("/Users/{id}"), &put).await;
    assert_eq!(r.expect(200)["id"], json!(id));
    assert_eq!(r.body["userName"], json!(new));
    assert_eq!(r.body["meta"]["created"], created["meta"]["created"]);

    let got = okta.get(&format!("/Users/{id}")).await.expect(200).clone();
    assert_eq!(got["userName"], json!(new));
    assert_eq!(group_ids(&got), HashSet::from([gid.clone()]), "memberships survive the rename: {got}");
    assert_eq!(member_ids(okta.get(&format!("/Groups/{gid}")).await.expect(200)), HashSet::from([id.clone()]));
    assert!(okta_lookup(&okta, &old).await.ids().is_empty());
    assert_eq!(okta_lookup(&okta, &new).await.ids(), vec![id.clone()]);
    assert_eq!(p.objects("users").len(), 1, "one User object after the rename");

    // The old name is free again, for a different user.
    let r = okta.post("/Users", &okta_user(&old, "00u2")).await;
    assert_ne!(r.expect(201)["id"], json!(id));
    // And the new name is taken.
    okta.post("/Users", &okta_user(&new, "00u3")).await.expect_error(409, Some("uniqueness"));
    p.remove();
}

#[tokio::test]
async fn okta_user_names_are_unique_regardless_of_case() {
    let p = ScimProvider::new("okta-unique").await;
    let okta = p.client(0).okta();
    let lower = format!("alice@{}.example.com", p.name);
    let id = okta.post("/Users", &okta_user(&lower, "00u1")).await.expect(201)["id"].as_str().unwrap().to_string();
    let upper = lower.to_uppercase();
    okta.post("/Users", &okta_user(&upper, "00u2")).await.expect_error(409, Some("uniqueness"));
    okta.post("/Users", &okta_user(&lower, "00u2")).await.expect_error(409, Some("uniqueness"));
    p.client(1).okta().post("/Users", &okta_user(&upper, "00u2")).await.expect_error(409, Some("uniqueness"));
    // userName is caseExact=false: the lookup in another case finds the user.
    assert_eq!(okta_lookup(&okta, &upper).await.ids(), vec![id]);
    assert_eq!(p.objects("users").len(), 1);
    p.remove();
}

#[tokio::test]
async fn okta_concurrent_duplicate_posts_to_both_replicas_create_exactly_one_user() {
    let p = ScimProvider::new("okta-race").await;
    let user_name = format!("racer@{}.example.com", p.name);
    let body = okta_user(&user_name, "00urace");
    let clients: Vec<Scim> = (0..env().server_urls.len()).map(|i| p.client(i).okta()).collect();
    let barrier = std::sync::Arc::new(tokio::sync::Barrier::new(10));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..10 {
        let (c, body, barrier) = (clients[i % clients.len()].clone(), body.clone(), barrier.clone());
        tasks.spawn(async move {
            barrier.wait().await;
            c.post("/Users", &body).await
        });
    }
    let results = tasks.join_all().await;
    let created: Vec<&Resp> = results.iter().filter(|r| r.status == 201).collect();
    assert_eq!(created.len(), 1, "exactly one 201: {:?}", results.iter().map(|r| (r.status, &r.text)).collect::<Vec<_>>());
    for r in results.iter().filter(|r| r.status != 201) {
        r.expect_error(409, Some("uniqueness"));
    }
    let id = created[0].body["id"].as_str().unwrap().to_string();
    assert_eq!(p.objects("users").len(), 1, "exactly one User object");
    for c in &clients {
        let c = c.clone();
        let id = id.clone();
        let user_name = user_name.clone();
        eventually(Duration::from_secs(10), "every replica to list the one user", || {
            let (c, id, user_name) = (c.clone(), id.clone(), user_name.clone());
            async move { (okta_lookup(&c, &user_name).await.ids() == vec![id]).then_some(()) }
        })
        .await;
        assert_eq!(c.get("/Users?count=0").await.body["totalResults"], json!(1));
    }
    p.remove();
}

/// What Okta pushed is what an admin sees: `kubectl get users`, `infra users list` (with each
/// user's groups) and `infra groups list` (with member counts).
#[tokio::test]
async fn pushed_users_and_groups_show_in_kubectl_and_the_cli() {
    let p = ScimProvider::new("okta-cli").await;
    let okta = p.client(0).okta();
    let alice = format!("alice@{}.okta.local", p.name);
    let bob = format!("bob@{}.okta.local", p.name);
    let a = okta.post("/Users", &okta_user(&alice, "00ua")).await.expect(201)["id"].as_str().unwrap().to_string();
    okta.post("/Users", &okta_user(&bob, "00ub")).await.expect(201);
    okta.patch(&format!("/Users/{a}"), &patch_op(json!([{"op": "replace", "value": {"active": false}}]))).await.expect(200);
    let group = format!("Admins {}", p.name);
    okta.post("/Groups", &json!({"schemas": [GROUP_SCHEMA], "displayName": group, "members": [{"value": a, "display": alice}]}))
        .await
        .expect(201);

    let selector = format!("infrahq.com/provider={}", p.name);
    let table = kubectl(&["get", "users", "-n", &env().namespace, "-l", &selector]).ok().stdout;
    let row = table.lines().find(|l| l.contains(&alice)).unwrap_or_else(|| panic!("{table}"));
    assert!(row.contains("Test User") && row.contains("false") && row.contains(&p.name), "{table}");

    let users = infra(&["users", "list", "--provider", &p.name]).ok().stdout;
    let alice_row = users.lines().find(|l| l.contains(&alice)).unwrap_or_else(|| panic!("{users}"));
    assert!(alice_row.contains("false") && alice_row.contains(&p.name), "{users}");
    assert!(alice_row.contains(&group), "alice's groups are not shown:\n{users}");
    let bob_row = users.lines().find(|l| l.contains(&bob)).unwrap_or_else(|| panic!("{users}"));
    assert!(!bob_row.contains(&group), "{users}");

    let groups = infra(&["groups", "list", "--provider", &p.name]).ok().stdout;
    let row = groups.lines().find(|l| l.contains(&group)).unwrap_or_else(|| panic!("{groups}"));
    assert!(row.split_whitespace().any(|w| w == "1"), "member count: {groups}");
    p.remove();
}
