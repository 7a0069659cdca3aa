//! Group membership follows the users that exist, even when a user disappears without the SCIM
//! server's help (deleted with kubectl, or on another replica at the same moment).

use std::time::Duration;

use infra::api::{Group, User};
use kube::api::{DeleteParams, ListParams};
use kube::Api;
use serde_json::json;

use crate::harness::*;

#[tokio::test]
async fn the_controller_removes_members_whose_user_was_deleted_behind_its_back() {
    let provider = unique("members");
    infra(&["providers", "add", &provider, "--url", &idp_domain_and_path(), "--client-id", "infra-e2e", "--client-secret", "infra-e2e-secret"]).ok();
    let key = printed_key(&infra(&["scim-keys", "create", "--provider", &provider]).ok().stdout);
    let base = format!("{}/api/scim/v2", env().server_urls[0]);
    let post = |path: &str, body: serde_json::Value| {
        let (url, key) = (format!("{base}{path}"), key.clone());
        async move {
            let resp = http().post(url).bearer_auth(key).json(&body).send().await.unwrap();
            assert_eq!(resp.status(), 201);
            resp.json::<serde_json::Value>().await.unwrap()
        }
    };
    let alice = post("/Users", json!({"userName": format!("alice@{provider}.example.com")})).await;
    let bob = post("/Users", json!({"userName": format!("bob@{provider}.example.com")})).await;
    let group = post("/Groups", json!({"displayName": "eng", "members": [{"value": alice["id"]}, {"value": bob["id"]}]})).await;

    let users: Api<User> = Api::namespaced(client().await, &env().namespace);
    let selector = format!("infrahq.com/scim-id={}", alice["id"].as_str().unwrap());
    let object = users.list(&ListParams::default().labels(&selector)).await.unwrap().items.remove(0);
    users.delete(&object.metadata.name.unwrap(), &DeleteParams::default()).await.unwrap();

    let groups: Api<Group> = Api::namespaced(client().await, &env().namespace);
    let gid = group["id"].as_str().unwrap().to_string();
    let bob_id = bob["id"].as_str().unwrap().to_string();
    eventually(Duration::from_secs(30), "the deleted user to leave the group", || {
        let (groups, gid, bob_id) = (groups.clone(), gid.clone(), bob_id.clone());
        async move {
            let g = groups.list(&ListParams::default().labels(&format!("infrahq.com/scim-id={gid}"))).await.ok()?.items.pop()?;
            let members: Vec<String> = g.spec.members.into_iter().map(|m| m.value).collect();
            (members == vec![bob_id]).then_some(())
        }
    })
    .await;
    infra(&["providers", "remove", &provider]).ok();
}
