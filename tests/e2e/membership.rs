//! Group membership follows the users that exist, even when a user disappears without the SCIM
//! server's help (deleted with kubectl, or on another replica at the same moment); memberships
//! are labels on the Users, and groups that earlier versions stored with `spec.members` are moved
//! onto the Users by the controller.

use std::collections::BTreeMap;
use std::time::Duration;

use infra::api::{Group, GroupMember, GroupSpec, IdentityProvider, ProviderRef, User, labels, member_label};
use kube::api::{DeleteParams, ListParams, ObjectMeta, PostParams};
use kube::{Api, Resource};
use serde_json::json;

use crate::harness::*;

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

fn member_ids(group: &serde_json::Value) -> Vec<String> {
    sorted(group["members"].as_array().into_iter().flatten().map(|m| m["value"].as_str().unwrap().to_string()).collect())
}

#[tokio::test]
async fn a_user_deleted_behind_the_servers_back_leaves_its_groups() {
    let p = ScimProvider::new("members").await;
    let scim = p.client(0);
    let alice = scim.post("/Users", &json!({"userName": format!("alice@{}.example.com", p.name)})).await.expect(201).clone();
    let bob = scim.post("/Users", &json!({"userName": format!("bob@{}.example.com", p.name)})).await.expect(201).clone();
    let group = scim
        .post("/Groups", &json!({"displayName": "eng", "members": [{"value": alice["id"]}, {"value": bob["id"]}]}))
        .await
        .expect(201)
        .clone();
    let (aid, bid, gid) =
        (alice["id"].as_str().unwrap(), bob["id"].as_str().unwrap().to_string(), group["id"].as_str().unwrap().to_string());

    let users: Api<User> = Api::namespaced(client().await, &env().namespace);
    let selector = format!("infrahq.com/scim-id={aid}");
    let object = users.list(&ListParams::default().labels(&selector)).await.unwrap().items.remove(0);
    assert!(object.metadata.labels.as_ref().unwrap().contains_key(&member_label(&gid)), "membership is a label on the member");
    users.delete(&object.metadata.name.unwrap(), &DeleteParams::default()).await.unwrap();

    for i in 0..2 {
        let c = p.client(i);
        eventually(Duration::from_secs(30), "the deleted user to leave the group", || {
            let (c, gid, bid) = (c.clone(), gid.clone(), bid.clone());
            // The second replica may not have seen the group yet: a 404 there means "not yet".
            async move {
                let r = c.get(&format!("/Groups/{gid}")).await;
                (r.status == 200 && member_ids(&r.body) == vec![bid]).then_some(())
            }
        })
        .await;
    }
    p.remove();
}

/// A Group as versions before membership labels stored it (members in `spec.members`, one of
/// them deleted) reads the same through SCIM at once, and the controller moves its members onto
/// the Users and drops the deleted one.
#[tokio::test]
async fn groups_stored_with_spec_members_are_read_and_moved_onto_their_users() {
    let p = ScimProvider::new("members-legacy").await;
    let scim = p.client(0);
    let alice = scim.post("/Users", &json!({"userName": format!("alice@{}.example.com", p.name)})).await.expect(201).clone();
    let bob = scim.post("/Users", &json!({"userName": format!("bob@{}.example.com", p.name)})).await.expect(201).clone();
    let (aid, bid) = (alice["id"].as_str().unwrap().to_string(), bob["id"].as_str().unwrap().to_string());
    let ghost = "00000000-0000-4000-8000-000000000000".to_string();

    let idp = Api::<IdentityProvider>::namespaced(client().await, &env().namespace).get(&p.name).await.unwrap();
    let mut owner = idp.controller_owner_ref(&()).unwrap();
    owner.controller = Some(false);
    let gid = "legacy-".to_string() + &unique("g").replace('-', "");
    let legacy = Group {
        metadata: ObjectMeta {
            name: Some(format!("g-{gid}")),
            labels: Some(BTreeMap::from([(labels::PROVIDER.to_string(), p.name.clone()), (labels::SCIM_ID.to_string(), gid.clone())])),
            owner_references: Some(vec![owner]),
            ..Default::default()
        },
        spec: GroupSpec {
            provider_ref: ProviderRef { name: p.name.clone() },
            display_name: "legacy".into(),
            external_id: None,
            members: [&aid, &ghost, &bid].iter().map(|id| GroupMember { value: id.to_string(), ..Default::default() }).collect(),
        },
        status: None,
    };
    let groups: Api<Group> = Api::namespaced(client().await, &env().namespace);
    groups.create(&PostParams::default(), &legacy).await.unwrap();

    let want = sorted(vec![aid.clone(), bid.clone()]);
    eventually(Duration::from_secs(30), "the legacy group to read with its existing members", || {
        let (c, gid, want) = (scim.clone(), gid.clone(), want.clone());
        // The Group was written to the API server directly: until the server's watch delivers
        // it, the read is a 404, which here means "not yet".
        async move {
            let r = c.get(&format!("/Groups/{gid}")).await;
            (r.status == 200 && member_ids(&r.body) == want).then_some(())
        }
    })
    .await;
    let user = scim.get(&format!("/Users/{aid}")).await.expect(200).clone();
    assert_eq!(user["groups"][0]["value"], gid.as_str(), "{user}");

    eventually(Duration::from_secs(60), "the controller to move the members onto the users", || {
        let (groups, name) = (groups.clone(), format!("g-{gid}"));
        async move { groups.get(&name).await.ok().filter(|g| g.spec.members.is_empty()).map(|_| ()) }
    })
    .await;
    let users: Api<User> = Api::namespaced(client().await, &env().namespace);
    let labelled = users.list(&ListParams::default().labels(&member_label(&gid))).await.unwrap().items;
    let ids = sorted(labelled.iter().map(|u| u.metadata.labels.as_ref().unwrap()[labels::SCIM_ID].clone()).collect());
    assert_eq!(ids, want);
    assert_eq!(member_ids(scim.get(&format!("/Groups/{gid}")).await.expect(200)), want);

    // Member PATCHes keep working on the moved group.
    scim.patch(&format!("/Groups/{gid}"), &json!({"schemas": ["urn:ietf:params:scim:api:messages:2.0:PatchOp"], "Operations": [{"op": "remove", "path": format!("members[value eq \"{aid}\"]")}]}))
        .await
        .expect(200);
    assert_eq!(member_ids(scim.get(&format!("/Groups/{gid}")).await.expect(200)), vec![bid]);
    p.remove();
}
