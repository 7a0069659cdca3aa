//! Microsoft Entra ID's provisioning service, request for request: the bodies of "Tutorial: Develop
//! and plan provisioning for a SCIM endpoint in Microsoft Entra ID" (its "User Operations" and
//! "Group Operations" examples) and of "Known issues and resolutions with SCIM 2.0 protocol
//! compliance of the Microsoft Entra user provisioning service" (both with and without the
//! `aadOptscim062020` flag).

use std::collections::HashSet;
use std::time::Duration;

use crate::harness::*;

const ADSCIM_GROUP: &str = "http://schemas.microsoft.com/2006/11/ResourceManagement/ADSCIM/2.0/Group";

fn guid() -> String {
    let h = infra::keys::random_string(b"0123456789abcdef", 32).unwrap();
    format!("{}-{}-{}-{}-{}", &h[0..8], &h[8..12], &h[12..16], &h[16..20], &h[20..32])
}

/// The tutorial's "Create User" request, with our own names.
fn entra_user(user_name: &str, external_id: &str, work_email: &str) -> Value {
    json!({
        "schemas": [USER_SCHEMA, ENTERPRISE_USER],
        "externalId": external_id,
        "userName": user_name,
        "active": true,
        "emails": [{"primary": true, "type": "work", "value": work_email}],
        "meta": {"resourceType": "User"},
        "name": {"formatted": "givenName familyName", "familyName": "familyName", "givenName": "givenName"},
        "roles": []
    })
}

/// The tutorial's "Create Group" request.
fn entra_group(display_name: &str, external_id: &str) -> Value {
    json!({
        "schemas": [GROUP_SCHEMA, ADSCIM_GROUP],
        "externalId": external_id,
        "displayName": display_name,
        "meta": {"resourceType": "Group"}
    })
}

fn member_ids(group: &Value) -> HashSet<String> {
    group["members"].as_array().map(|a| a.iter().map(|m| m["value"].as_str().unwrap().to_string()).collect()).unwrap_or_default()
}

#[track_caller]
fn assert_empty_list(r: &Resp) {
    let body = r.expect(200);
    assert_eq!(r.header("content-type"), Some(SCIM_JSON));
    assert_eq!(body["schemas"], json!([LIST_RESPONSE]), "{body}");
    assert_eq!(body["totalResults"], json!(0), "{body}");
    assert_eq!(body["Resources"], json!([]), "{body}");
    assert!(body["startIndex"].is_u64() && body["itemsPerPage"].is_u64(), "{body}");
}

#[tokio::test]
async fn entra_test_connection_queries_a_random_user_name_and_gets_an_empty_list() {
    let p = ScimProvider::new("entra-connect").await;
    let entra = p.client(0).entra("application/scim+json");
    // "Test Connection" asks for a user that cannot exist.
    assert_empty_list(&entra.filter("Users", &format!("userName eq \"{}\"", guid())).await);
    assert_empty_list(
        &entra.get(&format!("/Groups?excludedAttributes=members&filter={}", enc(&format!("displayName eq \"{}\"", guid())))).await,
    );
    // The tutorial's "Get User by query - Zero results".
    assert_empty_list(&entra.filter("Users", "userName eq \"non-existent user\"").await);
    p.remove();
}

#[tokio::test]
async fn entra_creates_users_and_finds_them_by_user_name_external_id_and_work_email() {
    let p = ScimProvider::new("entra-lookup").await;
    for content_type in ["application/scim+json", "application/json"] {
        let entra = p.client(0).entra(content_type);
        let tag = content_type.replace(['/', '+'], "-");
        let user_name = format!("Test_User_{}@{}.{tag}.example.com", guid(), p.name);
        let external_id = guid();
        let email = format!("Test_User_{}@testuser.com", guid());
        let r = entra.post("/Users", &entra_user(&user_name, &external_id, &email)).await;
        let created = r.expect(201).clone();
        assert_eq!(r.header("content-type"), Some(SCIM_JSON));
        let id = created["id"].as_str().unwrap().to_string();
        assert_eq!(created["externalId"], json!(external_id));
        assert_eq!(created["name"]["formatted"], "givenName familyName");
        assert_eq!(created["active"], true);

        assert_eq!(entra.filter("Users", &format!("userName eq \"{user_name}\"")).await.ids(), vec![id.clone()]);
        assert_eq!(entra.filter("Users", &format!("externalId eq \"{external_id}\"")).await.ids(), vec![id.clone()]);
        let by_mail = entra.filter("Users", &format!("emails[type eq \"work\"].value eq \"{email}\"")).await;
        assert_eq!(by_mail.ids(), vec![id.clone()], "{}", by_mail.text);
        // The mail address matches regardless of case (emails.value is caseExact=false).
        let by_mail = entra.filter("Users", &format!("emails[type eq \"work\"].value eq \"{}\"", email.to_uppercase())).await;
        assert_eq!(by_mail.ids(), vec![id.clone()], "{}", by_mail.text);
        // Entra matches on other attributes too; nothing else matches.
        assert!(entra.filter("Users", &format!("externalId eq \"{}\"", guid())).await.ids().is_empty());
        assert!(entra.filter("Users", &format!("emails[type eq \"home\"].value eq \"{email}\"")).await.ids().is_empty());
    }
    p.remove();
}

#[tokio::test]
async fn entra_patches_users_in_its_dialect() {
    let p = ScimProvider::new("entra-patch").await;
    let entra = p.client(0).entra("application/scim+json");
    let user_name = format!("Test_User_{}@{}.example.com", guid(), p.name);
    let id =
        entra.post("/Users", &entra_user(&user_name, &guid(), "old@testuser.com")).await.expect(201)["id"].as_str().unwrap().to_string();
    let path = format!("/Users/{id}");
    let get = || async { entra.get(&path).await.expect(200).clone() };

    // "Update User [Multi-valued properties]": capitalized op, value filter with a sub-attribute.
    entra
        .patch(
            &path,
            &patch_op(json!([
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "updatedEmail@microsoft.com"},
                {"op": "Replace", "path": "name.familyName", "value": "updatedFamilyName"}
            ])),
        )
        .await
        .expect(200);
    let u = get().await;
    assert_eq!(u["emails"], json!([{"primary": true, "type": "work", "value": "updatedEmail@microsoft.com"}]), "{u}");
    assert_eq!(u["name"]["familyName"], "updatedFamilyName");
    assert_eq!(u["name"]["givenName"], "givenName");

    // "Update User [Single-valued properties]": a new userName, same id.
    let renamed = format!("{}@{}.example.com", guid(), p.name);
    let r = entra.patch(&path, &patch_op(json!([{"op": "Replace", "path": "userName", "value": renamed}]))).await;
    assert_eq!(r.expect(200)["userName"], json!(renamed));
    assert_eq!(r.body["id"], json!(id));
    assert_eq!(entra.filter("Users", &format!("userName eq \"{renamed}\"")).await.ids(), vec![id.clone()]);
    assert!(entra.filter("Users", &format!("userName eq \"{user_name}\"")).await.ids().is_empty());

    // Adding a single-valued string, without and with the flag.
    entra.patch(&path, &patch_op(json!([{"op": "Add", "path": "nickName", "value": "Babs"}]))).await.expect(200);
    assert_eq!(get().await["nickName"], "Babs");
    entra.patch(&path, &patch_op(json!([{"op": "add", "value": {"nickName": "Barbara"}}]))).await.expect(200);
    assert_eq!(get().await["nickName"], "Barbara");

    // "Requests to replace multiple attributes", without the flag: one operation per path.
    let r = entra
        .patch(
            &path,
            &patch_op(json!([
                {"op": "Replace", "path": "displayName", "value": "Pvlo"},
                {"op": "Replace", "path": "emails[type eq \"work\"].value", "value": "TestBcwqnm@test.microsoft.com"},
                {"op": "Replace", "path": "name.givenName", "value": "Gtfd"},
                {"op": "Replace", "path": "name.familyName", "value": "Pkqf"},
                {"op": "Replace", "path": "externalId", "value": "Eqpj"},
                {"op": "Replace", "path": format!("{ENTERPRISE_USER}:employeeNumber"), "value": "Eqpj"}
            ])),
        )
        .await;
    r.expect(200);
    let u = get().await;
    assert_eq!(u["displayName"], "Pvlo");
    assert_eq!(u["emails"][0]["value"], "TestBcwqnm@test.microsoft.com");
    assert_eq!(u["name"]["givenName"], "Gtfd");
    assert_eq!(u["name"]["familyName"], "Pkqf");
    assert_eq!(u["externalId"], "Eqpj");
    assert_eq!(u[ENTERPRISE_USER]["employeeNumber"], "Eqpj", "{u}");
    assert!(u["schemas"].as_array().unwrap().contains(&json!(ENTERPRISE_USER)), "{u}");

    // With the flag: one path-less replace whose keys are paths, dotted and URN-qualified.
    let r = entra
        .patch(
            &path,
            &patch_op(json!([{
                "op": "replace",
                "value": {
                    "displayName": "Pvlo2",
                    "emails[type eq \"work\"].value": "second@test.microsoft.com",
                    "name.givenName": "Gtfd2",
                    "name.familyName": "Pkqf2",
                    "externalId": "Eqpj2",
                    format!("{ENTERPRISE_USER}:employeeNumber"): "Eqpj2",
                    format!("{ENTERPRISE_USER}:department"): "Finance"
                }
            }])),
        )
        .await;
    r.expect(200);
    let u = get().await;
    assert_eq!(u["displayName"], "Pvlo2");
    assert_eq!(u["emails"].as_array().unwrap().len(), 1, "{u}");
    assert_eq!(u["emails"][0]["value"], "second@test.microsoft.com");
    assert_eq!(u["name"]["givenName"], "Gtfd2");
    assert_eq!(u["name"]["familyName"], "Pkqf2");
    assert_eq!(u["externalId"], "Eqpj2");
    assert_eq!(u[ENTERPRISE_USER]["employeeNumber"], "Eqpj2");
    assert_eq!(u[ENTERPRISE_USER]["department"], "Finance");
    assert!(
        u.get("name.givenName").is_none() && u.get(format!("{ENTERPRISE_USER}:department").as_str()).is_none(),
        "keys are paths, not attributes: {u}"
    );
    assert_eq!(entra.filter("Users", "externalId eq \"Eqpj2\"").await.ids(), vec![id.clone()]);
    assert_eq!(entra.filter("Users", "emails[type eq \"work\"].value eq \"second@test.microsoft.com\"").await.ids(), vec![id.clone()]);

    // The manager, by id.
    let manager = entra.post("/Users", &entra_user(&format!("mgr@{}.example.com", p.name), &guid(), "mgr@testuser.com")).await.expect(201)
        ["id"]
        .as_str()
        .unwrap()
        .to_string();
    entra.patch(&path, &patch_op(json!([{"op": "Add", "path": format!("{ENTERPRISE_USER}:manager"), "value": manager}]))).await.expect(200);
    assert_eq!(get().await[ENTERPRISE_USER]["manager"]["value"], json!(manager));

    // "Disable User", in the default mode (the boolean as a string), then re-enable.
    let r = entra.patch(&path, &patch_op(json!([{"op": "Replace", "path": "active", "value": "False"}]))).await;
    assert_eq!(r.expect(200)["active"], false);
    let u = get().await;
    assert_eq!(u["active"], false, "still returned, inactive");
    assert_eq!(entra.filter("Users", "active eq false").await.ids(), vec![id.clone()]);
    entra.patch(&path, &patch_op(json!([{"op": "Replace", "path": "active", "value": "True"}]))).await.expect(200);
    assert_eq!(get().await["active"], true);
    // ...and with the flag (a real boolean, lower-case op).
    entra.patch(&path, &patch_op(json!([{"op": "replace", "path": "active", "value": false}]))).await.expect(200);
    assert_eq!(get().await["active"], false);
    // Path-less, with a string boolean.
    entra.patch(&path, &patch_op(json!([{"op": "Replace", "value": {"active": "True"}}]))).await.expect(200);
    assert_eq!(get().await["active"], true);
    p.remove();
}

#[tokio::test]
async fn entra_manages_groups_and_their_members() {
    let p = ScimProvider::new("entra-groups").await;
    let entra = p.client(0).entra("application/scim+json");
    let mut users = vec![];
    for i in 0..3 {
        let r =
            entra.post("/Users", &entra_user(&format!("member-{i}@{}.example.com", p.name), &guid(), &format!("m{i}@testuser.com"))).await;
        users.push(r.expect(201)["id"].as_str().unwrap().to_string());
    }
    let display = format!("displayName {}", p.name);
    let external_id = guid();

    let r = entra.post("/Groups", &entra_group(&display, &external_id)).await;
    let created = r.expect(201).clone();
    let gid = created["id"].as_str().unwrap().to_string();
    assert_eq!(created["displayName"], json!(display));
    assert_eq!(created["externalId"], json!(external_id));
    assert!(member_ids(&created).is_empty());
    let path = format!("/Groups/{gid}");

    // "Get Group" and "Get Group by displayName", both without members.
    let g = entra.get(&format!("{path}?excludedAttributes=members")).await;
    assert_eq!(g.expect(200)["displayName"], json!(display));
    assert!(g.body.get("members").is_none(), "{}", g.text);
    let list = entra.get(&format!("/Groups?excludedAttributes=members&filter={}", enc(&format!("displayName eq \"{display}\"")))).await;
    assert_eq!(list.ids(), vec![gid.clone()]);
    assert!(list.body["Resources"][0].get("members").is_none(), "{}", list.text);
    assert_eq!(entra.filter("Groups", &format!("externalId eq \"{external_id}\"")).await.ids(), vec![gid.clone()]);

    // "Update Group [Non-member attributes]".
    let renamed = format!("{}updatedDisplayName", guid());
    entra.patch(&path, &patch_op(json!([{"op": "Replace", "path": "displayName", "value": renamed}]))).await.expect_ok_or_no_content();
    assert_eq!(entra.get(&path).await.expect(200)["displayName"], json!(renamed));

    // "Update Group [Add Members]", with Entra's `"$ref": null`.
    entra
        .patch(
            &path,
            &patch_op(json!([{"op": "Add", "path": "members", "value": [{"$ref": null, "value": users[0]}, {"$ref": null, "value": users[1]}, {"$ref": null, "value": users[2]}]}])),
        )
        .await
        .expect_ok_or_no_content();
    let g = entra.get(&path).await.expect(200).clone();
    assert_eq!(member_ids(&g), users.iter().cloned().collect::<HashSet<_>>());
    // Entra checks a membership with `id eq ... and members eq ...`, without the members.
    let is_member = |uid: String| {
        let (entra, gid) = (entra.clone(), gid.clone());
        async move {
            let f = format!("id eq \"{gid}\" and members eq \"{uid}\"");
            let r = entra.get(&format!("/Groups?excludedAttributes=members&filter={}", enc(&f))).await;
            assert!(r.expect(200)["Resources"].as_array().unwrap().iter().all(|g| g.get("members").is_none()), "{}", r.text);
            r.ids() == vec![gid]
        }
    };
    assert!(is_member(users[0].clone()).await);
    assert!(!is_member(guid()).await);
    // Excluding members hides them on a group that has some, too.
    assert!(entra.get(&format!("{path}?excludedAttributes=members")).await.expect(200).get("members").is_none());

    // "Update Group [Remove Members]": path `members` and the members to remove as the value.
    entra
        .patch(&path, &patch_op(json!([{"op": "Remove", "path": "members", "value": [{"$ref": null, "value": users[0]}]}])))
        .await
        .expect_ok_or_no_content();
    assert_eq!(member_ids(entra.get(&path).await.expect(200)), HashSet::from([users[1].clone(), users[2].clone()]));
    assert!(!is_member(users[0].clone()).await);
    // The known-issues form without the flag: a value filter and a value list at once.
    let filter_path = format!("members[value eq \"{}\"]", users[1]);
    entra
        .patch(&path, &patch_op(json!([{"op": "Remove", "path": filter_path, "value": [{"value": users[1]}]}])))
        .await
        .expect_ok_or_no_content();
    assert_eq!(member_ids(entra.get(&path).await.expect(200)), HashSet::from([users[2].clone()]));
    // Several members in one value list.
    entra
        .patch(&path, &patch_op(json!([{"op": "Add", "path": "members", "value": [{"value": users[0]}, {"value": users[1]}]}])))
        .await
        .expect_ok_or_no_content();
    entra
        .patch(&path, &patch_op(json!([{"op": "Remove", "path": "members", "value": [{"value": users[0]}, {"value": users[2]}]}])))
        .await
        .expect_ok_or_no_content();
    assert_eq!(member_ids(entra.get(&path).await.expect(200)), HashSet::from([users[1].clone()]));

    entra.delete(&path).await.expect(204);
    entra.get(&path).await.expect_error(404, None);
    p.remove();
}

#[tokio::test]
async fn entra_hard_deletes_users_and_removes_them_from_every_group() {
    let p = ScimProvider::new("entra-delete").await;
    let entra = p.client(0).entra("application/scim+json");
    let gone_name = format!("gone@{}.example.com", p.name);
    let gone =
        entra.post("/Users", &entra_user(&gone_name, &guid(), "gone@testuser.com")).await.expect(201)["id"].as_str().unwrap().to_string();
    let stays =
        entra.post("/Users", &entra_user(&format!("stays@{}.example.com", p.name), &guid(), "stays@testuser.com")).await.expect(201)["id"]
            .as_str()
            .unwrap()
            .to_string();
    let mut groups = vec![];
    for (name, members) in [("both", vec![&gone, &stays]), ("only-gone", vec![&gone])] {
        let mut body = entra_group(name, &guid());
        body["members"] = json!(members.iter().map(|m| json!({"value": m})).collect::<Vec<_>>());
        groups.push(entra.post("/Groups", &body).await.expect(201)["id"].as_str().unwrap().to_string());
    }
    let user = entra.get(&format!("/Users/{gone}")).await.expect(200).clone();
    assert_eq!(user["groups"].as_array().map(Vec::len), Some(2), "{user}");

    // "Delete User".
    let r = entra.delete(&format!("/Users/{gone}")).await;
    r.expect(204);
    assert!(r.text.is_empty(), "204 has no body: {}", r.text);
    entra.get(&format!("/Users/{gone}")).await.expect_error(404, None);
    entra.delete(&format!("/Users/{gone}")).await.expect_error(404, None);
    assert!(entra.filter("Users", &format!("userName eq \"{gone_name}\"")).await.ids().is_empty());

    // No group lists it any more, here, in storage, and on the other replica.
    assert_eq!(member_ids(entra.get(&format!("/Groups/{}", groups[0])).await.expect(200)), HashSet::from([stays.clone()]));
    assert!(member_ids(entra.get(&format!("/Groups/{}", groups[1])).await.expect(200)).is_empty());
    for g in &groups {
        let yaml = object_yaml_by_scim_id("groups", g);
        assert!(!yaml.contains(&gone), "{yaml}");
    }
    let other = p.client(1).entra("application/scim+json");
    eventually(Duration::from_secs(10), "replica 1 to drop the deleted member", || {
        let (other, groups, gone) = (other.clone(), groups.clone(), gone.clone());
        async move {
            let a = other.get(&format!("/Groups/{}", groups[0])).await;
            let b = other.get(&format!("/Groups/{}", groups[1])).await;
            let gone_user = other.get(&format!("/Users/{gone}")).await;
            (!a.text.contains(&gone) && !b.text.contains(&gone) && gone_user.status == 404).then_some(())
        }
    })
    .await;
    // The remaining member keeps its membership; a new user of the same name starts without groups.
    let s = entra.get(&format!("/Users/{stays}")).await.expect(200).clone();
    assert_eq!(s["groups"].as_array().map(Vec::len), Some(1), "{s}");
    let again = entra.post("/Users", &entra_user(&gone_name, &guid(), "gone@testuser.com")).await;
    assert_ne!(again.expect(201)["id"], json!(gone));
    assert!(again.body.get("groups").is_none_or(|g| g == &json!([])), "{}", again.text);
    p.remove();
}
